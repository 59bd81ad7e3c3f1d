"""Configuration of the ingest service (``[ingest]``; the connection is ``[kafka]``, core.sections)."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from core.sections import KafkaConfig, PathsConfig
from core.settings import setting


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """The always-on consumer that writes the raw lake."""

    group_id: str = setting("flywheel-ingest", "consumer group shared by every ingest replica")
    max_messages: int | None = setting(
        None, "stop after this many records (tests, backfills); none = run forever"
    )
    idle_timeout_s: float | None = setting(None, "stop after this many seconds with no record; none = never")
    batch_max_records: int = setting(10_000, "flush a partition's batch at this many records")
    batch_max_bytes: int = setting(
        16 * 1024 * 1024, "flush a partition's batch at this many bytes of record values"
    )
    batch_max_age_s: float = setting(
        30.0, "flush a partition's batch this long after its first record arrived"
    )
    max_record_bytes: int = setting(1024 * 1024, "records larger than this go to the dead-letter lake")
    session_timeout_ms: int = setting(
        10_000, "consumer group session timeout (a dead replica's partitions move after it)"
    )
    max_poll_interval_ms: int = setting(
        300_000, "longest pause between polls before the group evicts this replica"
    )
    max_poll_records: int = setting(10_000, "records returned by one poll at most")
    fetch_max_bytes: int = setting(64 * 1024 * 1024, "bytes one fetch request may return")
    max_partition_fetch_bytes: int = setting(16 * 1024 * 1024, "bytes one fetch may return per partition")
    auto_offset_reset: str = setting(
        "earliest", "where a new group starts: earliest (no event missed) or latest"
    )
    metrics_port: int = setting(0, "Prometheus metrics on this port (0 = off)")
    retry_backoff_s: float = setting(
        0.5, "first wait before retrying the broker or the disk; doubles each time"
    )
    retry_max_backoff_s: float = setting(30.0, "longest wait between retries")
    give_up_after_s: float = setting(300.0, "raise a transient error (exit 75) after retrying this long")
    writer_mode: str = setting(
        "process",
        "where batches are decoded, encoded and written: process (two child processes at lower CPU "
        "priority, handed each batch's buffers; the consumer keeps its GIL and its core: measured "
        "faster on 2 cores, README) or thread (two threads of the consumer's process: about 250 MB "
        "less memory, slower)",
    )

    def validate(self) -> list[str]:
        problems = []
        for name in ("batch_max_records", "batch_max_bytes", "max_record_bytes", "max_poll_records"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_max_age_s <= 0:
            problems.append(f"batch_max_age_s must be positive, got {self.batch_max_age_s}")
        if self.max_messages is not None and self.max_messages <= 0:
            problems.append(f"max_messages must be positive or unset, got {self.max_messages}")
        if self.idle_timeout_s is not None and self.idle_timeout_s <= 0:
            problems.append(f"idle_timeout_s must be positive or unset, got {self.idle_timeout_s}")
        if self.auto_offset_reset not in ("earliest", "latest"):
            problems.append(f"auto_offset_reset must be earliest or latest, got {self.auto_offset_reset!r}")
        if self.writer_mode not in ("thread", "process"):
            problems.append(f"writer_mode must be thread or process, got {self.writer_mode!r}")
        if not 0 <= self.metrics_port <= 65535:
            problems.append(f"metrics_port must be 0..65535, got {self.metrics_port}")
        if self.session_timeout_ms < 1000:
            problems.append(f"session_timeout_ms must be at least 1000, got {self.session_timeout_ms}")
        if self.retry_backoff_s <= 0 or self.retry_max_backoff_s < self.retry_backoff_s:
            problems.append("retry_backoff_s must be positive and at most retry_max_backoff_s")
        return problems


class IngestSettings(Protocol):
    """The sections the ingest service reads; ``flywheel.config.Config`` has them all."""

    @property
    def paths(self) -> PathsConfig: ...

    @property
    def kafka(self) -> KafkaConfig: ...

    @property
    def ingest(self) -> IngestConfig: ...
