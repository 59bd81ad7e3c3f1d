"""`flywheel schedule`: the always-on process that runs the nightly round on its cron.

* The job lives in a persistent SQLAlchemy job store (SQLite under ``paths.runs`` by
  default), so a fire missed while the scheduler was down is still run when it comes
  back, once (``coalesce``), if within ``misfire_grace_hours``. APScheduler's default
  grace of one second would silently skip a nightly job after any restart.
* ``max_instances=1`` and the round's own lock keep rounds from overlapping.
* The round (the GPU step) runs in a subprocess with a timeout, so a hung or crashed
  round never takes the scheduler down, and its memory is returned after each night.
* ``/metrics`` (Prometheus) and ``/healthz`` report the last round and the next fire.
* SIGTERM or SIGINT stops cleanly: no new fires, the running round is asked to stop
  (SIGTERM; the next round resumes it), then the process exits 0. A second signal kills.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import ExitCode
from core.signals import two_stage
from flywheel.config import Config, write_resolved
from flywheel.cronspec import cron_trigger

log = logging.getLogger("flywheel.scheduler")

JOB_ID = "nightly"
ROUND_FUNC = "flywheel.scheduler:round_job"
EXIT_TIMEOUT = ExitCode.TIMEOUT

_children: set[subprocess.Popen[bytes]] = set()
_children_lock = threading.Lock()


def round_job(config_path: str, timeout_s: float) -> int:
    """The scheduled job: ``flywheel nightly`` in a subprocess; returns its exit code (124 on timeout)."""
    argv = [sys.executable, "-m", "flywheel.cli", "nightly", "--config", config_path]
    return run_child(argv, timeout_s)


def run_child(argv: list[str], timeout_s: float, term_grace_s: float = 60.0) -> int:
    log.info("round starting: %s", " ".join(argv))
    child = subprocess.Popen(argv)
    with _children_lock:
        _children.add(child)
    try:
        code = child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.error("round exceeded %.0f s; stopping it (the next round resumes it)", timeout_s)
        child.terminate()
        try:
            child.wait(timeout=term_grace_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        code = EXIT_TIMEOUT
    finally:
        with _children_lock:
            _children.discard(child)
    log.info("round finished with exit code %d", code)
    return code


def stop_children(sig: int = signal.SIGTERM) -> None:
    with _children_lock:
        for child in list(_children):
            if child.poll() is None:
                child.send_signal(sig)


class Service:
    """A BackgroundScheduler with the nightly job, its job store and its monitor."""

    def __init__(self, config: Config, func: str = ROUND_FUNC, args: list[Any] | None = None) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        from flywheel.monitor import Monitor

        self.config = config
        sc = config.scheduler
        runs = Path(config.paths.runs)
        runs.mkdir(parents=True, exist_ok=True)
        if args is None:
            resolved = write_resolved(config, runs / "scheduler" / "config.toml")
            args = [str(resolved.resolve()), sc.round_timeout_hours * 3600]
        self.func, self.args = func, args
        url = sc.jobstore_url or f"sqlite:///{(runs / 'scheduler' / 'jobs.sqlite').resolve()}"
        (runs / "scheduler").mkdir(exist_ok=True)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=url)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(sc.misfire_grace_hours * 3600),
            },
            timezone=sc.timezone,
        )
        self.monitor = Monitor(self.next_fire, lambda: bool(self.scheduler.running), runs)
        self.scheduler.add_listener(self.monitor.on_event)
        self.server: Any = None

    def next_fire(self) -> datetime | None:
        job = self.scheduler.get_job(JOB_ID) if self.scheduler.running else None
        return job.next_run_time if job is not None else None

    def start(self) -> None:
        sc = self.config.scheduler
        trigger = cron_trigger(sc.cron, sc.timezone)
        # Paused first: a job already in the store keeps its next_run_time, so a fire missed
        # while we were down still runs. Re-adding it with replace_existing would drop that fire.
        self.scheduler.start(paused=True)
        opts = {
            "args": self.args,
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(sc.misfire_grace_hours * 3600),
        }
        job = self.scheduler.get_job(JOB_ID)
        if job is None:
            self.scheduler.add_job(self.func, trigger, id=JOB_ID, name="nightly round", **opts)
        else:
            self.scheduler.modify_job(JOB_ID, func=self.func, **opts)
            if str(job.trigger) != str(trigger):
                log.info("cron changed from %s to %s", job.trigger, trigger)
                self.scheduler.reschedule_job(JOB_ID, trigger=trigger)
        if sc.run_on_start:
            self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(trigger.timezone))
        if sc.metrics_port >= 0:
            self.server = self.monitor.serve(sc.metrics_host, sc.metrics_port)
            host, port = self.server.server_address[:2]
            log.info("metrics on http://%s:%d/metrics, health on /healthz", host, port)
        self.scheduler.resume()
        log.info("scheduler running; next round at %s", self.next_fire())

    def stop(self, wait: bool = True) -> None:
        if self.scheduler.running:
            self.scheduler.pause()  # no new fires while the running round winds down
            # APScheduler 3.11 processes due jobs once more after shutdown() sets STOPPED; with the
            # executor already closed, such a fire fails and its next_run_time is advanced and
            # persisted: the fire would be lost. Detaching the store first keeps it for the next start.
            self.scheduler.remove_jobstore("default")
            stop_children()
            self.scheduler.shutdown(wait=wait)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def run(config: Config) -> None:
    """Run until SIGTERM or SIGINT; then stop the running round and exit cleanly."""
    service = Service(config)
    stop = threading.Event()

    def first(signum: int) -> None:
        log.info("signal %d: stopping after the running round is asked to stop", signum)
        stop.set()

    def second(signum: int) -> None:
        log.error("second signal: killing the round and exiting now")
        stop_children(signal.SIGKILL)
        os._exit(1)

    with two_stage(first, second):
        service.start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            service.stop(wait=True)
            log.info("scheduler stopped")
