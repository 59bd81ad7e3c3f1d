"""Prometheus metrics of the ingest service, on their own registry (several services may share a process in tests)."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("flywheel_ingest_consumed", "records read from Kafka", ["stream"], registry=r)
        self.written = Counter(
            "flywheel_ingest_written", "rows written to the raw lake", ["stream"], registry=r
        )
        self.dead_lettered = Counter(
            "flywheel_ingest_dead_lettered", "records written to the dead-letter lake", ["stream"], registry=r
        )
        self.files = Counter(
            "flywheel_ingest_files", "Parquet files renamed into place", ["stream"], registry=r
        )
        self.batch_seconds = Histogram(
            "flywheel_ingest_batch_seconds",
            "time to write, fsync, rename and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.last_commit = Gauge(
            "flywheel_ingest_last_commit_timestamp_seconds",
            "when offsets were last committed (Unix time)",
            registry=r,
        )
        self.commit_failures = Counter(
            "flywheel_ingest_commit_failures",
            "offset commits that failed (retried or handed over)",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "flywheel_ingest_consumer_lag",
            "records in the partition not yet read by this consumer (high watermark - position)",
            ["topic", "partition"],
            registry=r,
        )
        self._server: Any = None

    def serve(self, port: int) -> None:
        """Expose /metrics on ``port`` (0 = off)."""
        if port:
            result = start_http_server(port, registry=self.registry)
            # prometheus_client >= 0.20 returns (server, thread); keep the server to stop it on exit.
            self._server = result[0] if isinstance(result, tuple) else None
            log.info("metrics on http://0.0.0.0:%d/metrics", port, extra={"metrics_port": port})

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
