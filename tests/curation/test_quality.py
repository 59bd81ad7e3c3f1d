"""Critical data-quality failures stop the round with a message that says which and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.errors import CurationError, DataQualityError
from curation.run import run
from curation.snapshot import latest_snapshot, load_manifest
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
