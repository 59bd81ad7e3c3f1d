"""The nightly round's orchestration: ledger, lock, skips, failures and recovery after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.registry import Registry
from curation.errors import DataQualityError
from flywheel import ledger
from flywheel.nightly import run
from tests.flywheel.nightly_standins import calls, make_config, seed_champion, stages

REPO = Path(__file__).resolve().parents[2]


def _record(root: Path) -> dict:
    last = ledger.latest(root / "runs")
    assert last is not None
    return last


def test_round_promotes_and_ledger_records_every_step(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    result = run(make_config(tmp_path), stages=stages(tmp_path))
    assert result.exit_code == 0 and result.outcome == "promoted"
    rec = _record(tmp_path)
    assert rec == result.record
    assert [rec["steps"][s]["state"] for s in ledger.STEPS] == ["done"] * 4
    assert all(rec["steps"][s]["duration_s"] >= 0 for s in ledger.STEPS)
    assert rec["snapshot_id"] and rec["train_rows"] == 100
    assert rec["candidate"] == f"cand-{rec['snapshot_id']}"
    assert rec["decision"]["promote"] is True and rec["decision"]["reasons"]
    registry = Registry(tmp_path / "registry")
    assert registry.champion() == rec["candidate"] == rec["champion_after"]
    assert rec["champion_before"] == "base-0"
    event = registry.history()[-1]
    assert event.action == "promote" and event.evidence["run_id"] == rec["run_id"]
    assert event.evidence["snapshot_id"] == rec["snapshot_id"]
    # The resolved config sits next to the record and loads back.
    assert (tmp_path / "runs" / "rounds" / f"{rec['run_id']}.config.toml").is_file()
    assert "promoted" in result.summary() and rec["candidate"] in result.summary()


def test_rejection_is_recorded_and_champion_stays(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    result = run(make_config(tmp_path), stages=stages(tmp_path, promote=False))
    assert result.exit_code == 0 and result.outcome == "rejected"
    registry = Registry(tmp_path / "registry")
    assert registry.champion() == "base-0"
    assert registry.history()[-1].action == "reject"
    assert "0.31 < 0.55" in registry.history()[-1].reason
    assert result.record["steps"]["promote"]["state"] == "skipped"


def test_too_little_data_skips_training_with_a_clear_message(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    result = run(make_config(tmp_path, **{"nightly.min_train_rows": 500}), stages=stages(tmp_path, rows=40))
    assert result.exit_code == 0 and result.status == "skipped"
    assert (
        "only 40 training rows" in result.record["message"]
        and "min_train_rows = 500" in result.record["message"]
    )
    assert calls(tmp_path) == ["curate"]
    assert Registry(tmp_path / "registry").champion() == "base-0"


def test_same_snapshot_as_last_round_is_skipped(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    first = run(make_config(tmp_path), stages=stages(tmp_path))
    second = run(make_config(tmp_path), stages=stages(tmp_path))
    assert first.outcome == "promoted" and second.status == "skipped"
    assert first.record["run_id"] in second.record["message"]
    assert calls(tmp_path) == ["curate", "train", "gate", "curate"]


def test_failed_data_quality_stops_the_round(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    good = stages(tmp_path)

    def curate(config, as_of):  # type: ignore[no-untyped-def]
        raise DataQualityError(
            [("both_classes_in_train", "no desirable rows")], report="lake/curated/.failed/q"
        )

    result = run(
        make_config(tmp_path), stages=good.__class__(curate=curate, train=good.train, gate=good.gate)
    )
    assert result.status == "failed" and result.exit_code == DataQualityError.exit_code
    rec = result.record
    assert rec["steps"]["curate"]["state"] == "failed" and rec["steps"]["train"]["state"] == "pending"
    assert rec["error"]["type"] == "DataQualityError" and "both_classes_in_train" in rec["message"]
    assert "critical_checks" in rec["error"]["hint"] and "lake/curated/.failed/q" in result.summary()
    assert Registry(tmp_path / "registry").champion() == "base-0"


def test_crash_in_a_step_keeps_champion_and_next_round_resumes(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    crashed = run(make_config(tmp_path), stages=stages(tmp_path, fail="gate"))
    assert crashed.status == "failed" and crashed.exit_code == 1
    assert "stand-in gate crashed" in crashed.record["message"]
    assert Registry(tmp_path / "registry").champion() == "base-0"
    resumed = run(make_config(tmp_path), stages=stages(tmp_path))
    assert resumed.outcome == "promoted" and resumed.record["resumed_from"] == crashed.record["run_id"]
    # The snapshot and the candidate were re-used, not rebuilt.
    assert calls(tmp_path) == ["curate", "train", "gate", "gate"]
    assert "re-used" in resumed.record["steps"]["train"]["detail"]


def test_killed_round_leaves_champion_intact_and_next_completes(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.flywheel.nightly_standins", str(tmp_path), "gate"], cwd=REPO
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "hanging-gate").exists():
            assert proc.poll() is None, "the round exited before reaching the gate"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # While it runs, a second round is refused by the lock.
        with pytest.raises(ledger.RoundBusyError) as busy:
            run(make_config(tmp_path), stages=stages(tmp_path))
        assert busy.value.exit_code == 75 and f"pid {proc.pid}" in busy.value.message
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed = _record(tmp_path)
    assert killed["status"] == "running" and killed["steps"]["gate"]["state"] == "running"
    assert Registry(tmp_path / "registry").champion() == "base-0"

    result = run(make_config(tmp_path), stages=stages(tmp_path))
    assert result.outcome == "promoted" and result.record["resumed_from"] == killed["run_id"]
    assert Registry(tmp_path / "registry").champion() == killed["candidate"]
    assert calls(tmp_path) == ["curate", "train", "gate", "gate"]


def test_resume_after_crash_between_promote_and_ledger(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    first = run(make_config(tmp_path), stages=stages(tmp_path))
    # Rewrite the record as a round killed right after the pointer switch.
    path = tmp_path / "runs" / "rounds" / f"{first.record['run_id']}.json"
    rec = json.loads(path.read_text())
    rec.update(status="running", outcome=None)
    rec["steps"]["promote"] = {"state": "running"}
    path.write_text(json.dumps(rec))
    again = run(make_config(tmp_path), stages=stages(tmp_path))
    assert again.outcome == "promoted"
    assert "already the champion" in again.record["steps"]["promote"]["detail"]
    assert [e.action for e in Registry(tmp_path / "registry").history()].count("promote") == 2  # seed + one


def test_no_champion_is_a_clear_error(tmp_path: Path) -> None:
    result = run(make_config(tmp_path), stages=stages(tmp_path))
    assert result.status == "failed" and "no champion" in result.record["message"]
    assert "flywheel register" in result.record["error"]["hint"]
    assert calls(tmp_path) == []
