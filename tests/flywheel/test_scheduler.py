"""The scheduler: a cron fire runs a round, a missed fire within grace runs once, fires never overlap."""

from __future__ import annotations

import itertools
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flywheel import ledger
from flywheel.config import write_resolved
from flywheel.scheduler import EXIT_TIMEOUT, JOB_ID, Service, round_job, run_child
from tests.flywheel.nightly_standins import make_config

REPO = Path(__file__).resolve().parents[2]
FAKE = "tests.flywheel.test_scheduler:fake_round"


def fake_round(log_path: str, sleep_s: float) -> int:
    """Stand-in round: records its start and end so tests can check counts and overlap."""
    start = time.time()
    time.sleep(sleep_s)
    with open(log_path, "a") as f:
        f.write(f"{start} {time.time()}\n")
    return 0


def _runs(log: Path) -> list[tuple[float, float]]:
    if not log.exists():
        return []
    return [tuple(map(float, line.split())) for line in log.read_text().splitlines()]  # type: ignore[misc]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait(cond, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def test_cron_fire_runs_a_round_and_metrics_report_it(tmp_path: Path) -> None:
    log = tmp_path / "rounds.log"
    config = make_config(tmp_path, **{"scheduler.cron": "* * * * * *", "scheduler.metrics_port": 0})
    svc = Service(config, func=FAKE, args=[str(log), 0.0])
    svc.start()
    try:
        assert _wait(lambda: len(_runs(log)) >= 1, 15)
        port = svc.server.server_address[1]
        assert _wait(
            lambda: (
                b'flywheel_nightly_runs_total{outcome="unknown",result="ok"}'
                in _get(f"http://127.0.0.1:{port}/metrics")[1]
            ),
            5,
        )
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok" and health["next_fire"]
        assert health["last"]["exit_code"] == 0 and health["last"]["ok"] is True
        metrics = _get(f"http://127.0.0.1:{port}/metrics")[1].decode()
        assert "flywheel_nightly_last_success 1.0" in metrics
        assert "flywheel_nightly_next_fire_timestamp_seconds" in metrics
    finally:
        svc.stop()
    assert (tmp_path / "runs" / "scheduler" / "jobs.sqlite").is_file()


