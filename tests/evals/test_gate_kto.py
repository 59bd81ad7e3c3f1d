"""The gate on candidates trained by the real KTO trainer (training.run) on tiny-world feedback:
one trained on the rubric's thumbs is promoted; one trained on flipped thumbs and one trained on
thumbs that reward padding are rejected, each for its own reason.
Minutes on two cores, so behind ``slow``; tests/evals/test_gate.py covers the same decisions fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evals.run import run
from flywheel.registry import Registry
from tests.evals.test_gate import GATE
from tests.fixtures_model import snapshot_rows, write_snapshot

pytestmark = pytest.mark.slow


def _trained(config: Any, world: Any, folder: Path, kind: str) -> tuple[str, Path]:
    from training.run import run as train

    rows = snapshot_rows(world, 768, seed=1, prefer="verbose" if kind == "padding" else None)
    if kind == "flipped":
        rows = [{**r, "label": not r["label"]} for r in rows]
    held_out = snapshot_rows(world, 320, seed=2, split="held_out")
    snapshot = write_snapshot(folder, rows, held_out)
    return train(config, snapshot=snapshot), snapshot


@pytest.mark.parametrize("kind", ["rubric", "flipped", "padding"])
def test_kto_candidate_is_judged_by_what_it_learned(
    tiny_world: Path, world: Any, tiny_config: Any, tmp_path: Path, kind: str
) -> None:
    config = tiny_config.replace(**GATE)
    registry = Registry.from_config(config)
    registry.register(tiny_world, champion=True, version="base")
    version, snapshot = _trained(config, world, Path(config.paths.lake) / "curated" / "snap", kind)
    decision = run(config, candidate=version, snapshot=snapshot)
    report = json.loads(decision.report_path.read_text())
    auc = report["metrics"]["agreement"]["auc"]
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    if kind == "rubric":
        assert decision.promote, decision.summary()
        assert auc["low"] > 0.5
    elif kind == "flipped":
        assert not decision.promote and auc["high"] < 0.5, decision.summary()
    else:  # users who liked padding: the candidate writes longer answers
        assert not decision.promote and "length_ratio" in failed, decision.summary()
    assert registry.champion() == "base"
