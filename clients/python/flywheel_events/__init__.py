"""flywheel-events: send traces and feedback to flywheel from an app, without flywheel.

    from flywheel_events import EventProducer, KafkaSettings

    with EventProducer(KafkaSettings("broker:9092"), validate=True) as events:
        trace_id = events.send_trace(prompt=prompt, completion=answer, model_version="v7")
        events.send_feedback(trace_id=trace_id, label="up", user_id=user)

Needs only kafka-python. The validator is the one ingest runs (ingest.schema re-exports
it), so an event :func:`validate` accepts is one ingest writes to the lake; the JSON
Schemas for other languages ship as package data (:func:`json_schema`).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from flywheel_events.errors import FlywheelError, TerminalError, TransientError
from flywheel_events.producer import EventProducer, KafkaSettings, encode_event, now_rfc3339
from flywheel_events.schema import STREAMS, InvalidRecord, decode

__version__ = "0.1.0"

_SCHEMA_FILES = {"traces": "trace.json", "feedback": "feedback.json"}


def _stream(stream: str) -> str:
    if stream not in _SCHEMA_FILES:
        raise ValueError(f"unknown stream {stream!r}: expected one of {', '.join(STREAMS)}")
    return stream


def validate(stream: str, event: dict[str, Any]) -> list[str]:
    """The contract's problems with ``event`` (a ``traces`` or ``feedback`` event), [] when valid.

    Each problem reads ``field: what is wrong`` as ingest's dead-letter lake would record it.
    """
    _stream(stream)
    try:
        payload = encode_event(event)
    except (TypeError, ValueError) as exc:  # a value json cannot write (a datetime, a set, a cycle)
        return [f"not JSON: {exc}"]
    try:
        decode(stream, payload)
    except InvalidRecord as exc:
        return [f"{field}: {message}" if field else message for field, message in exc.problems]
    return []


def json_schema(stream: str) -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of ``stream``, as shipped in this package."""
    text = resources.files(__name__).joinpath("schemas", _SCHEMA_FILES[_stream(stream)]).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


__all__ = [
    "STREAMS",
    "EventProducer",
    "FlywheelError",
    "InvalidRecord",
    "KafkaSettings",
    "TerminalError",
    "TransientError",
    "decode",
    "encode_event",
    "json_schema",
    "now_rfc3339",
    "validate",
]
