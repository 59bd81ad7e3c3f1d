"""Configuration of the Kafka connection and the ingest service."""

from __future__ import annotations

import dataclasses
from typing import Any

from flywheel.config import setting


@dataclasses.dataclass(frozen=True)
class KafkaConfig:
    """How every component reaches Kafka. Security settings pass straight to kafka-python."""

    bootstrap_servers: str = setting("127.0.0.1:9092", "comma-separated host:port list of brokers")
    traces_topic: str = setting("llm.traces", "topic of served responses (one record per response)")
    feedback_topic: str = setting("llm.feedback", "topic of user actions (thumbs, edits)")
    client_id: str = setting("flywheel", "client id reported to the brokers")
    security_protocol: str = setting("PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    sasl_mechanism: str | None = setting(None, "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
    sasl_plain_username: str | None = setting(None, "SASL username")
    sasl_plain_password: str | None = setting(None, "SASL password (prefer the environment to a file)")
    ssl_cafile: str | None = setting(None, "CA bundle that signed the brokers' certificates")
    ssl_certfile: str | None = setting(None, "client certificate for mutual TLS")
    ssl_keyfile: str | None = setting(None, "client private key for mutual TLS")
    ssl_check_hostname: bool = setting(True, "verify the brokers' host names against their certificates")
    request_timeout_ms: int = setting(30_000, "per-request timeout")
    reconnect_backoff_max_ms: int = setting(
        10_000, "the client's reconnect backoff doubles up to this while a broker is unreachable"
    )

    def validate(self) -> list[str]:
        problems = []
        if not self.bootstrap_servers.strip():
            problems.append("bootstrap_servers is empty")
        allowed = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}
        if self.security_protocol not in allowed:
            problems.append(f"security_protocol {self.security_protocol!r} is not one of {sorted(allowed)}")
        if self.security_protocol.startswith("SASL") and not self.sasl_mechanism:
            problems.append("security_protocol is SASL_* but sasl_mechanism is not set")
        if self.traces_topic == self.feedback_topic:
            problems.append("traces_topic and feedback_topic must differ")
        if self.request_timeout_ms <= 0:
            problems.append("request_timeout_ms must be positive")
        return problems

    def streams(self) -> dict[str, str]:
        """Topic name to lake stream name (``traces`` or ``feedback``)."""
        return {self.traces_topic: "traces", self.feedback_topic: "feedback"}

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments shared by kafka-python's producer, consumer and admin client."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
            "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms,
        }
        optional = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
            "sasl_plain_password": self.sasl_plain_password,
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
        return kwargs


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
        if not 0 <= self.metrics_port <= 65535:
            problems.append(f"metrics_port must be 0..65535, got {self.metrics_port}")
        if self.session_timeout_ms < 1000:
            problems.append(f"session_timeout_ms must be at least 1000, got {self.session_timeout_ms}")
        if self.retry_backoff_s <= 0 or self.retry_max_backoff_s < self.retry_backoff_s:
            problems.append("retry_backoff_s must be positive and at most retry_max_backoff_s")
        return problems
