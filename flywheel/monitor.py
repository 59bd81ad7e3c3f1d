"""Health and metrics of the scheduler: Prometheus gauges fed by APScheduler events, served over HTTP.

``GET /metrics`` is the Prometheus text format; ``GET /healthz`` is JSON (200 while the
scheduler runs, 503 otherwise) with the last round and the next fire time, for a
Kubernetes liveness probe or a person with curl.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest


class Monitor:
    """Round metrics. One registry per instance, so tests can run several schedulers."""

    def __init__(
        self,
        next_fire: Callable[[], datetime | None],
        running: Callable[[], bool],
        runs: str | os.PathLike[str] | None = None,
    ) -> None:
        self.runs = runs
        self.registry = CollectorRegistry()
        self._next_fire = next_fire
        self._running = running
        self._started: dict[str, float] = {}
        self.last: dict[str, Any] = {}
        self._lock = threading.Lock()
        ns = "flywheel_nightly"
        self.in_progress = Gauge(f"{ns}_round_in_progress", "1 while a round runs", registry=self.registry)
        self.last_success = Gauge(
            f"{ns}_last_success", "1 if the last round exited 0", registry=self.registry
        )
        self.last_exit = Gauge(f"{ns}_last_exit_code", "exit code of the last round", registry=self.registry)
        self.last_end = Gauge(
            f"{ns}_last_run_timestamp_seconds",
            "when the last round ended (Unix time)",
            registry=self.registry,
        )
        self.last_duration = Gauge(
            f"{ns}_last_run_duration_seconds", "how long the last round took", registry=self.registry
        )
        self.rounds = Counter(
            f"{ns}_runs",
            "rounds run, by result (ok, failed) and outcome (promoted, rejected, skipped, failed)",
            ["result", "outcome"],
            registry=self.registry,
        )
        self.skipped = Counter(
            f"{ns}_fires_skipped",
            "fires not run: missed (past grace) or overlap",
            ["reason"],
            registry=self.registry,
        )
        next_gauge = Gauge(
            f"{ns}_next_fire_timestamp_seconds", "next scheduled round (Unix time)", registry=self.registry
        )
        next_gauge.set_function(lambda: t.timestamp() if (t := self._next_fire()) else float("nan"))
        self._restore()

    def _latest(self) -> dict[str, Any] | None:
        if self.runs is None:
            return None
        from flywheel.ledger import latest

        return latest(self.runs)

    def _restore(self) -> None:
        """The last round from the run ledger: a restarted scheduler reports it, not "never ran"."""
        rec = self._latest()
        if rec is None or rec.get("status") == "running":
            return
        code = int(rec.get("exit_code", 0 if rec.get("status") in ("completed", "skipped") else 1))
        ok = code == 0
        self.last_success.set(1 if ok else 0)
        self.last_exit.set(code)
        finished = rec.get("finished_at")
        if finished:
            self.last_end.set(datetime.fromisoformat(str(finished).replace("Z", "+00:00")).timestamp())
        if rec.get("duration_s") is not None:
            self.last_duration.set(float(rec["duration_s"]))
        self.last = {
            "run_id": rec.get("run_id"),
            "exit_code": code,
            "ok": ok,
            "outcome": rec.get("outcome"),
            "duration_s": rec.get("duration_s"),
            "finished_at": finished,
            "from_ledger": True,
        }

    # -- APScheduler listener ---------------------------------------------------

    def on_event(self, event: Any) -> None:
        from apscheduler import events as ev

        with self._lock:
            if event.code == ev.EVENT_JOB_SUBMITTED:
                self._started[event.job_id] = time.monotonic()
                self.in_progress.set(1)
            elif event.code in (ev.EVENT_JOB_EXECUTED, ev.EVENT_JOB_ERROR):
                took = time.monotonic() - self._started.pop(event.job_id, time.monotonic())
                code = (
                    event.retval
                    if event.code == ev.EVENT_JOB_EXECUTED and isinstance(event.retval, int)
                    else 1
                )
                ok = event.code == ev.EVENT_JOB_EXECUTED and code == 0
                self.in_progress.set(0)
                self.last_success.set(1 if ok else 0)
                self.last_exit.set(code)
                self.last_end.set(time.time())
                self.last_duration.set(took)
                rec = self._latest() or {}
                outcome = str(rec.get("outcome") or ("failed" if not ok else "unknown"))
                self.rounds.labels(result="ok" if ok else "failed", outcome=outcome).inc()
                self.last = {
                    "run_id": rec.get("run_id"),
                    "outcome": outcome,
                    "scheduled": event.scheduled_run_time.isoformat(),
                    "exit_code": code,
                    "ok": ok,
                    "duration_s": round(took, 3),
                    "error": repr(event.exception) if event.exception else None,
                }
            elif event.code == ev.EVENT_JOB_MISSED:
                self.skipped.labels(reason="missed").inc()
            elif event.code == ev.EVENT_JOB_MAX_INSTANCES:
                self.skipped.labels(reason="overlap").inc()

    # -- HTTP -------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        nxt = self._next_fire()
        alive = self._running()
        with self._lock:
            last = dict(self.last)
        body = {
            "status": "ok" if alive else "stopped",
            "next_fire": nxt.isoformat() if nxt else None,
            "last": last,
        }
        return (200 if alive else 503), body

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    status, ctype, payload = 200, CONTENT_TYPE_LATEST, generate_latest(monitor.registry)
                elif self.path.startswith("/healthz"):
                    status, doc = monitor.health()
                    ctype, payload = "application/json", json.dumps(doc).encode()
                else:
                    status, ctype, payload = 404, "text/plain", b"try /metrics or /healthz\n"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would drown the round's own logs

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="flywheel-metrics", daemon=True).start()
        return server


def write_textfile(runs: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """The scheduler's gauges and counters for CronJob mode, where no process stays up to be
    scraped: the last round (from the ledger) and ``flywheel_nightly_runs_total`` counted over
    every recorded round by outcome, in the Prometheus text format for node-exporter's textfile
    collector (``--collector.textfile.directory``). Written atomically (a temporary file renamed
    over ``path``), so the collector never reads half a file."""
    from prometheus_client import write_to_textfile

    from flywheel.ledger import records

    monitor = Monitor(next_fire=lambda: None, running=lambda: False, runs=runs)
    for rec in records(runs):
        if rec.get("status") == "running":
            continue
        code = int(rec.get("exit_code", 0 if rec.get("status") in ("completed", "skipped") else 1))
        outcome = str(rec.get("outcome") or "failed")
        monitor.rounds.labels(result="ok" if code == 0 else "failed", outcome=outcome).inc()
    # node-exporter's textfile folder may not exist yet on a fresh volume: make it, as the
    # collector only reads what is there.
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), monitor.registry)
