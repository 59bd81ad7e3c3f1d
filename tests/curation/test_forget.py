"""`flywheel forget --user-id`: curation leaves the user's rows out from the next snapshot on, and
the compaction removes them from the raw lake files, changing nothing else."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from core.snapshot import load_manifest
from curation.errors import CurationError
from curation.forget import forget, tombstones, user_digest
from curation.run import run
from flywheel.cli import main
from tests.curation.conftest import make_config
from tests.curation.lakes import LakeBuilder

AS_OF = "2026-03-31T12:00:00Z"
DAY = "2026-03-30T"


def _lake() -> LakeBuilder:
    b = LakeBuilder()
    # alice's own trace, judged by bob; alice judging bob's trace; the rest without alice
    b.trace(
        "TA", DAY + "08:00:00Z", "alice asks about her lease", "answer A", user_id="alice", session_id="sa"
    )
    b.feedback("e1", "TA", DAY + "09:00:00Z", "up", "bob")
    b.trace("TB", DAY + "08:00:00Z", "bob asks", "answer B", user_id="bob", session_id="sb")
    b.feedback("e2", "TB", DAY + "09:00:00Z", "down", "alice")
    b.feedback("e3", "TB", DAY + "09:05:00Z", "down", "carol")
    for i in range(4):  # another day: files alice has no row in
        b.trace(
            f"T{i}",
            f"2026-03-29T08:0{i}:00Z",
            f"prompt {i}",
            f"answer {i}",
            user_id="dave",
            session_id=f"s{i}",
        )
        b.feedback(f"f{i}", f"T{i}", f"2026-03-29T09:0{i}:00Z", "up" if i % 2 else "down", "dave")
    return b


def _raw(lake: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted((lake / "raw").rglob("*.parquet"))}


def _users(paths: list[Path]) -> set[str | None]:
    return {u for p in paths for u in pq.read_table(p, columns=["user_id"]).column("user_id").to_pylist()}


def test_forget_excludes_the_user_from_new_snapshots_and_compacts_the_lake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _lake().write(tmp_path / "lake")
    config = make_config(tmp_path, **{"curation.eval_fraction": 0.0})
    before = run(config, as_of=AS_OF)
    rows = pq.read_table(before / "train.parquet").to_pylist()
    assert "alice" in {r["user_id"] for r in rows}
    assert "alice asks about her lease" in {r["prompt"] for r in rows}
    files_before = _raw(lake)

    # the tombstone alone: the lake is as it was, the next snapshot leaves alice out
    assert main(["forget", "--user-id", "alice", "--lake", str(lake), "--no-compact"]) == 0
    tombstone = Path(capsys.readouterr().out.strip())
    assert tombstone == lake / "tombstones" / f"{user_digest('alice')}.json"
    assert "alice" not in tombstone.read_text()  # only the id's digest is kept
    assert tombstones(lake) == [user_digest("alice")]
    assert _raw(lake) == files_before
    honoured = run(config, as_of=AS_OF)
    assert honoured != before
    manifest = load_manifest(honoured)
    assert (manifest["counts"]["forgotten_feedback"], manifest["counts"]["forgotten_traces"]) == (1, 1)
    rows = pq.read_table(honoured / "train.parquet").to_pylist()
    assert "alice" not in {r["user_id"] for r in rows}
    assert "alice asks about her lease" not in {r["prompt"] for r in rows}
    assert {r["event_id"] for r in rows} == {"e3", "f0", "f1", "f2", "f3"}  # e1 judged alice's trace
    assert manifest["counts"]["orphaned"] == 1  # e1: its trace is gone

    # the compaction: alice's rows leave the files that held them, under the same names
    assert main(["forget", "--user-id", "alice", "--lake", str(lake)]) == 0
    files_after = _raw(lake)
    assert set(files_after) == set(files_before)
    changed = [p for p in files_before if files_after[p] != files_before[p]]
    assert changed and all("dt=2026-03-30" in str(p) for p in changed)
    assert "alice" in {r["user_id"] for p in changed for r in _rows_of(files_before[p])}
    assert "alice" not in _users(list(files_after))
    for path in changed:
        new = pq.read_table(path)
        assert new.schema == pq.read_schema(path)
        assert pq.ParquetFile(path).schema_arrow.equals(new.schema, check_metadata=True)
        # the other rows, in their order, unchanged
        assert new.num_rows >= 1
        old_rows = [r for r in _rows_of(files_before[path]) if r["user_id"] != "alice"]
        assert new.to_pylist() == old_rows
    assert not list((lake / "raw").rglob(".*.tmp"))
    # a snapshot of the compacted lake holds what the tombstone alone gave: the same snapshot
    assert run(config, as_of=AS_OF) == honoured
    # forgetting again finds nothing left to remove
    assert forget(lake, "alice").files_rewritten == []


def _rows_of(data: bytes) -> list[dict[str, object]]:
    import pyarrow as pa

    return pq.read_table(pa.BufferReader(data)).to_pylist()


def test_forget_compaction_touches_only_files_with_the_users_rows(tmp_path: Path) -> None:
    lake = _lake().write(tmp_path / "lake")
    before = _raw(lake)
    done = forget(lake, "dave")
    assert done.rows_removed == {"feedback": 4, "traces": 4}
    # dave's day held only his rows: its files stay, empty, under their names
    for path in done.files_rewritten:
        assert "dt=2026-03-29" in str(path) and pq.read_table(path).num_rows == 0
    untouched = [p for p in before if p not in done.files_rewritten]
    assert untouched and all(p.read_bytes() == before[p] for p in untouched)
    remaining = pc.unique(pq.read_table(lake / "raw" / "feedback").column("user_id")).to_pylist()
    assert "dave" not in remaining


def test_forget_says_what_to_do_with_bad_input(tmp_path: Path) -> None:
    with pytest.raises(CurationError, match="no raw lake"):
        forget(tmp_path / "nowhere", "alice")
    lake = _lake().write(tmp_path / "lake")
    for bad in ("", " alice", "al\nice"):
        with pytest.raises(CurationError, match="user-id"):
            forget(lake, bad)
    assert main(["forget", "--user-id", "", "--lake", str(lake)]) != 0
