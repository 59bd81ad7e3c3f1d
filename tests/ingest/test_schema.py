"""The event contract in memory: every bad-record kind is named, and any valid event survives the lake."""

from __future__ import annotations

import datetime as dt
import io
import json

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.lake import SCHEMAS
from ingest.schema import COLUMNS, InvalidRecord, decode, to_event
from ingest.writer import good_table

GOOD_TRACE = {
    "trace_id": "t1",
    "event_time": "2025-03-01T10:00:00.5+01:00",
    "model_version": "v1",
    "prompt": "hi",
    "completion": "hello",
}
GOOD_FEEDBACK = {"event_id": "e1", "trace_id": "t1", "event_time": "2025-03-01T10:00:00Z", "label": "up"}


def _bytes(doc: dict, **changes: object) -> bytes:
    doc = dict(doc)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


BAD = [
    ("traces", b'{"trace_id": "t1",', None, "not valid JSON"),
    ("traces", b'{"trace_id": "\xff"}', None, "not valid UTF-8"),
    ("traces", b"[1, 2]", None, "expected a JSON object, got a JSON array"),
    ("traces", None, None, "tombstone"),
    ("traces", _bytes(GOOD_TRACE, trace_id=7), "trace_id", "expected a string, got a JSON number"),
    ("traces", _bytes(GOOD_TRACE, completion=...), "completion", "missing"),
    ("traces", _bytes(GOOD_TRACE, prompt={"x": 1}), "prompt", "expected a string or a list of messages"),
    ("traces", _bytes(GOOD_TRACE, prompt=[{"role": "user"}]), "prompt", "message 0"),
    ("traces", _bytes(GOOD_TRACE, tags={"a": 1}), "tags", "string to string"),
    ("traces", _bytes(GOOD_TRACE, event_time="2025-03-01T10:00:00"), "event_time", "no UTC offset"),
    ("traces", _bytes(GOOD_TRACE, event_time="1970-01-01T00:00:00Z"), "event_time", "year 1970"),
    ("traces", _bytes(GOOD_TRACE, event_time="9999-01-01T00:00:00Z"), "event_time", "year 9999"),
    ("traces", _bytes(GOOD_TRACE, event_time="yesterday"), "event_time", "not an RFC 3339"),
    ("traces", _bytes(GOOD_TRACE, event_time=1700000000), "event_time", "expected an RFC 3339 string"),
    ("traces", _bytes(GOOD_TRACE, schema_version="1"), "schema_version", "positive integer"),
    ("traces", b'{"trace_id": "\\ud800", "x": 1}', "trace_id", "surrogate"),
    ("feedback", _bytes(GOOD_FEEDBACK, label="meh"), "label", "'meh' is not one of up, down"),
    ("feedback", _bytes(GOOD_FEEDBACK, label=...), "label", "required for a thumb"),
    ("feedback", _bytes(GOOD_FEEDBACK, kind="star"), "kind", "'star' is not one of thumb, edit"),
    ("feedback", _bytes(GOOD_FEEDBACK, kind="edit", label=...), "edited_completion", "required for an edit"),
    ("feedback", _bytes(GOOD_FEEDBACK, event_id=...), "event_id", "missing"),
    ("feedback", _bytes(GOOD_FEEDBACK, event_id=""), "event_id", "is empty"),
]


@pytest.mark.parametrize(("stream", "value", "field", "fragment"), BAD)
def test_bad_records_name_the_field_and_the_problem(stream, value, field, fragment):
    with pytest.raises(InvalidRecord) as info:
        decode(stream, value)
    assert info.value.field == field
    assert fragment in info.value.reason


def test_oversize_records_are_rejected_before_parsing():
    with pytest.raises(InvalidRecord, match="over the limit of 100"):
        decode("traces", _bytes(GOOD_TRACE, completion="x" * 200), max_bytes=100)


def test_every_problem_is_reported_at_once():
    with pytest.raises(InvalidRecord) as info:
        decode("traces", b'{"trace_id": 1, "completion": 2}')
    assert info.value.field == "trace_id,event_time,model_version,prompt,completion"


