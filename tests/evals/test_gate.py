"""The gate end to end on the tiny world: worse candidates are rejected for the right reason, a
better one is promoted, the report is written, and the champion changes only through the registry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.registry import Registry
from evals.errors import EvalError
from evals.run import run
from flywheel import cli
from flywheel import config as cfgmod
from tests.evals import world as w

GATE = {
    "evals.judge": "rubric",
    "evals.rubric": "flywheel.dev.world:World.rubric",
    "evals.replay_prompts": 24,
    "evals.max_new_tokens": 20,
    "evals.bootstrap_samples": 400,
}


@pytest.fixture(scope="module")
def gate(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A registry with the tiny world's base as champion and four candidates, and a snapshot."""
    root = tmp_path_factory.mktemp("gate")
    paths = {"paths.registry": str(root / "registry"), "paths.lake": str(root / "lake")}
    config = cfgmod.load(None, env={}, overrides={**paths, **GATE, "paths.cache": str(tiny_world.parents[1])})
    registry = Registry.from_config(config)
    registry.register(tiny_world, champion=True, version="base")
    models = root / "models"
    builds = {
        "better": lambda out: w.finetune(tiny_world, out, w.feedback_pairs("better")),
        "flipped": lambda out: w.finetune(tiny_world, out, w.feedback_pairs("flipped")),
        "padded": lambda out: w.finetune(tiny_world, out, w.feedback_pairs("padded")),
        "random": lambda out: w.random_weights(tiny_world, out),
    }
    for name, make in builds.items():
        folder = make(models / name)
        with registry.stage(
            name, {"kind": "candidate", "snapshot_id": "snap1", "base_version": "base"}
        ) as dst:
            for f in folder.iterdir():
                (dst / f.name).write_bytes(f.read_bytes())
    snapshot = w.write_snapshot(root / "lake" / "curated" / "snap1", rows=256)
    toml = root / "flywheel.toml"
    toml.write_text(cfgmod.to_toml(config, only=("paths", "evals")), encoding="utf-8")
    return {"config": config, "registry": registry, "snapshot": snapshot, "toml": toml}


def failed(decision: Any) -> set[str]:
    return {c.name for c in decision.checks if not c.passed}


