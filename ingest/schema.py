"""The event contract, as ingest imports it.

The validator lives in the light ``flywheel-events`` distribution
(clients/python/flywheel_events/schema.py), so that apps can check events
without installing flywheel; these are the very same objects, not a copy.
"""

from __future__ import annotations

from flywheel_events.schema import (
    BOM,
    COLUMNS,
    DECODERS,
    END_TIME_US,
    FEEDBACK_COLUMNS,
    KINDS,
    LABELS,
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_YEAR,
    MIN_TIME_US,
    MIN_YEAR,
    STREAMS,
    TRACE_COLUMNS,
    InvalidRecord,
    decode,
    decode_feedback,
    decode_trace,
    format_time,
    parse_json,
    parse_time,
    prompt_columns,
    to_event,
)

__all__ = [
    "BOM",
    "COLUMNS",
    "DECODERS",
    "END_TIME_US",
    "FEEDBACK_COLUMNS",
    "KINDS",
    "LABELS",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_YEAR",
    "MIN_TIME_US",
    "MIN_YEAR",
    "STREAMS",
    "TRACE_COLUMNS",
    "InvalidRecord",
    "decode",
    "decode_feedback",
    "decode_trace",
    "format_time",
    "parse_json",
    "parse_time",
    "prompt_columns",
    "to_event",
]
