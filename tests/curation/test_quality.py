"""Critical data-quality failures stop the round with a message that says which and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.snapshot import latest_snapshot, load_manifest
from curation.errors import CurationError, DataQualityError
from curation.run import run
from tests.curation.conftest import make_config
from tests.curation.lakes import LakeBuilder


def test_critical_failures_stop_the_round_and_keep_the_report(tmp_path: Path) -> None:
    b = LakeBuilder()
    for i in range(4):
        b.trace(f"T{i}", "2026-03-30T08:00:00Z", f"p{i}", f"c{i}")
        b.feedback(f"e{i}", f"T{i}", "2026-03-30T09:00:00Z", "up", f"u{i}")  # only one class
    b.feedback("bad", "T0", "2026-03-30T10:00:00Z", "meh", "u9")  # not an allowed label
    b.write(tmp_path / "lake")
    with pytest.raises(DataQualityError) as caught:
        run(make_config(tmp_path), as_of="2026-03-31T00:00:00Z")
    message = str(caught.value)
    assert "raw_allowed_labels: observed raw_bad_labels = 1, expected = 0" in message
    assert "both_classes_in_train: observed train_classes = 1, expected = 2" in message
    assert "no snapshot was published" in message and "hint:" in message
    assert caught.value.exit_code == 4
    assert latest_snapshot(tmp_path / "lake") is None
    report = Path(caught.value.report or "")
    assert report.name == "summary.html" and report.is_file()
    failed = {
        c["name"]: c["severity"] for c in load_manifest(report.parent.parent)["quality"] if not c["success"]
    }
    # the all-desirable train split also fails the class_ratio warning, which alone would not stop it
    assert failed == {
        "raw_allowed_labels": "critical",
        "both_classes_in_train": "critical",
        "class_ratio": "warning",
    }
    assert "class_ratio" not in message


def test_a_lake_without_feedback_says_to_run_ingest(tmp_path: Path) -> None:
    with pytest.raises(CurationError, match="flywheel ingest"):
        run(make_config(tmp_path))


def test_an_eval_split_shrunk_by_shared_prompts_is_a_warning(tmp_path: Path) -> None:
    def eval_share(root: Path, **overrides: float) -> dict:
        # Sessions 2k and 2k+1 share a prompt: a pair reaches eval only when both sessions hash there.
        b = LakeBuilder()
        for i in range(200):
            b.trace(f"T{i}", "2026-03-30T08:00:00Z", f"prompt {i // 2}", f"answer {i}", session_id=f"s{i}")
            b.feedback(f"e{i}", f"T{i}", "2026-03-30T09:00:00Z", "up" if i % 3 else "down", f"u{i}")
        b.write(root / "lake")
        config = make_config(root, **{"curation.eval_fraction": 0.3, **overrides})
        manifest = load_manifest(run(config, as_of="2026-03-31T00:00:00Z"))  # warnings never stop it
        check = next(c for c in manifest["quality"] if c["name"] == "eval_share")
        return {**check, "eval": manifest["counts"]["eval"], "kept": manifest["counts"]["after_balance"]}

    shrunk = eval_share(tmp_path / "a")
    assert 0 < shrunk["eval"] < 0.15 * shrunk["kept"]  # 0.3 of the sessions were hashed to eval
    assert shrunk["severity"] == "warning" and shrunk["success"] is False
    assert shrunk["expected"] == ">= 0.15"
    relaxed = eval_share(tmp_path / "b", **{"curation.min_eval_share_of_fraction": 0.1})
    assert relaxed["success"] is True and relaxed["eval"] == shrunk["eval"]
