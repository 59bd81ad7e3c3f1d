"""The sections every floor reads: where the files are (``[paths]``) and how to reach Kafka (``[kafka]``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from core.settings import setting


@dataclasses.dataclass(frozen=True)
class PathsConfig:
    """Where the stages keep their files."""

    lake: str = setting("lake", "root of the Parquet lake: raw/, dlq/, curated/", path=True)
    raw_lake: str = setting(
        "",
        "where ingest writes raw/ and dlq/ and curation reads them, when not under paths.lake: "
        "a folder or s3://bucket/prefix, gs://bucket/prefix (snapshots stay in paths.lake)",
        path=True,
    )
    registry: str = setting(
        "registry", "root of the model registry: models/, champion pointer, history", path=True
    )
    runs: str = setting("runs", "nightly run ledger, the round lock and the scheduler's job store", path=True)
    cache: str = setting(".cache/flywheel", "local cache (the tiny world model, tokenizers)", path=True)


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
    ssl_cafile: str | None = setting(None, "CA bundle that signed the brokers' certificates", path=True)
    ssl_certfile: str | None = setting(None, "client certificate for mutual TLS", path=True)
    ssl_keyfile: str | None = setting(None, "client private key for mutual TLS", path=True)
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