def test_defaults_and_extras():
    row = dict(
        zip(COLUMNS["feedback"], decode("feedback", _bytes(GOOD_FEEDBACK, client="ios", n=[1])), strict=True)
    )
    assert row["kind"] == "thumb" and row["schema_version"] == 1
    assert json.loads(row["extra"]) == {"client": "ios", "n": [1]}
    trace = dict(zip(COLUMNS["traces"], decode("traces", _bytes(GOOD_TRACE)), strict=True))
    assert trace["prompt_format"] == "text" and trace["tags"] == "{}" and trace["extra"] == "{}"
    # 10:00:00.5 at +01:00 is 09:00:00.5 UTC.
    assert trace["event_time"] == int(
        dt.datetime(2025, 3, 1, 9, 0, 0, 500000, tzinfo=dt.UTC).timestamp() * 1e6
    )


def test_an_edit_needs_no_label():
    row = decode("feedback", _bytes(GOOD_FEEDBACK, kind="edit", label=..., edited_completion="better"))
    assert row[COLUMNS["feedback"].index("label")] is None


# --- property: any valid event -> Parquet row -> the same event -------------------------

KNOWN = set(COLUMNS["traces"]) | set(COLUMNS["feedback"])
text = st.text(max_size=20)
ids = st.text(min_size=1, max_size=12)
offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
times = st.datetimes(
    min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(2099, 12, 30), timezones=offsets
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
extras = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: k not in KNOWN), json_values, max_size=3
)
prompts = text | st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "user"]), "content": text})
)


def _optional(**fields: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional=fields)


traces = st.tuples(
    st.fixed_dictionaries(
        {"trace_id": ids, "event_time": times, "model_version": ids, "prompt": prompts, "completion": text}
    ),
    _optional(
        session_id=ids,
        user_id=ids,
        tags=st.dictionaries(text, text, max_size=3),
        schema_version=st.integers(1, 5),
    ),
    extras,
)
feedback = st.tuples(
    st.fixed_dictionaries({"event_id": ids, "trace_id": ids, "event_time": times}),
    st.one_of(
        st.fixed_dictionaries(
            {"label": st.sampled_from(["up", "down"])}, optional={"kind": st.just("thumb")}
        ),
        st.fixed_dictionaries(
            {"kind": st.just("edit"), "edited_completion": text},
            optional={"label": st.sampled_from(["up", "down"])},
        ),
    ),
    _optional(user_id=ids, comment=text, prompt=prompts, completion=text, model_version=ids),
    extras,
)


def _round_trip(stream: str, event: dict) -> dict:
    wire = dict(event, event_time=event["event_time"].isoformat())
    row = decode(stream, json.dumps(wire, ensure_ascii=False).encode("utf-8"))
    table = good_table(stream, "topic", 0, [5], [1_700_000_000_000], [row], 1_700_000_000_000)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    back = pq.read_table(io.BytesIO(buf.getvalue()))
    assert back.schema.equals(SCHEMAS[stream])
    return to_event(stream, back.to_pylist()[0])


def _expected(event: dict, **defaults: object) -> dict:
    out = {**defaults, **event}
    out["event_time"] = event["event_time"].astimezone(dt.UTC)
    if not out.get("tags", True):
        out.pop("tags")
    return out


def _normalize(event: dict) -> dict:
    return dict(event, event_time=dt.datetime.fromisoformat(event["event_time"]))


@settings(max_examples=150, deadline=None)
@given(traces)
def test_any_valid_trace_round_trips(parts):
    event = {**parts[2], **parts[1], **parts[0]}
    assert _normalize(_round_trip("traces", event)) == _expected(event, schema_version=1)


@settings(max_examples=150, deadline=None)
@given(feedback)
def test_any_valid_feedback_round_trips(parts):
    event = {**parts[3], **parts[2], **parts[1], **parts[0]}
    assert _normalize(_round_trip("feedback", event)) == _expected(event, schema_version=1, kind="thumb")
