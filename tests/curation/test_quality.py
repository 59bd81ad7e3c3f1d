"""Critical data-quality failures stop the round with a message that says which and why."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from core.snapshot import latest_snapshot, load_manifest
from curation import docs, quality
from curation.errors import CurationError, DataQualityError
from curation.pipeline import Window
from curation.run import parse_as_of, run
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


def test_python_verdicts_agree_with_great_expectations_on_a_failing_lake(tmp_path: Path) -> None:
    """The checks that publish or reject are decided in Python; GX, run for real on the same
    inputs (its Data Docs), reaches the same verdict on every expectation and check."""
    b = LakeBuilder()
    for i in range(6):
        b.trace(f"T{i}", "2026-03-30T08:00:00Z", f"p{i}", f"c{i}")
        b.feedback(f"e{i}", f"T{i}", "2026-03-30T09:00:00Z", "up", f"u{i}")  # one class only
    b.feedback("bad", "T0", "2026-03-30T10:00:00Z", "meh", "u9")  # not an allowed label
    b.feedback("lost", "T-none", "2026-03-29T09:00:00Z", "down", "u8")  # orphaned
    b.feedback("e0", "T0", "2026-03-30T09:00:00Z", "up", "u0")  # a duplicate event_id
    b.write(tmp_path / "lake")
    with pytest.raises(DataQualityError) as caught:
        run(make_config(tmp_path, **{"curation.data_docs": "inline"}), as_of="2026-03-31T00:00:00Z")
    folder = Path(caught.value.report or "").parent.parent
    line = docs.status(folder)
    assert line.startswith(
        "done: GX agrees with the curation on all 21 expectations (12 checks, 4 failed)"
    ), line
    ours = [c for c in load_manifest(folder)["quality"] if c["name"] != "known_model_versions"]
    theirs = json.loads((folder / "quality" / docs.VERDICTS).read_text())
    assert theirs == ours
    verdicts = {c["name"]: c["success"] for c in ours}
    assert [n for n, ok in verdicts.items() if not ok] == [
        "raw_allowed_labels",
        "orphan_rate",
        "class_ratio",
        "both_classes_in_train",
    ]
    assert sum(verdicts.values()) == 8
    assert (folder / "quality" / "gx" / "index.html").is_file()
    assert "<a href='gx/index.html'>rendered</a>" in (folder / "quality" / "summary.html").read_text()


def test_python_and_great_expectations_agree_row_by_row(tmp_path: Path) -> None:
    """Every kind of expectation over rows that break it: nulls (failing not_null, skipped by
    between and in_set), bounds at and past their edges, an unknown source, times outside the
    window. Same success, unexpected count and first unexpected values as GX's."""
    cfg = make_config(tmp_path).curation
    window = Window.build(parse_as_of("2026-03-31T00:00:00Z"), cfg)
    cutoff, as_of = window.cutoff, window.as_of
    rows = pd.DataFrame(
        {
            "split": ["train"] * 6,
            "label": [True, False, None, True, True, False],
            "trace_id": ["a", "b", "c", None, "e", "f"],
            "event_time": pd.to_datetime(
                [cutoff, as_of, cutoff - dt.timedelta(seconds=1), as_of + dt.timedelta(hours=1), None, as_of],
                utc=True,
            ),
            "model_version": ["v1"] * 6,
            "source": ["thumbs", "edit", None, "telepathy", "thumbs", "rating"],
            "prompt_chars": [1, 9600, 0, None, 9601, 5],
            "completion_chars": [None, 1, 2, 3, 9601, 9600],
        }
    )
    metrics = dict.fromkeys([col for _, col, _, _ in quality.metric_rules(cfg)], 0.0)
    metrics |= {"train_desirable_share": float("nan"), "train_classes": 1.0, "eval_share": 0.04}
    suite = quality.expectations(cfg, window)
    data = quality.frames(cfg, metrics, rows)
    ours = [quality.decide(e, data[e.frame]) for e in suite]
    theirs = quality.run_gx(suite, data, tmp_path / "gx")
    assert [(o.success, o.unexpected_count) for o in ours] == [
        (t.success, t.unexpected_count) for t in theirs
    ]
    assert [repr(o.sample) for o in ours] == [repr(t.sample) for t in theirs]  # repr: nan != nan
    assert {o.expectation.check for o in ours if not o.success} == {
        "both_classes_in_train",
        "min_train_rows",
        "eval_share",
        "curated_required_not_null",
        "curated_lengths",
        "raw_timestamps_in_range",
    }
    assert quality.summarise(ours, metrics) == quality.summarise(theirs, metrics)