def _store_with_missed_fire(config, log: Path, missed_at: datetime) -> None:  # type: ignore[no-untyped-def]
    """Leave the persistent job store as a scheduler that was down since ``missed_at`` would."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    first = Service(config, func=FAKE, args=[str(log), 0.0])
    first.start()
    first.stop()
    assert _runs(log) == []
    url = f"sqlite:///{tmp_runs(config) / 'scheduler' / 'jobs.sqlite'}"
    store = SQLAlchemyJobStore(url=url)
    store.start(BackgroundScheduler(), "default")
    job = store.lookup_job(JOB_ID)
    assert job is not None and job.next_run_time > datetime.now(UTC)
    job.next_run_time = missed_at
    store.update_job(job)
    store.shutdown()


def tmp_runs(config) -> Path:  # type: ignore[no-untyped-def]
    return Path(config.paths.runs).resolve()


def test_missed_fires_within_grace_run_once(tmp_path: Path) -> None:
    log = tmp_path / "rounds.log"
    # Every minute, down for ten minutes: ten missed fires, within the one-hour grace.
    config = make_config(
        tmp_path,
        **{"scheduler.cron": "* * * * *", "scheduler.misfire_grace_hours": 1.0, "scheduler.metrics_port": -1},
    )
    _store_with_missed_fire(config, log, datetime.now(UTC) - timedelta(minutes=10))
    svc = Service(config, func=FAKE, args=[str(log), 0.0])
    svc.start()
    try:
        assert _wait(lambda: len(_runs(log)) >= 1, 10)
        time.sleep(1.5)  # room for wrongly repeated runs to show up
        assert len(_runs(log)) == 1
        nxt = svc.next_fire()
        assert nxt is not None and nxt > datetime.now(UTC)
    finally:
        svc.stop()


def test_missed_fire_past_grace_is_skipped_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "rounds.log"
    config = make_config(
        tmp_path,
        **{"scheduler.cron": "0 0 1 1 *", "scheduler.misfire_grace_hours": 0.5, "scheduler.metrics_port": -1},
    )
    _store_with_missed_fire(config, log, datetime.now(UTC) - timedelta(hours=2))
    svc = Service(config, func=FAKE, args=[str(log), 0.0])
    svc.start()
    try:
        assert _wait(lambda: svc.monitor.skipped.labels(reason="missed")._value.get() == 1, 10)
        assert _runs(log) == []
    finally:
        svc.stop()


def test_overlapping_fires_do_not_overlap(tmp_path: Path) -> None:
    log = tmp_path / "rounds.log"
    config = make_config(tmp_path, **{"scheduler.cron": "* * * * * *", "scheduler.metrics_port": -1})
    svc = Service(config, func=FAKE, args=[str(log), 2.2])
    svc.start()
    try:
        assert _wait(lambda: len(_runs(log)) >= 2, 20)
    finally:
        svc.stop()
    runs = sorted(_runs(log))
    for (_, end), (start, _) in itertools.pairwise(runs):
        assert start >= end, f"rounds overlapped: {runs}"
    assert svc.monitor.skipped.labels(reason="overlap")._value.get() >= 1


def test_round_subprocess_is_stopped_at_its_timeout(tmp_path: Path) -> None:
    t0 = time.monotonic()
    code = run_child([sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=1.0, term_grace_s=5.0)
    assert code == EXIT_TIMEOUT and time.monotonic() - t0 < 20


def test_round_job_runs_the_real_nightly_command(tmp_path: Path) -> None:
    # No champion yet: the real `flywheel nightly` fails fast, records why, and exits non-zero.
    config = make_config(tmp_path)
    path = write_resolved(config, tmp_path / "resolved.toml")
    assert round_job(str(path), 120) == 1
    rec = ledger.latest(tmp_path / "runs")
    assert rec is not None and rec["status"] == "failed" and "no champion" in rec["message"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_schedule_command_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    config = make_config(tmp_path, **{"scheduler.cron": "0 0 1 1 *", "scheduler.metrics_port": port})
    cfg_file = write_resolved(config, tmp_path / "c.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flywheel.cli", "schedule", "--config", str(cfg_file)], cwd=REPO
    )
    try:
        assert _wait(lambda: _get_ok(f"http://127.0.0.1:{port}/healthz"), 60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def _get_ok(url: str) -> bool:
    try:
        return _get(url)[0] == 200
    except OSError:
        return False


def ledger_round(runs: str, outcome: str) -> int:
    """Stand-in round that leaves a real ledger record with ``outcome``, as `flywheel nightly` does."""
    rec = ledger.Ledger(runs)
    rec.finish("completed" if outcome != "skipped" else "skipped", outcome, f"stand-in {outcome}")
    return 0


def test_scheduler_reports_the_ledgers_last_round_after_a_restart_and_counts_outcomes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    ledger_round(str(runs), "rejected")  # a round before this scheduler started
    config = make_config(tmp_path, **{"scheduler.cron": "0 2 * * *", "scheduler.metrics_port": 0})
    svc = Service(config, func="tests.flywheel.test_scheduler:ledger_round", args=[str(runs), "promoted"])
    svc.start()
    try:
        port = svc.server.server_address[1]
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        last = json.loads(body)["last"]
        assert status == 200 and last["outcome"] == "rejected" and last["ok"] is True and last["from_ledger"]
        metrics = _get(f"http://127.0.0.1:{port}/metrics")[1].decode()
        assert "flywheel_nightly_last_success 1.0" in metrics
        assert "flywheel_nightly_last_run_timestamp_seconds 0.0" not in metrics
        svc.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))  # fire now
        assert _wait(
            lambda: (
                b'flywheel_nightly_runs_total{outcome="promoted",result="ok"} 1.0'
                in _get(f"http://127.0.0.1:{port}/metrics")[1]
            ),
            15,
        )
    finally:
        svc.stop()
