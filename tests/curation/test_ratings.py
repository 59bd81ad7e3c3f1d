"""Ratings in curation: a score by its place on its declared scale against the configured thresholds,
a category by the configured lists; ratings in between, or in no list, are counted, not trained on."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from curation.config import CurationConfig
from tests.curation.lakes import LakeBuilder
from tests.curation.test_options import _curate


def _rating(b: LakeBuilder, event_id: str, trace_id: str, score: float | None, scale=(1.0, 5.0), label=None):
    b.feedback(
        event_id, trace_id, "2026-03-30T09:00:00Z", label=label, user_id=f"u-{event_id}", kind="rating"
    )
    row = b.rows["feedback"][-1]
    if score is not None:
        row.update(score=score, scale_min=scale[0], scale_max=scale[1])


def test_scores_and_categories_map_by_the_configured_thresholds_and_table(tmp_path: Path):
    b = LakeBuilder()
    for i in range(8):
        b.trace(f"T{i}", "2026-03-30T08:00:00Z", f"prompt {i}", f"answer {i}", session_id=f"s{i}")
    _rating(b, "five", "T0", 5)  # top of 1-5: desirable
    _rating(b, "four", "T1", 4)  # 0.75 of the way: desirable at the default 0.75
    _rating(b, "three", "T2", 3)  # 0.5: in between, not trained on
    _rating(b, "two", "T3", 2)  # 0.25: undesirable
    _rating(b, "zero", "T4", 0.1, scale=(0.0, 1.0))  # 0-1 scale: undesirable
    _rating(b, "helpful", "T5", None, label="helpful")  # categories through the table
    _rating(b, "harmful", "T6", None, label="hallucination")
    _rating(b, "odd", "T7", None, label="too-long")  # in neither list
    result, rows = _curate(tmp_path, b, **{"curation.eval_fraction": 0.0})
    by_event = {r["event_id"]: (r["label"], r["source"]) for r in rows}
    assert by_event == {
        "five": (True, "rating"),
        "four": (True, "rating"),
        "two": (False, "rating"),
        "zero": (False, "rating"),
        "helpful": (True, "rating"),
        "harmful": (False, "rating"),
    }
    c = result.counts
    assert (
        c["ratings_desirable"],
        c["ratings_undesirable"],
        c["ratings_between"],
        c["ratings_unmapped"],
    ) == (
        3,
        3,
        1,
        1,
    )
    assert (c["untrained_rating"], c["invalid"], c["after_join"]) == (2, 0, 6)


def test_thresholds_and_categories_come_from_the_config(tmp_path: Path):
    b = LakeBuilder()
    for i in range(3):
        b.trace(f"T{i}", "2026-03-30T08:00:00Z", f"prompt {i}", f"answer {i}", session_id=f"s{i}")
    _rating(b, "three", "T0", 3)
    _rating(b, "four", "T1", 4)
    _rating(b, "meh", "T2", None, label="meh")
    result, rows = _curate(
        tmp_path,
        b,
        **{
            "curation.eval_fraction": 0.0,
            "curation.rating_desirable_at": 0.9,
            "curation.rating_undesirable_at": 0.5,
            "curation.undesirable_categories": ["meh"],
        },
    )
    assert {r["event_id"]: r["label"] for r in rows} == {"three": False, "meh": False}
    assert result.counts["ratings_between"] == 1


def test_lakes_written_before_ratings_existed_still_curate(tmp_path: Path):
    b = LakeBuilder()
    b.trace("T0", "2026-03-30T08:00:00Z", "p", "c", session_id="s0")
    b.feedback("e0", "T0", "2026-03-30T09:00:00Z", "up", "u1")
    b.write(tmp_path / "lake")
    # rewrite the feedback files without the rating columns, as ingest wrote them before
    for path in (tmp_path / "lake" / "raw" / "feedback").rglob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.drop_columns(["score", "scale_min", "scale_max"]), path)
        assert "score" not in pq.read_schema(path).names
    result, rows = _curate(tmp_path, LakeBuilder())
    assert [r["event_id"] for r in rows] == ["e0"] and result.counts["ratings_desirable"] == 0


def test_the_config_refuses_crossed_thresholds_and_a_category_in_both_lists():
    problems = CurationConfig(
        rating_desirable_at=0.3,
        rating_undesirable_at=0.6,
        desirable_categories=("x",),
        undesirable_categories=("x",),
    ).validate()
    assert any("rating_undesirable_at < rating_desirable_at" in p for p in problems)
    assert any("both desirable and undesirable: ['x']" in p for p in problems)
