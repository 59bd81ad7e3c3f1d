"""Traces matched on their ids first, and only the matched traces' rows read and kept (05_trace_pos,
05_trace_rows): the text read follows the feedback, and the fetch reads it from there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curation import pipeline
from curation.pipeline import Window, connect, load_sql, run_pipeline
from curation.run import parse_as_of
from curation.snapshot import content_digest, write_splits
from tests.curation.conftest import make_config
from tests.curation.lakes import LakeBuilder

AS_OF = "2026-03-31T12:00:00Z"


def _lake() -> LakeBuilder:
    """40 traces of which feedback points at 4 (one of them landed twice, one from an old day),
    plus an edit, a self-contained action, an orphan and a trace that arrived after --as-of."""
    b = LakeBuilder()
    for i in range(40):
        b.trace(f"T{i:02d}", "2026-03-30T08:00:00Z", f"prompt {i % 7}", f"answer {i}", session_id=f"s{i % 5}")
    b.trace("T03", "2026-03-30T08:00:00Z", "prompt 3", "answer 3", session_id="s3")  # a retried send
    b.trace("OLD", "2026-03-20T08:00:00Z", "old prompt", "old answer", session_id="s9")
    b.trace("LATE", "2026-03-31T11:00:00Z", "late prompt", "late answer", ingested="2026-03-31T13:00:00Z")
    b.feedback("e1", "T01", "2026-03-30T09:00:00Z", "up", "u1")
    b.feedback("e2", "T03", "2026-03-30T09:00:00Z", "down", "u2")
    b.feedback("e3", "T05", "2026-03-30T09:00:00Z", None, "u3", kind="edit", edited_completion="better 5")
    b.feedback("e4", "OLD", "2026-03-30T09:00:00Z", "up", "u4")
    b.feedback(
        "e5", "SC", "2026-03-30T09:00:00Z", "up", "u5", prompt="own p", completion="own c", model_version="v1"
    )
    b.feedback("e6", "NONE", "2026-03-20T09:00:00Z", "up", "u6")
    b.feedback("e7", "LATE", "2026-03-31T11:30:00Z", "up", "u7")
    return b


def _curate(tmp_path: Path, hold: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(pipeline, "HOLD_TRACE_ROWS", hold)
    lake = tmp_path / "lake"
    if not lake.exists():
        _lake().write(lake)
    cfg = make_config(tmp_path).curation
    work = tmp_path / f"work-{hold}"
    work.mkdir()
    con = connect(cfg, work)
    try:
        result = run_pipeline(con, lake, cfg, Window.build(parse_as_of(AS_OF), cfg), None)
        snapshot_id, _ = content_digest(con, {"w": 1.0}, cfg.redact_pii, cfg.pii_phone_regions)
        write_splits(con, work, result.params, cfg.snapshot_compression)
        return {
            "counts": result.counts,
            "id": snapshot_id,
            "rows": con.execute("SELECT * FROM out ORDER BY event_id, source").fetchall(),
            "trace_rows": con.execute("SELECT count(*) FROM traces_src").fetchone(),
            "lake_rows": con.execute("SELECT count(*) FROM traces_lake").fetchone() if hold else None,
            "versions": result.window_versions,
        }
    finally:
        con.close()


def test_only_the_matched_traces_are_held_and_fetched_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _curate(tmp_path, 1_000_000, monkeypatch)
    # T01, both copies of T03, T05 and OLD: the traces the window's feedback points at, not the 43
    assert held["trace_rows"] == (5,)
    assert held["lake_rows"] == (43,)
    assert held["counts"]["joined"] == 4 and held["counts"]["self_contained"] == 1
    assert held["counts"]["train"] + held["counts"]["eval"] == 6  # the edit makes two rows


def test_held_and_lake_reads_make_the_same_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = _curate(tmp_path, 1_000_000, monkeypatch)
    from_lake = _curate(tmp_path, 0, monkeypatch)
    assert from_lake["trace_rows"] == (43,)  # nothing held: the fetch reads the lake
    assert held["id"] == from_lake["id"]
    assert held["rows"] == from_lake["rows"] and len(held["rows"]) == 6
    assert held["counts"] == from_lake["counts"]
    # the report's versions of the window read the held traces and see what the lake holds
    assert held["versions"] == from_lake["versions"] == [("v1", 5)]


def test_the_id_scan_reads_no_text(tmp_path: Path) -> None:
    """05_trace_pos.sql's scan of every trace in the window projects the id and times only."""
    _lake().write(tmp_path / "lake")
    cfg = make_config(tmp_path).curation
    con = connect(cfg, tmp_path)
    try:
        window = Window.build(parse_as_of(AS_OF), cfg)
        pipeline._source(con, tmp_path / "lake", "traces", window.cutoff.date(), window.as_of.date())
        con.execute(
            "CREATE TEMP TABLE feedback AS SELECT 1::UBIGINT AS trace_hash, 2::UBIGINT AS trace_hash_salted, true AS recent"
        )
        text = load_sql("05_trace_pos")
        plan = "".join(r[1] for r in con.execute("EXPLAIN " + text, {"as_of": window.as_of}).fetchall())
    finally:
        con.close()
    scan = plan[plan.index("READ_PARQUET") :]
    assert "trace_id" in scan
    for column in ("prompt", "completion", "session_id", "user_id", "tags"):
        assert column not in scan, f"{column} read for every trace:\n{plan}"
