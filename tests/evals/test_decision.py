"""The decision in memory: the primary interval must exclude no improvement and every guard must pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from evals.config import EvalsConfig
from evals.decision import decide
from flywheel import config as cfgmod


def est(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "low": low, "high": high, "n": 100}


def metrics(**changes: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "agreement": {
            "auc": est(0.7, 0.6, 0.8),
            "margin": est(0.3, 0.1, 0.5),
            "chosen_logp_change": est(0.1, 0.0, 0.2),
            "length_matched": {"pairs": 900, "bins": 4, "auc": est(0.68, 0.58, 0.78)},
            "approved_mass": {"prompts": 40, "change_per_token": est(0.05, 0.01, 0.09)},
            "rows": 100,
            "thumbs_up": 40,
            "thumbs_down": 60,
            "clusters": 50,
        },
        "replay": {
            "length_ratio": 1.0,
            "mean_length_candidate": 10.0,
            "mean_length_champion": 10.0,
            "kl_per_token": est(0.1, 0.05, 0.15),
            "win_rate": est(0.55, 0.47, 0.63),
            "lc_win_rate": est(0.55, 0.47, 0.63),
            "length_preference": {"controlled": False, "judge_prefers": "shorter", "users_prefer": "shorter"},
            "unsupported": {"candidate": 0.06, "champion": 0.05, "increase": est(0.01, -0.03, 0.05)},
            "degenerate": {"candidate": 0.01, "champion": 0.01, "increase": est(0.0, -0.02, 0.02)},
            "refusal_rate_candidate": 0.0,
            "refusal_rate_champion": 0.0,
        },
        "slices": [
            {"key": "workload", "value": "a", "rows": 50, "judged": True, "auc": est(0.7, 0.6, 0.8)},
            {"key": "workload", "value": "b", "rows": 5, "judged": False, "auc": est(0.1, 0.0, 0.3)},
        ],
    }
    for path, value in changes.items():
        group, key = path.split("__")
        m[group][key] = value
    return m


def test_a_clear_improvement_with_every_guard_passing_is_promoted() -> None:
    d = decide(metrics(), EvalsConfig(), "v2", "v1", "snap")
    assert d.promote
    assert [c.name for c in d.checks] == [
        "min_evidence",
        "primary:auc",
        "length_control",
        "length_ratio",
        "approved_mass",
        "kl_drift",
        "support",
        "degenerate",
        "refusal",
        "slices",
    ]
    assert all(c.outcome == "pass" for c in d.checks)
    # The deciding check comes first: on promotion, the primary metric.
    assert d.deciding is not None and d.deciding.name == "primary:auc"
    assert d.reasons[0].startswith("primary:auc: auc 0.700, 95% CI [0.600, 0.800] excludes no improvement")
    assert (
        d.reasons[1] == "min_evidence: 40 thumbs-up / 60 thumbs-down held-out rows in 50 session_id clusters"
    )
    assert "PROMOTE v2 over champion v1" in d.summary()
    assert d.to_dict()["deciding_check"] == "primary:auc"


@pytest.mark.parametrize(
    ("change", "failing", "text"),
    [
        ({"agreement__auc": est(0.55, 0.48, 0.62)}, "primary:auc", "does not exclude no improvement (0.5)"),
        ({"agreement__auc": est(0.3, 0.2, 0.4)}, "primary:auc", "worse than the champion"),
        (
            {"agreement__approved_mass": {"prompts": 40, "change_per_token": est(-0.5, -0.7, -0.3)}},
            "approved_mass",
            "probability leaves the completions users approved",
        ),
        ({"replay__length_ratio": 4.2}, "length_ratio", "outside the runaway bound [0.10, 4.00]"),
        ({"replay__length_ratio": 0.05}, "length_ratio", "outside"),
        ({"replay__kl_per_token": est(1.4, 1.2, 1.6)}, "kl_drift", "above 1.0"),
        (
            {"replay__unsupported": {"candidate": 0.9, "champion": 0.05, "increase": est(0.85, 0.8, 0.9)}},
            "support",
            "90% of the candidate's answers are ones the champion would not write",
        ),
        (
            {"replay__degenerate": {"candidate": 0.6, "champion": 0.02, "increase": est(0.58, 0.5, 0.66)}},
            "degenerate",
            "empty, unfinished or repetitive answers 60%",
        ),
        ({"replay__refusal_rate_candidate": 0.2}, "refusal", "refusal rate 0.200"),
    ],
)
def test_each_failure_rejects_with_its_reason_first(change: dict[str, Any], failing: str, text: str) -> None:
    d = decide(metrics(**change), EvalsConfig(), "v2", "v1", "snap")
    assert not d.promote
    assert [c.name for c in d.checks if not c.passed] == [failing]
    assert d.reasons[0].startswith(f"{failing} [VETO]: ") and text in d.reasons[0]
    assert d.deciding is not None and d.deciding.name == failing
    assert len(d.reasons) == len(d.checks)  # passing checks are listed too, after the failures


@pytest.mark.parametrize(
    ("counts", "text"),
    [
        ({"thumbs_up": 9, "thumbs_down": 4, "rows": 13, "clusters": 13}, "only 9 thumbs-up / 4 thumbs-down"),
        ({"thumbs_up": 19, "thumbs_down": 60}, "only 19 thumbs-up / 60 thumbs-down held-out rows; need 20"),
        ({"thumbs_up": 60, "thumbs_down": 19}, "only 60 thumbs-up / 19 thumbs-down held-out rows; need 20"),
        ({"clusters": 29}, "only 29 session_id clusters to resample; need 30"),
    ],
)
def test_a_small_eval_slice_is_rejected_however_perfect_its_interval(
    counts: dict[str, int], text: str
) -> None:
    m = metrics()
    # What thirteen held-out rows give: a perfect, zero-width interval that proves nothing.
    m["agreement"].update(auc=est(1.0, 1.0, 1.0), **counts)
    d = decide(m, EvalsConfig(), "v2", "v1", "snap")
    assert not d.promote
    assert [c.name for c in d.checks if not c.passed] == ["min_evidence"]
    assert d.reasons[0].startswith("min_evidence [VETO]: ") and text in d.reasons[0]
    assert "collect more feedback or raise curation.eval_fraction" in d.reasons[0]
    assert "need 20 of each" in d.reasons[0] or "need 30" in d.reasons[0]


def test_evidence_thresholds_are_the_configs_and_win_rates_count_replay_pairs() -> None:
    exact = metrics()
    exact["agreement"].update(thumbs_up=20, thumbs_down=20, clusters=30)
    assert decide(exact, EvalsConfig(), "v2", "v1", "snap").promote  # the thresholds are inclusive
    stricter = decide(exact, EvalsConfig(min_eval_rows_per_class=21), "v2", "v1", "snap")
    assert not stricter.promote and "need 21 of each" in stricter.reasons[0]
    few_pairs = metrics()
    few_pairs["replay"]["win_rate"] = few_pairs["replay"]["lc_win_rate"] = {**est(0.9, 0.8, 1.0), "n": 12}
    wr = decide(few_pairs, EvalsConfig(primary_metric="win_rate", judge="none"), "a", "b", "s")
    assert not wr.promote and [c.name for c in wr.checks if not c.passed] == ["min_evidence"]
    assert "only 12 judged replay pairs; need 30" in wr.reasons[0]
    missing = {k: v for k, v in metrics()["agreement"].items() if k not in ("thumbs_up", "thumbs_down")}
    no_counts = decide({**metrics(), "agreement": missing}, EvalsConfig(), "a", "b", "s")
    assert not no_counts.promote and "only 0 thumbs-up / 0 thumbs-down" in no_counts.reasons[0]


def test_a_regressing_slice_rejects_and_small_slices_are_not_judged() -> None:
    m = metrics()
    m["slices"][0]["auc"] = est(0.3, 0.2, 0.4)
    d = decide(m, EvalsConfig(), "v2", "v1", "snap")
    assert not d.promote
    assert (
        d.reasons[0] == "slices [VETO]: slice regression: workload=a (AUC 0.300, CI [0.200, 0.400], 50 rows)"
    )
    assert "workload=b" not in d.reasons[0]
    # Below the floor but not significantly below 0.5: the noise of a slice, not a regression.
    m["slices"][0]["auc"] = est(0.3, 0.1, 0.55)
    assert decide(m, EvalsConfig(), "v2", "v1", "snap").promote


def replay_slice(value: str, prompts: int, win_rate: dict[str, float]) -> dict[str, Any]:
    return {
        "key": "workload",
        "value": value,
        "prompts": prompts,
        "judged": prompts >= 20,
        "win_rate": win_rate,
    }


def test_a_replay_slice_that_loses_rejects_and_small_replay_slices_are_not_judged() -> None:
    m = metrics()
    m["replay_slices"] = [replay_slice("a", 30, est(0.6, 0.5, 0.7)), replay_slice("b", 5, est(0.0, 0.0, 0.0))]
    d = decide(m, EvalsConfig(), "v2", "v1", "snap")
    assert d.promote  # b lost every pair, but 5 prompts are not evidence
    assert "replay_slices: 1 replay slice(s), none significantly below 0.400" in d.reasons
    m["replay_slices"][0]["win_rate"] = est(0.3, 0.15, 0.45)
    d = decide(m, EvalsConfig(), "v2", "v1", "snap")
    assert not d.promote
    assert d.reasons[0] == (
        "replay_slices [VETO]: replay slice regression: workload=a (win rate 0.300, CI [0.150, 0.450], 30 prompts)"
    )
    # the threshold is the config's
    assert decide(m, EvalsConfig(max_slice_win_drop=0.25), "v2", "v1", "snap").promote


def test_replay_slice_metrics_count_and_estimate_per_tag_value() -> None:
    import numpy as np

    from evals.replay import Replay, slice_metrics

    judgement = np.array([1.0, 1.0, 0.5, 0.0, 0.0, 0.0, 1.0])
    tags = [{"workload": "a"}] * 4 + [{"workload": "b"}] * 2 + [{}]
    r = Replay(
        prompts=[f"p{i}" for i in range(7)],
        candidate=[""] * 7,
        champion=[""] * 7,
        clusters=np.arange(7),
        tags=tags,
        kl_per_token=np.zeros(7),
        judgement=judgement,
        margin=judgement - 0.5,
    )
    cfg = EvalsConfig(min_slice_prompts=3, bootstrap_samples=200)
    a, b = slice_metrics(r, cfg)  # the untagged prompt is in no slice
    assert (a["value"], a["prompts"], a["wins"], a["ties"], a["losses"], a["judged"]) == (
        "a",
        4,
        2,
        1,
        1,
        True,
    )
    assert a["win_rate"]["value"] == pytest.approx(2.5 / 4)
    assert a["win_rate"]["low"] <= a["win_rate"]["value"] <= a["win_rate"]["high"]
    assert (b["prompts"], b["losses"], b["judged"], b["win_rate"]["value"]) == (2, 2, False, 0.0)
    assert slice_metrics(Replay(**{**r.__dict__, "judgement": None}), cfg) == []


def test_format_guard_and_other_primary_metrics() -> None:
    m = metrics()
    m["replay"].update(format_rate_candidate=0.5, format_rate_champion=0.9)
    d = decide(m, EvalsConfig(format_regex=r"^\d"), "v2", "v1", "s")
    assert [c.name for c in d.checks if not c.passed] == ["format"]
    won = metrics()
    won["replay"]["win_rate"] = won["replay"]["lc_win_rate"] = est(0.6, 0.52, 0.7)
    assert decide(won, EvalsConfig(primary_metric="win_rate", judge="none"), "a", "b", "s").promote
    m = metrics()
    m["replay"]["lc_win_rate"] = est(0.55, 0.45, 0.65)
    m["replay"]["win_rate"] = est(0.55, 0.45, 0.65)
    lc = decide(m, EvalsConfig(primary_metric="lc_win_rate"), "a", "b", "s")
    assert not lc.promote and "lc_win_rate 0.550" in lc.reasons[0]
    no_replay = {k: v for k, v in metrics().items() if k != "replay"}
    missing = decide(no_replay, EvalsConfig(primary_metric="win_rate"), "a", "b", "s")
    assert not missing.promote and "was not measured" in missing.reasons[0]


def test_bad_gate_settings_are_reported_together(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[evals]\nprimary_metric = "vibes"\njudge = "endpoint"\nci_level = 1.5\n'
        'min_length_ratio = 5.0\nformat_regex = "("\nmin_eval_rows_per_class = 0\n'
        "min_slice_prompts = 0\nmax_slice_win_drop = 0.9\n"
    )
    with pytest.raises(ConfigError) as info:
        cfgmod.load(f, env={})
    text = str(info.value)
    for expected in (
        "primary_metric 'vibes'",
        "judge = endpoint needs",
        "ci_level",
        "min_length_ratio",
        "format_regex",
        "never promotes without held-out evidence",
        "min_slice_rows and min_slice_prompts must be >= 1",
        "max_slice_auc_drop and max_slice_win_drop must be in [0, 0.5]",
    ):
        assert expected in text
    with pytest.raises(ConfigError, match="needs replay"):
        cfgmod.load(None, env={}, overrides={"evals.primary_metric": "win_rate"})
    with pytest.raises(ConfigError, match='must be "module:function"'):
        cfgmod.load(None, env={}, overrides={"evals.judge": "rubric"})


def test_a_judged_win_turns_drift_checks_into_warnings_but_not_degeneration() -> None:
    m = metrics()
    m["replay"]["win_rate"] = m["replay"]["lc_win_rate"] = est(0.6, 0.52, 0.7)
    m["agreement"]["approved_mass"]["change_per_token"] = est(-0.5, -0.7, -0.3)
    m["replay"]["kl_per_token"] = est(1.4, 1.2, 1.6)
    m["replay"]["unsupported"]["increase"] = est(0.5, 0.4, 0.6)
    without = decide(m, EvalsConfig(), "v2", "v1", "s")  # primary auc, but the judge also won
    assert without.promote
    assert {c.name for c in without.checks if c.outcome == "warning"} == {
        "approved_mass",
        "kl_drift",
        "support",
    }
    assert any(r.startswith("kl_drift [WARNING]: ") and "the judge preferred" in r for r in without.reasons)
    # Without a significant judged win the same figures veto.
    m["replay"]["lc_win_rate"] = est(0.52, 0.45, 0.6)
    m["replay"]["win_rate"] = est(0.52, 0.45, 0.6)
    vetoed = decide(m, EvalsConfig(), "v2", "v1", "s")
    assert not vetoed.promote
    assert {c.name for c in vetoed.checks if c.outcome == "veto"} == {"approved_mass", "kl_drift", "support"}
    # Degenerate answers veto whatever the judge said.
    m = metrics()
    m["replay"]["degenerate"]["increase"] = est(0.5, 0.4, 0.6)
    assert [c.name for c in decide(m, EvalsConfig(), "v2", "v1", "s").checks if c.outcome == "veto"] == [
        "degenerate"
    ]


def test_a_win_by_length_alone_is_vetoed_by_length_control_and_decides() -> None:
    m = metrics()
    m["replay"]["win_rate"] = est(0.7, 0.62, 0.78)
    m["replay"]["lc_win_rate"] = est(0.5, 0.4, 0.6)
    m["replay"]["length_preference"] = {
        "controlled": True,
        "judge_prefers": "longer",
        "users_prefer": "shorter",
    }
    d = decide(m, EvalsConfig(judge="rubric", rubric="m:f", primary_metric="lc_win_rate"), "v2", "v1", "s")
    assert not d.promote
    assert {c.name for c in d.checks if c.outcome == "veto"} == {"primary:lc_win_rate", "length_control"}
    assert d.deciding is not None and d.deciding.name == "length_control"
    assert d.reasons[0].startswith("length_control [VETO]: the win does not survive length control")
    assert "the judge prefers longer answers, users' thumbs shorter" in d.reasons[0]
    # At auto, such a judge cannot be the primary: users' own thumbs (the AUC) decide, and the
    # win by length still vetoes.
    d = decide(m, EvalsConfig(judge="rubric", rubric="m:f"), "v2", "v1", "s")
    assert {c.name for c in d.checks if c.outcome == "veto"} == {"length_control"}
    primary = next(c for c in d.checks if c.name.startswith("primary:"))
    assert primary.name == "primary:auc" and "so their thumbs decide" in primary.reason


def test_length_control_without_a_judge_warns_and_says_when_it_cannot_test() -> None:
    m = {k: v for k, v in metrics().items() if k != "replay"}
    m["agreement"]["length_matched"] = {"pairs": 900, "bins": 4, "auc": est(0.5, 0.4, 0.6)}
    d = decide(m, EvalsConfig(), "v2", "v1", "s")
    check = next(c for c in d.checks if c.name == "length_control")
    assert d.promote and check.outcome == "warning"
    assert "does not survive among completions of like length" in check.reason
    m["agreement"]["length_matched"] = {"pairs": 12, "bins": 2}
    check = next(c for c in decide(m, EvalsConfig(), "v2", "v1", "s").checks if c.name == "length_control")
    assert check.passed and "not testable: only 12" in check.reason


def test_auto_primary_is_the_length_controlled_win_rate_with_a_judge() -> None:
    assert EvalsConfig().primary() == "auc"
    assert EvalsConfig(judge="rubric", rubric="m:f").primary() == "lc_win_rate"
    assert EvalsConfig(judge="rubric", rubric="m:f", replay_prompts=0).primary() == "auc"
    assert EvalsConfig(judge="rubric", rubric="m:f", primary_metric="auc").primary() == "auc"
    assert EvalsConfig(temperature=0).replay_draws() == 1 and EvalsConfig().replay_draws() == 16
    m = metrics()
    m["replay"]["win_rate"] = m["replay"]["lc_win_rate"] = est(0.6, 0.52, 0.7)
    d = decide(m, EvalsConfig(judge="rubric", rubric="m:f"), "v2", "v1", "s")
    assert d.promote and d.deciding is not None and d.deciding.name == "primary:lc_win_rate"


def test_a_judge_whose_length_taste_differs_from_users_cannot_soften_their_evidence() -> None:
    m = metrics()
    m["replay"]["win_rate"] = m["replay"]["lc_win_rate"] = est(0.6, 0.52, 0.7)
    m["replay"]["length_preference"] = {
        "controlled": True,
        "judge_prefers": "longer",
        "users_prefer": "shorter",
    }
    m["agreement"]["approved_mass"]["change_per_token"] = est(-0.3, -0.4, -0.2)
    d = decide(m, EvalsConfig(judge="rubric", rubric="m:f"), "v2", "v1", "s")
    assert not d.promote and d.deciding is not None and d.deciding.name == "approved_mass"
    m["replay"]["length_preference"]["controlled"] = False
    assert decide(m, EvalsConfig(judge="rubric", rubric="m:f"), "v2", "v1", "s").promote