def test_candidate_trained_on_user_feedback_is_promoted(gate: dict[str, Any], capsys: Any) -> None:
    # Through the command line: exit 0 means promote; the champion is not switched by the gate.
    code = cli.main(["eval", "--config", str(gate["toml"]), "--candidate", "better"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("PROMOTE better over champion base (snapshot snap1)")
    assert gate["registry"].champion() == "base"
    folder = gate["registry"].root / "evals" / "better-vs-base"
    report = json.loads((folder / "eval_report.json").read_text())
    assert report["decision"] == "promote" and all(c["passed"] for c in report["checks"])
    agreement, replay = report["metrics"]["agreement"], report["metrics"]["replay"]
    assert agreement["auc"]["low"] > 0.5 and agreement["margin"]["low"] > 0
    assert replay["win_rate"]["value"] > 0.5 and replay["lc_win_rate"]["value"] > 0.5
    assert report["examples"]["Biggest wins of the candidate"]
    html = (folder / "report.html").read_text()
    assert (
        html.index("PROMOTE")
        < html.index("<h2>Reasons")
        < html.index("<h2>Metrics")
        < html.index("<h2>Plots")
    )
    assert html.count("data:image/png;base64,") == 4  # reward by label, lengths, slices, replay slices
    # every replayed prompt has a workload tag: the replay slices share out all of them
    slices = report["metrics"]["replay_slices"]
    assert sum(s["prompts"] for s in slices) == replay["prompts"] == GATE["evals.replay_prompts"]
    assert sum(s["wins"] + s["ties"] + s["losses"] for s in slices) == replay["pairs"]
    # Every prompt is answered 16 times by each model; the rubric compares each candidate answer
    # with four champion answers.
    assert replay["samples_per_prompt"] == 16 and replay["pairs"] == 24 * 16 * 4
    assert replay["prompts_available"] == len(
        {*pq.read_table(gate["snapshot"] / "eval.parquet")["prompt"].to_pylist()}
    )
    assert report["deciding_check"] == "primary:lc_win_rate" and report["reasons"][0].startswith(
        "primary:lc_win_rate"
    )
    assert (folder / "config.toml").is_file()


def test_candidate_trained_on_flipped_labels_is_rejected(gate: dict[str, Any]) -> None:
    d = run(gate["config"], candidate="flipped", snapshot=gate["snapshot"])
    assert not d.promote
    # Whichever evidence decides (the judge, or users' thumbs when the judge's taste for length looks
    # unlike theirs on these pairs), the candidate is worse than the champion.
    assert d.deciding is not None and d.deciding.name.startswith("primary:")
    assert d.reasons[0].startswith(f"{d.deciding.name} [VETO]") and "worse than the champion" in d.reasons[0]
    assert {d.deciding.name, "approved_mass", "slices"} <= failed(d)
    assert d.metrics["replay"]["win_rate"]["high"] < 0.5  # and the judge agrees
    # Without a judge, the agreement with held-out thumbs rejects it as clearly.
    d = run(gate["config"].replace(**{"evals.judge": "none"}), candidate="flipped", snapshot=gate["snapshot"])
    assert not d.promote and d.reasons[0].startswith("primary:auc [VETO]") and "worse than" in d.reasons[0]
    assert {"primary:auc", "approved_mass", "slices"} <= failed(d)


def test_candidate_pushed_towards_padding_is_rejected_for_what_users_get(gate: dict[str, Any]) -> None:
    # Users here approve concise answers: the judge that shares their taste prefers the champion.
    code = cli.main(["eval", "--config", str(gate["toml"]), "--candidate", "padded"])
    assert code == cli.EXIT_REJECTED
    report = json.loads((gate["registry"].root / "evals" / "padded-vs-base" / "eval_report.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["primary:lc_win_rate"]["outcome"] == "veto" and checks["approved_mass"]["outcome"] == "veto"
    # Longer, but within the runaway bound: length alone is not what rejects it.
    assert checks["length_ratio"]["passed"] and checks["length_ratio"]["value"] > 1.5


def test_a_candidate_that_only_got_longer_is_rejected_by_length_control_under_a_length_biased_judge(
    gate: dict[str, Any],
) -> None:
    biased = gate["config"].replace(**{"evals.rubric": "tests.evals.worlds:length_biased_judge"})
    d = run(biased, candidate="padded", snapshot=gate["snapshot"])
    replay = d.metrics["replay"]
    assert replay["win_rate"]["low"] > 0.5  # the biased judge prefers the longer answers
    pref = replay["length_preference"]
    assert (pref["judge_prefers"], pref["users_prefer"], pref["controlled"]) == ("longer", "shorter", True)
    assert not d.promote and d.deciding is not None and d.deciding.name == "length_control"
    assert d.reasons[0].startswith("length_control [VETO]: the win does not survive length control")


def test_random_weights_are_rejected_for_drift_support_and_the_approved_mass(gate: dict[str, Any]) -> None:
    d = run(gate["config"].replace(**{"evals.judge": "none"}), candidate="random", snapshot=gate["snapshot"])
    assert not d.promote
    assert {"primary:auc", "kl_drift", "approved_mass", "support"} <= failed(d)
    assert d.metrics["replay"]["kl_per_token"]["value"] > 1.0


def test_nightly_flow_promote_then_rollback_and_a_failed_switch(
    gate: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry: Registry = gate["registry"]
    # Agreement alone decides here (replay is covered above), to keep the test short.
    d = run(
        gate["config"].replace(**{"evals.replay_prompts": 0}), candidate="better", snapshot=gate["snapshot"]
    )
    assert d.promote
    evidence = {"report": str(d.report_path), "auc": d.metrics["agreement"]["auc"]["value"]}
    # A crash after the report is written and before the pointer is renamed: the champion stays.
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda s, t: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        registry.promote("better", reason="gate passed", evidence=evidence)
    monkeypatch.setattr(os, "replace", real)
    assert registry.champion() == "base"
    registry.promote("better", reason="gate passed", evidence=evidence)
    assert registry.champion() == "better"
    assert registry.history()[-1].evidence == evidence
    registry.rollback("regression in production")
    assert registry.champion() == "base"


def test_default_candidate_and_snapshot_come_from_the_registry(gate: dict[str, Any]) -> None:
    # The newest trained candidate ("random") and the snapshot it names in its manifest.
    d = run(gate["config"].replace(**{"evals.replay_prompts": 0}))
    assert (d.candidate, d.snapshot) == ("random", "snap1")
    assert "replay" not in d.metrics and not d.promote


def test_unusable_snapshots_are_clear_errors(gate: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(EvalError, match=r"eval\.parquet does not exist"):
        run(gate["config"], candidate="better", snapshot=tmp_path)
    pq.write_table(
        pa.table({"prompt": ["a"], "completion": ["b"], "label": [True], "trace_id": ["t"]}),
        tmp_path / "eval.parquet",
    )
    with pytest.raises(EvalError, match="only thumbs-up"):
        run(gate["config"], candidate="better", snapshot=tmp_path)
    pq.write_table(pa.table({"prompt": ["a"], "label": [True]}), tmp_path / "eval.parquet")
    with pytest.raises(EvalError, match="lacks column"):
        run(gate["config"], candidate="better", snapshot=tmp_path)
    with pytest.raises(EvalError, match="is the champion"):
        run(gate["config"], candidate="base", snapshot=gate["snapshot"])
