"""The curation benchmark's lakes, baseline and floor agree with the curation on a small lake with
fewer feedback events than traces (benchmarks/bench_curation.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_curation import AS_OF, duckdb_core, generate, polars_curate
from benchmarks.curation_floor import match_floor


@pytest.mark.slow  # ~30 s on 2 loaded cores
def test_baseline_and_floor_follow_the_feedback(tmp_path: Path) -> None:
    pytest.importorskip("polars")
    lake = tmp_path / "lake"
    generate(lake, 2_800, traces=28_000)  # 10 % of the answers got feedback
    core = duckdb_core(lake, tmp_path / "core")
    baseline = polars_curate(lake, tmp_path / "polars")
    floor = match_floor(lake, tmp_path / "floor", AS_OF)
    kept = core["train"] + core["eval"]
    # the same rows survive; only the split's hash differs between the engines
    assert baseline["train"] + baseline["eval"] == kept > 2_000
    # the floor reads the traces the feedback names (an edit makes two rows of one), not all 28,000
    assert 2_000 < floor["rows"] <= kept < 3_000
    assert core["eval_up"] + core["eval_down"] == core["eval"] > 0
