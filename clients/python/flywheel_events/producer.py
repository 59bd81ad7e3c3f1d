"""The app side: emit traces and feedback in the event contract (docs/contracts.md).

    with EventProducer(KafkaSettings("broker:9092")) as events:   # or flywheel's config.kafka
        trace_id = events.send_trace(prompt=..., completion=..., model_version=champion)
        events.send_feedback(trace_id=trace_id, label="down", user_id=user)

Ids and event times are filled in when not given. Records are keyed by
trace id, so a trace and its feedback share a partition and keep their order.
``acks=all`` and client retries resend the same bytes, hence the same event
id; an application that retries a failed send itself should pass the
``event_id`` returned by the first attempt so the lake sees one action, not two.
With ``validate=True`` each event is checked against the contract before it is
sent and a bad one raises :class:`~flywheel_events.schema.InvalidRecord` in the
app, instead of reaching ingest's dead-letter lake.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from types import TracebackType
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from flywheel_events.errors import TransientError
from flywheel_events.schema import decode

# The defaults of flywheel's own kafka settings (ingest/config.py; a test keeps them equal).
DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_TRACES_TOPIC = "llm.traces"
DEFAULT_FEEDBACK_TOPIC = "llm.feedback"


@dataclasses.dataclass(frozen=True)
class KafkaSettings:
    """Where an app sends its events, for apps without flywheel's configuration.

    Anything with ``bootstrap_servers``, ``traces_topic``, ``feedback_topic`` and
    ``client_kwargs()`` will do (flywheel's ``config.kafka`` is one). Security settings
    (``security_protocol``, ``sasl_*``, ``ssl_*``) go to :class:`EventProducer` as keyword
    arguments and on to kafka-python's ``KafkaProducer``.
    """

    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    traces_topic: str = DEFAULT_TRACES_TOPIC
    feedback_topic: str = DEFAULT_FEEDBACK_TOPIC
    client_id: str = "flywheel-events"

    def __post_init__(self) -> None:
        if not self.servers():
            raise ValueError("bootstrap_servers is empty: give host:port of at least one broker")
        if self.traces_topic == self.feedback_topic:
            raise ValueError(
                f"traces_topic and feedback_topic are both {self.traces_topic!r}: they must differ"
            )

    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's producer."""
        return {"bootstrap_servers": self.servers(), "client_id": self.client_id}


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode_event(event: dict[str, Any]) -> bytes:
    """An event as one record's value: compact JSON in UTF-8.

    A string holding an unpaired surrogate cannot be UTF-8, so such an event is written with
    ASCII escapes instead; the validator (and ingest) then name the surrogate as the problem.
    """
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(event, separators=(",", ":")).encode("ascii")


def _time(value: str | dt.datetime | None) -> str:
    if value is None:
        return now_rfc3339()
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("event_time must be timezone-aware (RFC 3339 needs an offset)")
        return value.isoformat().replace("+00:00", "Z")
    return value


class EventProducer:
    def __init__(self, kafka_config: Any, *, validate: bool = False, **overrides: Any) -> None:
        """``kafka_config``: a :class:`KafkaSettings` or flywheel's ``config.kafka``; ``overrides`` go
        to ``KafkaProducer``; ``validate``: check each event against the contract before sending."""
        self.config = kafka_config
        self.validate = validate
        kwargs = kafka_config.client_kwargs()
        kwargs.update(acks="all", retries=10, linger_ms=5, max_in_flight_requests_per_connection=1)
        kwargs.update(overrides)
        try:
            self._producer = KafkaProducer(**kwargs)
        except KafkaError as exc:
            raise TransientError(
                f"no Kafka broker answers at {kafka_config.bootstrap_servers}",
                hint="check kafka.bootstrap_servers; for development run `flywheel broker`",
            ) from exc
        self.sent = 0
        # Errbacks rather than a list of futures: an always-on app must not grow memory per send.
        self._failures: list[BaseException] = []
        self._failed_count = 0

    def _on_error(self, exc: BaseException) -> None:
        self._failed_count += 1
        if len(self._failures) < 10:
            self._failures.append(exc)

    def send_raw(self, topic: str, value: bytes | None, key: bytes | None = None) -> Any:
        """Send bytes as they are (tests and the simulator's malformed records)."""
        future = self._producer.send(topic, value=value, key=key)
        future.add_errback(self._on_error)
        self.sent += 1
        return future

    def _send(self, stream: str, topic: str, event: dict[str, Any], key: str) -> None:
        payload = encode_event(event)
        if self.validate:
            decode(stream, payload)  # raises InvalidRecord naming every problem; nothing is sent
        self.send_raw(topic, payload, key.encode("utf-8"))

    def send_trace(
        self,
        *,
        prompt: str | list[dict[str, str]],
        completion: str,
        model_version: str,
        trace_id: str | None = None,
        event_time: str | dt.datetime | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        tags: dict[str, str] | None = None,
        **extra: Any,
    ) -> str:
        """Send one served response; returns its trace id."""
        trace_id = trace_id or uuid.uuid4().hex
        event: dict[str, Any] = {
            "trace_id": trace_id,
            "event_time": _time(event_time),
            "model_version": model_version,
            "prompt": prompt,
            "completion": completion,
        }
        optional = {"session_id": session_id, "user_id": user_id, "tags": tags}
        event.update({k: v for k, v in optional.items() if v is not None})
        event.update(extra)
        self._send("traces", self.config.traces_topic, event, trace_id)
        return trace_id

    def send_feedback(
        self,
        *,
        trace_id: str,
        label: str | None = None,
        kind: str = "thumb",
        edited_completion: str | None = None,
        event_id: str | None = None,
        event_time: str | dt.datetime | None = None,
        user_id: str | None = None,
        comment: str | None = None,
        **extra: Any,
    ) -> str:
        """Send one user action on a trace; returns its event id (reuse it to retry)."""
        event_id = event_id or uuid.uuid4().hex
        event: dict[str, Any] = {
            "event_id": event_id,
            "trace_id": trace_id,
            "event_time": _time(event_time),
            "kind": kind,
        }
        optional = {
            "label": label,
            "edited_completion": edited_completion,
            "user_id": user_id,
            "comment": comment,
        }
        event.update({k: v for k, v in optional.items() if v is not None})
        event.update(extra)
        self._send("feedback", self.config.feedback_topic, event, trace_id)
        return event_id

    def flush(self, timeout_s: float | None = 60.0) -> None:
        """Wait until every record sent so far is acknowledged by all in-sync replicas."""
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            raise TransientError(
                f"records still unacknowledged after {timeout_s}s: {exc!r}",
                hint="check the brokers, then resend",
            ) from exc
        if self._failed_count:
            count, first = self._failed_count, self._failures[0]
            self._failed_count, self._failures = 0, []
            raise TransientError(
                f"{count} of {self.sent} records were not acknowledged, first: {first!r}",
                hint="resend them with the same event ids; curation keeps one copy per id",
            )

    def close(self, timeout_s: float | None = 30.0) -> None:
        """Flush (raising if records were lost), then close the connection."""
        try:
            self.flush(timeout_s)
        finally:
            self._producer.close(timeout=timeout_s)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
