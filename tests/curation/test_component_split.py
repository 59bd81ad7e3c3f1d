"""split_by = component: sessions that share prompts (transitively) go to one side together, so the
eval split holds about eval_fraction of the rows where prompts repeat across sessions, and no
prompt (and no session) is on both sides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curation.pipeline import Window, connect, run_pipeline
from curation.run import parse_as_of
from curation.snapshot import write_splits
from tests.curation.conftest import make_config
from tests.curation.lakes import LakeBuilder

AS_OF = "2026-03-31T12:00:00Z"
GROUPS = 300


def _chained_lake() -> LakeBuilder:
    """GROUPS groups of three sessions chained by prompts: s0 asks a, b; s1 asks b, c; s2 asks c, d.
    s0 and s2 share no prompt, only a neighbour: one component of 6 rows per group."""
    b = LakeBuilder()
    n = 0
    for g in range(GROUPS):
        for s, prompts in enumerate(("ab", "bc", "cd")):
            for p in prompts:
                n += 1
                trace = f"t{n}"
                b.trace(
                    trace,
                    "2026-03-30T08:00:00Z",
                    f"group {g} prompt {p}",
                    f"answer {n}",
                    session_id=f"g{g}s{s}",
                )
                b.feedback(f"e{n}", trace, "2026-03-30T09:00:00Z", "up" if n % 3 else "down", f"u{n}")
    return b


def _split(tmp_path: Path, split_by: str) -> tuple[dict[str, int], list[dict[str, Any]]]:
    lake = tmp_path / "lake"
    if not lake.exists():
        _chained_lake().write(lake)
    cfg = make_config(tmp_path, **{"curation.split_by": split_by, "curation.eval_fraction": 0.2}).curation
    work = tmp_path / split_by
    work.mkdir()
    con = connect(cfg, work)
    try:
        result = run_pipeline(con, lake, cfg, Window.build(parse_as_of(AS_OF), cfg), None)
        write_splits(con, work, result.params, cfg.snapshot_compression)
        rows = con.execute("SELECT prompt, session_id, split FROM out").df().to_dict("records")
    finally:
        con.close()
    return result.counts, rows


def _crossing(rows: list[dict[str, Any]], key: str) -> set[str]:
    sides: dict[str, set[str]] = {}
    for r in rows:
        sides.setdefault(r[key], set()).add(r["split"])
    return {k for k, s in sides.items() if len(s) > 1}


def test_component_split_holds_eval_fraction_without_leaks(tmp_path: Path) -> None:
    counts, rows = _split(tmp_path, "component")
    assert len(rows) == GROUPS * 6
    assert counts["split_components"] == GROUPS  # the chains are found whole, not pairwise
    assert counts["split_component_rounds"] >= 2
    assert _crossing(rows, "prompt") == set()
    assert _crossing(rows, "session_id") == set()
    share = counts["eval"] / (counts["train"] + counts["eval"])
    assert share == pytest.approx(0.2, abs=0.07), share
    assert counts["moved_to_train_shared_prompt"] == 0


def test_session_split_shrinks_eval_on_the_same_lake(tmp_path: Path) -> None:
    """The default (kept, so existing snapshots keep their ids) loses eval rows to shared prompts."""
    counts, rows = _split(tmp_path, "session")
    assert _crossing(rows, "prompt") == set()
    assert "split_components" not in counts
    share = counts["eval"] / (counts["train"] + counts["eval"])
    assert share < 0.14, share
    assert counts["moved_to_train_shared_prompt"] > 0
