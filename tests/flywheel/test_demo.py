"""The demo loop on real parts: embedded broker, ingest, curation, KTO training, the gate, the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.registry import Registry
from flywheel import config as cfgmod
from flywheel import ledger
from flywheel.dev.demo import demo_config, loop
from tests.fixtures_broker import fresh_topics
from tests.fixtures_model import SHARED_CACHE

REPO = Path(__file__).resolve().parents[2]


def _config(broker: Any, tmp_path: Path, **overrides: Any) -> Any:
    values = {
        "paths.cache": str(SHARED_CACHE),
        "demo.out": str(tmp_path / "demo"),
        "demo.rounds": 1,
        "demo.requests_per_round": 1000,
        **overrides,
    }
    return demo_config(fresh_topics(broker, tmp_path / "lake", **values), broker.bootstrap)


def test_demo_sets_its_eval_fraction_and_checks_its_settings(tmp_path: Path) -> None:
    base = cfgmod.load(None, env={}, overrides={"demo.out": str(tmp_path / "demo")})
    assert demo_config(base, "127.0.0.1:1").curation.eval_fraction == base.demo.eval_fraction == 0.5
    tuned = cfgmod.load(None, env={}, overrides={"demo.eval_fraction": 0.4})
    assert demo_config(tuned, "127.0.0.1:1").curation.eval_fraction == 0.4
    assert base.demo.prompts == "all"
    with pytest.raises(ConfigError) as info:
        cfgmod.load(None, env={}, overrides={"demo.prompts": "some", "demo.eval_fraction": 1.0})
    assert "prompts must be all or train" in str(info.value) and "eval_fraction must be in (0, 1)" in str(
        info.value
    )


@pytest.mark.broker
def test_one_round_raises_approval_and_ledger_records_every_step(
    broker: Any, tiny_world: Path, tmp_path: Path
) -> None:
    cfg = _config(broker, tmp_path)
    lines: list[str] = []
    rows = loop(cfg, lines.append)
    assert [r.day for r in rows] == [0, 1]
    before, after = rows
    assert after.approval > before.approval, f"approval {before.approval:.1%} -> {after.approval:.1%}"

    rec = ledger.latest(cfg.paths.runs)
    assert rec is not None and rec["status"] == "completed" and rec["outcome"] == "promoted"
    assert [rec["steps"][s]["state"] for s in ledger.STEPS] == ["done"] * 4
    assert all(rec["steps"][s]["duration_s"] > 0 for s in ledger.STEPS)
    assert rec["snapshot_id"] and rec["train_rows"] >= cfg.nightly.min_train_rows
    assert rec["decision"]["promote"] and rec["decision"]["reasons"]
    assert Path(rec["decision"]["report_path"]).exists()
    # The promotion rests on a held-out slice big enough for its interval, not on a dozen rows.
    gate = json.loads(Path(rec["decision"]["report_path"]).read_text())  # eval_report.json
    evidence = next(c for c in gate["checks"] if c["name"] == "min_evidence")
    agreement = gate["metrics"]["agreement"]
    assert evidence["passed"] and any(r.startswith("min_evidence: ") for r in rec["decision"]["reasons"])
    # The deciding check leads the reasons (on promotion, the primary metric) and names the table's row.
    assert rec["decision"]["deciding_check"] == "primary:auc"
    assert rec["decision"]["reasons"][0].startswith("primary:auc: ")
    assert min(agreement["thumbs_up"], agreement["thumbs_down"]) >= cfg.evals.min_eval_rows_per_class == 20
    assert agreement["clusters"] >= cfg.evals.min_eval_clusters

    registry = Registry(cfg.paths.registry)
    assert registry.champion() == rec["candidate"] == after.version != before.version
    assert before.version == "tiny-base"
    # Malformed records went to the dead-letter lake, not nowhere.
    assert before.dead_lettered >= 1 and list(Path(cfg.paths.lake, "dlq").rglob("*.parquet"))
    assert before.ingested >= before.served
    assert any("nightly round" in line for line in lines)


@pytest.mark.slow  # about a minute; the skip rule itself is covered fast in test_nightly.py
@pytest.mark.broker
def test_round_with_too_little_feedback_is_skipped_and_champion_serves_on(
    broker: Any, tiny_world: Path, tmp_path: Path
) -> None:
    cfg = _config(broker, tmp_path, **{"demo.requests_per_round": 150, "nightly.min_train_rows": 500})
    rows = loop(cfg, lambda line: None)
    rec = ledger.latest(cfg.paths.runs)
    assert rec is not None and rec["status"] == "skipped" and "min_train_rows = 500" in rec["message"]
    assert rec["steps"]["train"]["state"] == "skipped"
    assert rows[0].version == rows[1].version == "tiny-base"


@pytest.mark.slow
@pytest.mark.broker
def test_make_demo_three_rounds(tiny_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flywheel.cli",
            "demo",
            "--set",
            f"demo.out={out}",
            "--set",
            f"paths.cache={SHARED_CACHE}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rounds = json.loads((out / "report" / "rounds.json").read_text())
    assert len(rounds) == 4
    approvals = [r["approval"] for r in rounds]
    assert approvals[-1] > approvals[0], approvals
    assert (out / "report" / "approval.png").stat().st_size > 1000
    assert "approval" in done.stdout and "decision" in done.stdout


@pytest.mark.slow
@pytest.mark.broker
def test_real_round_killed_in_training_resumes_with_its_snapshot(
    broker: Any, tiny_world: Path, tmp_path: Path
) -> None:
    import os
    import signal
    import time

    from flywheel.config import write_resolved

    cfg = _config(broker, tmp_path, **{"demo.rounds": 0})
    loop(cfg, lambda line: None)  # a day of traffic in the lake, the tiny world as champion
    cfg_file = write_resolved(cfg, tmp_path / "round.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flywheel.cli", "nightly", "--config", str(cfg_file)], cwd=REPO
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            rec = ledger.latest(cfg.paths.runs)
            if rec and rec["steps"]["train"]["state"] == "running":
                break
            assert proc.poll() is None and time.monotonic() < deadline, rec
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed = ledger.latest(cfg.paths.runs)
    assert killed is not None and killed["status"] == "running"
    assert Registry(cfg.paths.registry).champion() == "tiny-base"

    done = subprocess.run(
        [sys.executable, "-m", "flywheel.cli", "nightly", "--config", str(cfg_file)], cwd=REPO, timeout=900
    )
    assert done.returncode == 0
    rec = ledger.latest(cfg.paths.runs)
    assert rec is not None and rec["status"] == "completed" and rec["resumed_from"] == killed["run_id"]
    assert rec["snapshot_id"] == killed["snapshot_id"] and "re-used" in rec["steps"]["curate"]["detail"]
    assert Registry(cfg.paths.registry).champion() in (rec["candidate"], "tiny-base")
