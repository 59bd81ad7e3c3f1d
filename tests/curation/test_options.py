"""Each knob of the SQL chain on small lakes, run without the report (DuckDB only)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from curation.pipeline import Result, Window, connect, run_pipeline
from curation.run import parse_as_of
from curation.snapshot import pii_counts, write_splits
from tests.curation.conftest import make_config
from tests.curation.lakes import LakeBuilder

AS_OF = "2026-03-31T12:00:00Z"


def _curate(
    tmp_path: Path, lake: LakeBuilder, versions: list[str] | None = None, **overrides: Any
) -> tuple[Result, list[dict[str, Any]]]:
    lake.write(tmp_path / "lake")
    cfg = make_config(tmp_path, **overrides).curation
    con = connect(cfg, tmp_path)
    try:
        result = run_pipeline(con, tmp_path / "lake", cfg, Window.build(parse_as_of(AS_OF), cfg), versions)
        out = tmp_path / "snapshot"
        out.mkdir()
        write_splits(con, out, result.params, cfg.snapshot_compression)
        result.counts.update(pii_counts(con))
        rows = con.execute("SELECT * FROM out ORDER BY trace_id, source, user_id").df().to_dict("records")
    finally:
        con.close()
    return result, rows


def _conflict_lake() -> LakeBuilder:
    b = LakeBuilder()
    b.trace("A1", "2026-03-30T08:00:00Z", "p", "c", session_id="sa")
    b.trace("A2", "2026-03-30T08:01:00Z", "p", "c", session_id="sb")
    b.feedback("e1", "A1", "2026-03-30T09:00:00Z", "up", "u1")
    b.feedback("e2", "A2", "2026-03-30T09:00:00Z", "up", "u2")
    b.feedback("e3", "A1", "2026-03-30T09:00:00Z", "down", "u3")
    b.trace("B1", "2026-03-30T08:00:00Z", "q", "d", session_id="sc")
    b.feedback("e4", "B1", "2026-03-30T09:00:00Z", "up", "u1")
    b.feedback("e5", "B1", "2026-03-30T09:00:00Z", "down", "u2")
    b.trace("C1", "2026-03-30T08:00:00Z", "r", "e", session_id="sd")
    b.feedback("e6", "C1", "2026-03-30T09:00:00Z", "down", "u4")
    return b


@pytest.mark.parametrize(
    ("policy", "ties", "expected"),
    [
        (
            "majority",
            "drop",
            {"conflict_minority": 1, "conflict_ties": 2, "conflict_dropped": 0, "after_conflicts": 3},
        ),
        (
            "majority",
            "keep",
            {"conflict_minority": 1, "conflict_ties": 0, "conflict_dropped": 0, "after_conflicts": 5},
        ),
        (
            "drop",
            "drop",
            {"conflict_minority": 0, "conflict_ties": 0, "conflict_dropped": 5, "after_conflicts": 1},
        ),
        (
            "keep",
            "drop",
            {"conflict_minority": 0, "conflict_ties": 0, "conflict_dropped": 0, "after_conflicts": 6},
        ),
    ],
)
def test_conflict_policies(tmp_path: Path, policy: str, ties: str, expected: dict[str, int]) -> None:
    result, _ = _curate(
        tmp_path, _conflict_lake(), **{"curation.conflict_policy": policy, "curation.tie_policy": ties}
    )
    assert {k: result.counts[k] for k in expected} == expected


def _many_sessions(n: int = 200) -> LakeBuilder:
    """Sessions 2k and 2k+1 share a prompt; labels alternate so both classes exist."""
    b = LakeBuilder()
    for i in range(n):
        b.trace(f"T{i}", "2026-03-30T08:00:00Z", f"prompt {i // 2}", f"answer {i}", session_id=f"s{i}")
        b.feedback(f"e{i}", f"T{i}", "2026-03-30T09:00:00Z", "up" if i % 3 else "down", f"u{i}")
    return b


def test_split_is_by_session_deterministic_and_keeps_prompts_on_one_side(tmp_path: Path) -> None:
    result, rows = _curate(tmp_path / "a", _many_sessions(), **{"curation.eval_fraction": 0.3})
    _, again = _curate(tmp_path / "b", _many_sessions(), **{"curation.eval_fraction": 0.3})
    _, other_seed = _curate(
        tmp_path / "c", _many_sessions(), **{"curation.eval_fraction": 0.3, "curation.seed": 7}
    )
    side = {r["trace_id"]: r["split"] for r in rows}
    assert side == {r["trace_id"]: r["split"] for r in again}
    assert side != {r["trace_id"]: r["split"] for r in other_seed}
    train_prompts = {r["prompt"] for r in rows if r["split"] == "train"}
    eval_prompts = {r["prompt"] for r in rows if r["split"] == "eval"}
    assert eval_prompts and train_prompts and not (train_prompts & eval_prompts)
    # a prompt shared with a train session pulled its eval-hashed rows into train, and was counted
    assert result.counts["moved_to_train_shared_prompt"] > 0
    assert result.counts["eval"] + result.counts["train"] == 200
    # a pair reaches eval only when both sessions hash there (about 0.3 * 0.3 of the pairs)
    assert 0 < result.counts["eval"] < 0.3 * 200


def test_split_by_prompt_holds_out_eval_fraction_of_the_prompts(tmp_path: Path) -> None:
    opts = {"curation.eval_fraction": 0.3, "curation.split_by": "prompt"}
    result, rows = _curate(tmp_path / "a", _many_sessions(), **opts)
    _, again = _curate(tmp_path / "b", _many_sessions(), **opts)
    assert {r["trace_id"]: r["split"] for r in rows} == {r["trace_id"]: r["split"] for r in again}
    sides: dict[str, set[str]] = {}
    for r in rows:
        sides.setdefault(r["prompt"], set()).add(r["split"])
    assert all(len(s) == 1 for s in sides.values())  # no prompt on both sides, none moved
    assert result.counts["moved_to_train_shared_prompt"] == 0
    held_out = sum(s == {"eval"} for s in sides.values())
    # 100 prompts, each held out with probability 0.3 (by session, a pair needs both sessions hashed there)
    assert 15 <= held_out <= 45 and result.counts["eval"] == 2 * held_out


def test_downsample_puts_the_class_ratio_in_band(tmp_path: Path) -> None:
    b = LakeBuilder()
    for i in range(40):
        b.trace(f"T{i}", "2026-03-30T08:00:00Z", f"p{i}", f"c{i}", session_id=f"s{i}")
        b.feedback(f"e{i}", f"T{i}", "2026-03-30T09:00:00Z", "up" if i < 10 else "down", f"u{i}")
    result, rows = _curate(tmp_path, b, **{"curation.balance": "downsample", "curation.eval_fraction": 0.0})
    assert result.counts["downsampled"] == 20
    assert result.class_counts["train"] == {"desirable": 10, "undesirable": 10}
    assert (result.balance.desirable_weight, result.balance.undesirable_weight) == (1.0, 1.0)
    assert len(rows) == 20


def test_old_model_versions_age_out_only_with_a_champion_history(tmp_path: Path) -> None:
    b = LakeBuilder()
    for i, version in enumerate(["v0", "v1", "v2", "v3"]):
        b.trace(f"T{i}", "2026-03-30T08:00:00Z", f"p{i}", f"c{i}", version)
        b.feedback(f"e{i}", f"T{i}", "2026-03-30T09:00:00Z", "up" if i % 2 else "down", "u1")
    result, rows = _curate(tmp_path / "a", b, versions=["v3", "v2"])
    assert result.counts["aged_out_by_version"] == 2
    assert sorted(r["model_version"] for r in rows) == ["v2", "v3"]
    result, _ = _curate(tmp_path / "b", b, versions=None)
    assert result.counts["aged_out_by_version"] == 0


def test_anonymous_actions_never_overrule_each_other(tmp_path: Path) -> None:
    b = LakeBuilder()
    b.trace("T1", "2026-03-30T08:00:00Z", "p", "c")
    b.feedback("e1", "T1", "2026-03-30T09:00:00Z", "up", None)
    b.feedback("e2", "T1", "2026-03-30T10:00:00Z", "up", None)
    result, _ = _curate(tmp_path, b)
    assert result.counts["superseded"] == 0
    assert result.counts["after_latest_action"] == 2


def test_pii_kinds_are_redacted_and_counted(tmp_path: Path) -> None:
    b = LakeBuilder()
    texts = {
        "T1": ("write to a.b@mail.example.org please", "ok"),
        "T2": ("my ip is 10.0.0.254", "noted"),
        "T3": ("call (415) 555-0100", "sure"),
        "T4": ("pay with 5500-0000-0000-0004", "done"),
        "T5": ("version 1.2 of the 2026 report", "released on 2026-03-01"),
    }
    for i, (trace_id, (prompt, completion)) in enumerate(texts.items()):
        b.trace(trace_id, "2026-03-30T08:00:00Z", prompt, completion)
        b.feedback(f"e{i}", trace_id, "2026-03-30T09:00:00Z", "up" if i % 2 else "down", f"u{i}")
    result, rows = _curate(tmp_path, b)
    prompts = {r["trace_id"]: r["prompt"] for r in rows}
    assert prompts == {
        "T1": "write to [EMAIL] please",
        "T2": "my ip is [IP]",
        "T3": "call [PHONE]",
        "T4": "pay with [CARD]",
        "T5": "version 1.2 of the 2026 report",
    }
    assert [result.counts[f"pii_{k}"] for k in ("email", "ip", "phone", "card")] == [1, 1, 1, 1]
    # the audit columns: what was redacted in each row, and the lengths after redaction
    assert {r["trace_id"]: r["redacted"] for r in rows} == {
        "T1": "email",
        "T2": "ip",
        "T3": "phone",
        "T4": "card",
        "T5": "",
    }
    assert all(r["prompt_chars"] == len(r["prompt"]) for r in rows)
    assert all(r["completion_chars"] == len(r["completion"]) for r in rows)
    _, kept = _curate(tmp_path / "off", b, **{"curation.redact_pii": False})
    assert {r["prompt"] for r in kept} == {p for p, _ in texts.values()}


def test_the_window_reads_only_its_date_folders(tmp_path: Path) -> None:
    b = LakeBuilder()
    b.trace("T1", "2026-03-30T08:00:00Z", "p", "c")
    b.feedback("e1", "T1", "2026-03-30T09:00:00Z", "up", "u1")
    for day in ("2026-01-05", "2026-01-06"):
        b.feedback(f"old-{day}", "T1", f"{day}T09:00:00Z", "up", "u2")
    b.feedback("future", "T1", "2026-04-02T09:00:00Z", "down", "u3")
    result, _ = _curate(tmp_path, b)
    assert result.inputs["feedback_files"] == 1
    assert (result.inputs["feedback_older_files"], result.counts["aged_out_by_date_folders"]) == (2, 2)
    assert result.counts["read"] == 1 and result.counts["after_as_of"] == 0


def test_bad_as_of_and_bad_options_say_what_to_do() -> None:
    from core.errors import ConfigError
    from curation.errors import CurationError

    with pytest.raises(CurationError, match="RFC 3339"):
        parse_as_of("yesterday")
    with pytest.raises(CurationError, match="no UTC offset"):
        parse_as_of("2026-03-31T12:00:00")
    assert parse_as_of("2026-03-31T14:00:00+02:00") == dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC)
    with pytest.raises(ConfigError, match="conflict_policy must be one of"):
        make_config(Path("."), **{"curation.conflict_policy": "vote"})
    with pytest.raises(ConfigError, match="unknown checks"):
        make_config(Path("."), **{"curation.critical_checks": ("no_such_check",)})
    with pytest.raises(ConfigError, match="split_by must be one of"):
        make_config(Path("."), **{"curation.split_by": "user"})


def test_a_window_where_every_row_is_dropped_gives_zero_counts(tmp_path: Path) -> None:
    # All feedback is orphaned (its trace never arrives): the chain must end with an empty,
    # fully counted result rather than fail on aggregates over no rows.
    b = LakeBuilder()
    b.trace("T1", "2026-03-30T08:00:00Z", "p", "c")
    b.feedback("e1", "MISSING", "2026-03-20T09:00:00Z", "up", "u1")
    result, rows = _curate(tmp_path, b)
    assert rows == []
    assert result.counts["train"] == 0 and result.counts["eval"] == 0
    assert [result.counts[f"pii_{k}"] for k in ("email", "ip", "phone", "card")] == [0, 0, 0, 0]
    assert result.class_counts == {s: {"desirable": 0, "undesirable": 0} for s in ("train", "eval")}
