"""`flywheel nightly --set training.method=M` runs a whole round (curate, train, gate, promote) for
every training method, on a raw lake of the tiny world whose feedback holds edits and opposite
thumbs on one prompt (so curation mines pairs), a fifth of it chat prompts.

The lake is written as the ingest writes it (tests/curation/lakes.py), so the round's stages are
all real: curation (with the pairs step), TRL training, the gate with the tiny world's rubric as
judge, and the registry. Each session holds out whole prompts (``session_id`` per prompt), so the
gate's held-out rows are prompt-disjoint from the train split at ``eval_fraction`` 0.5.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from core.registry import Registry
from flywheel import config as cfgmod
from flywheel import ledger
from flywheel.cli import main
from tests.curation.lakes import tiny_world_day as build_lake
from tests.fixtures_model import SHARED_CACHE


@pytest.fixture(scope="module")
def raw_lake(tmp_path_factory: pytest.TempPathFactory, world: Any) -> Path:
    return build_lake(world, tmp_path_factory.mktemp("raw") / "lake")


def _setup(root: Path, lake: Path, tiny_world: Path) -> Path:
    """A copy of ``lake``, the tiny world as champion, and the round's config file."""
    shutil.copytree(lake, root / "lake")
    config = cfgmod.defaults().replace(
        **{
            "paths.cache": str(SHARED_CACHE),
            "paths.lake": str(root / "lake"),
            "paths.registry": str(root / "registry"),
            "paths.runs": str(root / "runs"),
            "curation.eval_fraction": 0.5,
            # The demo's gate: the tiny world's preference as judge, agreement with thumbs deciding.
            "evals.judge": "rubric",
            "evals.rubric": "flywheel.dev.app_sim:rubric",
            "evals.primary_metric": "auc",
            # Replay (both models answering held-out prompts) is most of a round's time on CPU: a
            # sample of the ~100 held-out prompts keeps a round to seconds; every check still runs.
            "evals.replay_prompts": 32,
        }
    )
    Registry.from_config(config).register(tiny_world, champion=True, version="tiny-base")
    return cfgmod.write_resolved(config, root / "round.toml")


def _nightly(root: Path, lake: Path, tiny_world: Path, method: str, *sets: str) -> tuple[int, dict[str, Any]]:
    """`flywheel nightly --config FILE --set training.method=METHOD [--set ...]`: its exit code and
    the round's ledger record."""
    config_file = _setup(root, lake, tiny_world)
    args = ["nightly", "--config", str(config_file), "--set", f"training.method={method}"]
    for setting in sets:
        args += ["--set", setting]
    code = main(args)
    rec = ledger.latest(root / "runs")
    assert rec is not None
    return code, rec


def _round(root: Path, lake: Path, tiny_world: Path, method: str) -> dict[str, Any]:
    """A round that must complete: its ledger record."""
    code, rec = _nightly(root, lake, tiny_world, method)
    assert code == 0, rec.get("message")
    return rec


