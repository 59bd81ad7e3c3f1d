"""The published JSON Schemas (schemas/trace.json, schemas/feedback.json) and ingest's validator
give every record the same verdict, over the records test_verdicts.py generates.

JSON Schema cannot express a few of ingest's rules (each schema's description lists them). They
are excluded from the comparison one by one, by the problem ingest names, and nowhere else:

- the schema rejects a record  =>  ingest rejects it;
- ingest rejects a record the schema accepts  =>  every problem ingest names is an excluded rule.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings

from ingest.schema import DECODERS, InvalidRecord, parse_json
from tests.ingest.lakeutil import feedback_event, trace_event
from tests.ingest.test_verdicts import wire_records

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
FILES = {"traces": "trace.json", "feedback": "feedback.json"}
LIMIT = 1 << 20

# The rules JSON Schema cannot express, as ingest words them (ingest/schema.py), one per rule.
EXCLUDED = {
    "integer digits": re.compile(r"an integer of \d+ digits, over the limit"),
    "nesting depth": re.compile(r"nested deeper than \d+ levels"),
    "64-bit float range": re.compile(r"out of the range of a 64-bit float"),
    "unpaired surrogate": re.compile(r"unpaired UTF-16 surrogate"),
    "calendar date": re.compile(r"^event_time: .* is not a valid date and time"),
    "time range in UTC": re.compile(r"^event_time: .* outside \d+\.\.\d+ \(UTC\)$"),
    "score within its scale": re.compile(r"^score: .* is outside its scale "),
    "min below max": re.compile(r"^scale: min \(.*\) must be below max "),
    "integer literal": re.compile(r"^schema_version: expected a positive integer, got [0-9]+\.0$"),
}


RATING_RULES = ("score within its scale", "min below max")


def _schema(stream: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / FILES[stream]).read_text(encoding="utf-8"))


VALIDATORS = {stream: jsonschema.Draft202012Validator(_schema(stream)) for stream in FILES}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _int(literal: str) -> Any:
    # Python refuses to parse integers past 4300 digits; the schema has no digit limit (rule excluded)
    return int(literal) if len(literal) <= 4000 else Decimal(literal)


def schema_errors(stream: str, value: bytes) -> list[str]:
    """What a JSON Schema validator in another language would say: the record is strict JSON in
    UTF-8 (the schemas' description), then the schema's own checks."""
    try:
        text = value.decode("utf-8")
        doc = json.loads(text, parse_constant=_no_constant, parse_int=_int)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return [f"not strict JSON in UTF-8: {exc}"]
    return [error.message for error in VALIDATORS[stream].iter_errors(doc)]


def ingest_problems(stream: str, value: bytes) -> list[str]:
    try:
        DECODERS[stream](parse_json(value, LIMIT))
    except InvalidRecord as exc:
        return [f"{field}: {message}" if field else message for field, message in exc.problems]
    return []


def excluded(problem: str) -> str | None:
    return next((name for name, pattern in EXCLUDED.items() if pattern.search(problem)), None)


def check_agreement(stream: str, value: bytes) -> None:
    by_schema, by_ingest = schema_errors(stream, value), ingest_problems(stream, value)
    if by_schema:
        assert by_ingest, ("the schema rejects what ingest accepts", value, by_schema)
    elif by_ingest:
        outside = [p for p in by_ingest if excluded(p) is None]
        assert not outside, ("ingest rejects what the schema accepts", value, outside)


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(wire_records("traces"))
def test_the_trace_schema_and_ingest_agree_on_every_generated_record(value):
    check_agreement("traces", value)


@PROPERTY
@given(wire_records("feedback"))
def test_the_feedback_schema_and_ingest_agree_on_every_generated_record(value):
    check_agreement("feedback", value)


def _with(stream: str, member: bytes) -> bytes:
    good = trace_event(1) if stream == "traces" else feedback_event(1)
    return good[:-1] + b", " + member + b"}"


# Each excluded rule: the schema accepts, ingest refuses, for exactly that rule.
ONLY_INGEST = [
    ("integer digits", "traces", _with("traces", b'"n": ' + b"9" * 101)),
    ("nesting depth", "traces", _with("traces", b'"d": ' + b"[" * 64 + b"]" * 64)),
    ("64-bit float range", "feedback", _with("feedback", b'"x": 1e400')),
    ("unpaired surrogate", "feedback", _with("feedback", b'"comment": "\\ud800"')),
    ("calendar date", "traces", trace_event(1, event_time="2025-02-29T10:00:00Z")),
    ("time range in UTC", "traces", trace_event(1, event_time="2000-01-01T00:30:00+01:00")),
    ("integer literal", "traces", trace_event(1, schema_version=1.0)),
    (
        "score within its scale",
        "feedback",
        feedback_event(1, kind="rating", label=None, score=6, scale={"min": 1, "max": 5}),
    ),
    (
        "min below max",
        "feedback",
        feedback_event(1, kind="rating", label=None, score=1, scale={"min": 1, "max": 1}),
    ),
]


@pytest.mark.parametrize(("rule", "stream", "value"), ONLY_INGEST, ids=[r for r, _, _ in ONLY_INGEST])
def test_each_excluded_rule_is_one_the_schema_cannot_express(rule, stream, value):
    assert schema_errors(stream, value) == []
    problems = ingest_problems(stream, value)
    assert [excluded(p) for p in problems] == [rule]
    check_agreement(stream, value)


BOTH_REFUSE = [
    ("traces", trace_event(1, event_time="2025-03-01T10:00:00Z\n")),  # `$` would have matched
    ("traces", trace_event(1, event_time="2025-03-01T10:00:00")),
    ("traces", trace_event(1, model_version="")),
    ("traces", trace_event(1, prompt=[{"role": "user"}])),
    ("traces", trace_event(1, tags={"a": 1})),
    ("traces", trace_event(1, schema_version=0)),
    ("traces", trace_event(1, completion=None)),
    ("feedback", feedback_event(1, label=None)),
    ("feedback", feedback_event(1, kind="star")),
    ("feedback", feedback_event(1, kind="edit", label="meh", edited_completion="x")),
    ("feedback", feedback_event(1, kind="edit")),
    ("feedback", b"\xef\xbb\xbf" + feedback_event(1)),
    ("feedback", _with("feedback", b'"x": NaN')),
    ("feedback", feedback_event(1, score=4, scale={"min": 1, "max": 5})),  # a thumb with a score
    ("feedback", feedback_event(1, kind="rating", score=4, scale={"min": 1, "max": 5})),  # and a label
    ("feedback", feedback_event(1, kind="rating", label=None, score=4)),
    ("feedback", feedback_event(1, kind="rating", label=None, scale={"min": 1, "max": 5})),
    ("feedback", feedback_event(1, kind="rating", label=None, score=True, scale={"min": 0, "max": 1})),
    (
        "feedback",
        feedback_event(1, kind="rating", label=None, score=1, scale={"min": 0, "max": 1, "step": 1}),
    ),
    ("feedback", feedback_event(1, kind="rating", label="")),
    ("feedback", feedback_event(1, kind="rating", label=None)),
]
BOTH_ACCEPT = [
    (
        "traces",
        trace_event(1, event_time="2025-03-01t10:00:00.1234567z", tags={"a": "b"}, x=[1, {"y": None}]),
    ),
    ("traces", trace_event(1, prompt=[{"role": "user", "content": "hi", "name": "n"}], session_id=None)),
    ("feedback", feedback_event(1, kind=None, label="up")),
    ("feedback", feedback_event(1, kind="edit", label=None, edited_completion="better")),
    ("feedback", feedback_event(1, schema_version=2147483647, prompt=None)),
    ("feedback", feedback_event(1, kind="rating", label=None, score=4, scale={"min": 1, "max": 5})),
    ("feedback", feedback_event(1, kind="rating", label=None, score=0.5, scale={"min": 0, "max": 1.0})),
    ("feedback", feedback_event(1, kind="rating", label="hallucination", score=None)),
]


@pytest.mark.parametrize(("stream", "value"), BOTH_REFUSE)
def test_records_both_refuse(stream, value):
    assert schema_errors(stream, value) and ingest_problems(stream, value)


@pytest.mark.parametrize(("stream", "value"), BOTH_ACCEPT)
def test_records_both_accept(stream, value):
    assert schema_errors(stream, value) == [] and ingest_problems(stream, value) == []


def test_the_schemas_are_valid_versioned_and_share_their_definitions():
    trace, feedback = _schema("traces"), _schema("feedback")
    for schema in (trace, feedback):
        jsonschema.Draft202012Validator.check_schema(schema)
        assert re.fullmatch(r"urn:flywheel-kto:events:(trace|feedback):\d+", schema["$id"])
        assert re.fullmatch(r"\d+\.\d+\.\d+", schema["version"])
        assert schema["$id"].endswith(":" + schema["version"].split(".")[0])
        rules = [n for n in EXCLUDED if schema is feedback or n not in RATING_RULES]
        for name in rules:
            assert name.split()[0].lower() in schema["description"].lower(), name
    assert trace["$defs"].items() <= feedback["$defs"].items()