def _check_round(root: Path, rec: dict[str, Any], trained_as: str) -> dict[str, Any]:
    """The round completed every step with a candidate of ``trained_as``; the gate's report."""
    assert rec["status"] == "completed" and rec["outcome"] in ("promoted", "rejected"), rec["message"]
    assert [rec["steps"][s]["state"] for s in ledger.STEPS[:3]] == ["done"] * 3
    manifest = json.loads((Path(rec["snapshot_path"]) / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["pairs_from_edits"] > 0 and counts["pairs_from_thumbs"] > 0 and counts["pairs_eval"] > 0
    registry = Registry(root / "registry")
    candidate = rec["candidate"]
    assert candidate.startswith(f"{trained_as}-") and registry.verify(candidate) == []
    metrics = json.loads((registry.path(candidate) / "metrics.json").read_text())
    assert metrics["method"] == trained_as
    if trained_as != "kto":
        # Every mined train pair fits the tiny world's lengths, so all of them were trained on.
        assert metrics["pairs"]["trained"] == counts["pairs_train"] > 0
    champion = registry.champion()
    assert champion == (candidate if rec["outcome"] == "promoted" else "tiny-base")
    report: dict[str, Any] = json.loads(Path(rec["decision"]["report_path"]).read_text())
    return report


def _judged(report: dict[str, Any]) -> tuple[Any, ...]:
    """What the gate judged on: its checks, held-out rows and replayed prompts (not the verdicts)."""
    agreement = report["metrics"]["agreement"]
    replay = report["metrics"].get("replay") or report.get("replay") or {}
    return (
        tuple(sorted(c["name"] for c in report["checks"])),
        agreement["thumbs_up"],
        agreement["thumbs_down"],
        agreement["clusters"],
        replay.get("prompts"),
        replay.get("samples_per_prompt"),
    )


def test_nightly_with_dpo_runs_a_whole_round_on_mined_pairs(
    tmp_path: Path, raw_lake: Path, tiny_world: Path
) -> None:
    rec = _round(tmp_path, raw_lake, tiny_world, "dpo")
    report = _check_round(tmp_path, rec, "dpo")
    # Measured: DPO on the day's 280 mined train pairs is promoted on agreement (AUC 0.999, 573 rows).
    assert rec["outcome"] == "promoted", rec["message"]
    assert rec["decision"]["deciding_check"] == "primary:auc"
    assert (
        min(report["metrics"]["agreement"]["thumbs_up"], report["metrics"]["agreement"]["thumbs_down"]) >= 20
    )
    # The chat prompts went through the round too: the snapshot's chat rows carry their messages.
    import pyarrow.parquet as pq

    train = pq.read_table(Path(rec["snapshot_path"]) / "train.parquet").to_pylist()
    chat = [r for r in train if r["prompt_format"] == "messages"]
    assert chat and all(r["messages"] == json.loads(r["prompt"]) for r in chat)
    assert all(r["messages"] is None for r in train if r["prompt_format"] == "text")


@pytest.mark.slow  # about 20-35 s a round on two cores, five rounds
def test_every_method_runs_a_whole_round_and_is_judged_alike(
    tmp_path: Path, raw_lake: Path, tiny_world: Path
) -> None:
    judged, outcomes, candidates = {}, {}, {}
    for method, trained_as in (
        ("kto", "kto"),
        ("ipo", "ipo"),
        ("simpo", "simpo"),
        ("orpo", "orpo"),
        ("auto", "dpo"),
    ):
        root = tmp_path / method
        rec = _round(root, raw_lake, tiny_world, method)
        judged[method] = _judged(_check_round(root, rec, trained_as))
        outcomes[method], candidates[method] = rec["outcome"], rec["candidate"]
    # One snapshot, one gate: every method's candidate met the same checks on the same evidence.
    assert len(set(judged.values())) == 1, judged
    # Measured: every method is promoted on this day's feedback (AUC 0.911 for ORPO to 1.000 for KTO).
    assert set(outcomes.values()) == {"promoted"}, outcomes
    card = Registry(tmp_path / "auto" / "registry").path(candidates["auto"])
    assert "chosen by `auto`: auto: " in (card / "model_card.md").read_text()


def test_a_paired_method_on_a_day_without_pairs_fails_the_round_clearly(
    tmp_path: Path, world: Any, tiny_world: Path
) -> None:
    # No edits, and each prompt asked once: no pair can be mined.
    lake = tmp_path / "raw"
    build_lake(world, lake, traces=180, edits=False, distinct=True)
    root = tmp_path / "round"
    code, rec = _nightly(root, lake, tiny_world, "simpo", "nightly.min_train_rows=8")
    assert code == rec["exit_code"] != 0
    assert rec["status"] == "failed" and rec["steps"]["train"]["state"] == "failed"
    assert "training.method is simpo" in rec["message"] and "no train pairs" in rec["message"]
    assert "training.method=kto or auto" in rec["error"]["hint"]
    assert Registry(root / "registry").champion() == "tiny-base"


@pytest.mark.slow  # a KTO round, about 25 s
def test_auto_on_a_day_without_pairs_falls_back_to_kto_and_says_why(
    tmp_path: Path, world: Any, tiny_world: Path
) -> None:
    lake = build_lake(world, tmp_path / "raw", traces=200, edits=False, distinct=True)
    root = tmp_path / "round"
    code, rec = _nightly(root, lake, tiny_world, "auto", "nightly.min_train_rows=8")
    assert code == 0 and rec["status"] == "completed", rec["message"]
    folder = Registry(root / "registry").path(rec["candidate"])
    assert rec["candidate"].startswith("kto-")
    assert json.loads((folder / "metrics.json").read_text())["method_choice"]["train_pairs"] == 0
    assert "chosen by `auto`: auto: 0 train pairs" in (folder / "model_card.md").read_text()
