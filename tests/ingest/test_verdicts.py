"""One verdict per byte string: whichever batch a record arrives in, the bulk path (Arrow) and the
per-record validator give it the same outcome and store the same values, and no record, however
strange, makes the writer raise (which would stop its partition on every restart)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from flywheel.config import defaults
from ingest.batch import PartitionBatch
from ingest.fastpath import bulk_table
from ingest.flusher import Flusher
from ingest.schema import (
    BOM,
    COLUMNS,
    DECODERS,
    END_TIME_US,
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MIN_TIME_US,
    InvalidRecord,
    decode,
    parse_json,
)
from ingest.writer import good_table
from tests.ingest.lakeutil import feedback_event, read, temps, trace_event

NOW_MS = 1_700_000_000_000
TOPIC = "t"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _records(values: Sequence[bytes | None], first: int = 100) -> list[ConsumerRecord]:
    return [
        ConsumerRecord(TOPIC, 0, -1, first + i, NOW_MS + i, 0, None, v, [], None, -1, len(v or b""), -1)
        for i, v in enumerate(values)
    ]


def _good(stream: str, i: int) -> bytes:
    return trace_event(i) if stream == "traces" else feedback_event(i)


# --- what the generated records are made of ------------------------------------------------

# Literals json.dumps cannot write (or writes only as non-JSON): spliced into the text by name.
RAW = {
    "nan": "NaN",
    "inf": "Infinity",
    "-inf": "-Infinity",
    "1e400": "1e400",
    "-1e400": "-1e400",
    "int_at_limit": "9" * MAX_INT_DIGITS,
    "negative_int_at_limit": "-" + "9" * MAX_INT_DIGITS,
    "int_over_limit": "9" * (MAX_INT_DIGITS + 1),
    "int_5000": "7" * 5000,
    # The record's object is level 1, so n brackets in one of its fields make n + 1 levels.
    "depth_at_limit": "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1),
    "depth_over_limit": "[" * MAX_DEPTH + "]" * MAX_DEPTH,
    "objects_over_limit": '{"a":' * MAX_DEPTH + "1" + "}" * MAX_DEPTH,
    "depth_950": "[" * 950 + "]" * 950,
    "depth_3000": "[" * 3000 + "]" * 3000,
    "lone_surrogate": '"\\ud800"',
    "escaped_pair": '"\\ud83d\\ude00"',
    "escaped_nul": '"a\\u0000b"',
}


class Raw:
    def __init__(self, name: str) -> None:
        self.name = name


raw = st.sampled_from(sorted(RAW)).map(Raw)
texts = st.text(max_size=12) | st.sampled_from(
    ["", " ", "é", "\u2028", "\ufeff", 'a"b\\c', "\x00", "🙂", "{[("]
)
ids = st.text(min_size=1, max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | texts | raw,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
# Anything a field might hold instead of a good value.
odd_values = st.none() | st.booleans() | st.integers(-5, 5) | st.floats() | raw | st.lists(texts, max_size=2)
_DAY_US = 86_400_000_000
ODD_TIMES = [
    "2025-03-01T24:00:00Z",
    "2025-03-01T23:59:60Z",
    "2025-02-29T10:00:00Z",
    "2025-03-01T10:00:00+24:00",
    "2025-03-01T10:00:00+01:60",
    "2025-03-01T10:00:00.Z",
    "2025-03-01T10:00Z",
    "20250301T100000Z",
    "2025-03-01T10:00:00,5Z",
    "２０２５-03-01T10:00:00Z",
    "2025-03-01T10:00:00Z\n",
    " 2025-03-01T10:00:00Z",
    "2025-03-01T10:00:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
]


def _offset_text(minutes: int, style: str) -> str:
    if minutes == 0 and style in ("Z", "z"):
        return style
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    if style == "+HHMM":
        return f"{sign}{hours:02d}{mins:02d}"
    if style == "+HH" and mins == 0:
        return f"{sign}{hours:02d}"
    if style == "none":
        return ""
    return f"{sign}{hours:02d}:{mins:02d}"


@st.composite
def spelled_times(draw: Any, inside: bool) -> str:
    """An instant near a bound of the accepted range (or in 2025), in some offset and spelling.

    ``inside``: the instant is in the range and the spelling is RFC 3339; else anything goes."""
    bound = draw(st.sampled_from(["low", "high", "2025"]))
    if bound == "2025":
        instant = 1_740_787_200_000_000 + draw(st.integers(0, 365 * _DAY_US))
    elif inside:
        step = draw(st.integers(0, 2 * _DAY_US))
        instant = MIN_TIME_US + step if bound == "low" else END_TIME_US - 1 - step
    else:
        instant = (MIN_TIME_US if bound == "low" else END_TIME_US) + draw(
            st.integers(-2 * _DAY_US, 2 * _DAY_US)
        )
    if draw(st.booleans()):
        instant -= instant % 1_000_000  # whole seconds, the common case
    minutes = draw(
        st.sampled_from([0, 60, -60, 30, -30, 23 * 60 + 59, -(23 * 60 + 59)]) | st.integers(-1439, 1439)
    )
    local = (_EPOCH + dt.timedelta(microseconds=instant + minutes * 60_000_000)).replace(tzinfo=None)
    digits = draw(st.sampled_from([0, 0, 0, 0, 0, 1, 3, 6, 6, 7, 9]))
    fraction = f"{local.microsecond:06d}{draw(st.integers(0, 999)):03d}"[:digits]
    sep = draw(st.sampled_from(["T"] * 8 + ["t", " "]))
    styles = ["+HH:MM", "+HH:MM", "+HH:MM", "Z", "Z", "z"] + ([] if inside else ["+HHMM", "+HH", "none"])
    text = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{fraction}" if digits else "")
    return text + _offset_text(minutes, draw(st.sampled_from(styles)))


def _message_lists() -> st.SearchStrategy:
    return st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": texts}))


@st.composite
def ratings(draw: Any) -> dict[str, Any]:
    """A score on its scale: stars, 0-1, or any range, at and between its bounds, ints or floats."""
    low, high = draw(
        st.sampled_from([(1, 5), (0, 1), (0.0, 1.0), (-3, 3), (1, 10)])
        | st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)).filter(lambda b: b[0] < b[1])
    )
    score = draw(st.sampled_from([low, high]) | st.floats(low, high) | st.integers(int(low), int(high)))
    if not low <= score <= high:
        score = low
    return {"score": score, "scale": {"min": low, "max": high}}


@st.composite
def plain_docs(draw: Any, stream: str) -> dict[str, Any]:
    """A valid event, as most are: only contract fields, plain values, times in range."""
    optional: dict[str, st.SearchStrategy] = {"user_id": ids}
    if stream == "traces":
        doc = {
            "trace_id": draw(ids),
            "event_time": draw(spelled_times(inside=True)),
            "model_version": draw(ids),
            "prompt": draw(texts if draw(st.sampled_from(range(6))) else _message_lists()),
            "completion": draw(texts),
        }
        optional.update(
            session_id=ids, tags=st.dictionaries(texts, texts, max_size=3), schema_version=st.integers(1, 3)
        )
    else:
        doc = {"event_id": draw(ids), "trace_id": draw(ids), "event_time": draw(spelled_times(inside=True))}
        action = draw(st.sampled_from(["thumb", "thumb", "edit", "rating", "category"]))
        if action == "thumb":
            doc["label"] = draw(st.sampled_from(["up", "down"]))
            if draw(st.booleans()):
                doc["kind"] = "thumb"
        elif action == "edit":
            doc.update(kind="edit", edited_completion=draw(texts))
            if draw(st.booleans()):
                doc["label"] = draw(st.sampled_from(["up", "down"]))
        elif action == "rating":
            doc.update(kind="rating", **draw(ratings()))
        else:
            doc.update(kind="rating", label=draw(ids | st.sampled_from(["helpful", "harmful", "up"])))
        optional.update(comment=texts, prompt=texts, completion=texts, model_version=ids)
    doc.update(draw(st.fixed_dictionaries({}, optional=optional)))
    return doc


MUTATIONS = (
    "time",
    "empty",
    "odd value",
    "missing",
    "unknown field",
    "schema_version",
    "bom",
    "whitespace",
    "twice",
    "truncated",
    "not utf-8",
    "rating",
)


@st.composite
def wire_records(draw: Any, stream: str) -> bytes:
    """A record's bytes: a plain valid event (half the time), or one broken or stretched in one way."""
    doc = draw(plain_docs(stream))
    mutation = draw(st.sampled_from([None] * len(MUTATIONS) + list(MUTATIONS)))
    fields = sorted(doc)
    if mutation == "time":
        doc["event_time"] = draw(
            spelled_times(inside=False) | st.sampled_from(ODD_TIMES) | texts | odd_values
        )
    elif mutation == "empty":
        doc[draw(st.sampled_from([*fields, "kind", "label"]))] = ""
    elif mutation == "odd value":
        doc[draw(st.sampled_from(fields))] = draw(odd_values | texts)
    elif mutation == "missing":
        del doc[draw(st.sampled_from(fields))]
    elif mutation == "unknown field":
        names = st.sampled_from(["x", "client", "Trace_id", "ü", ""])
        doc.update(draw(st.dictionaries(names, json_values, min_size=1, max_size=2)))
    elif mutation == "rating":
        doc["kind"] = draw(st.sampled_from(["rating", "thumb", "edit", None]))
        doc.update(
            draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "score": odd_values | st.integers(-10, 10) | st.floats(-10, 10),
                        "scale": odd_values
                        | st.fixed_dictionaries({"min": st.integers(-2, 6), "max": st.integers(-2, 6)})
                        | st.dictionaries(st.sampled_from(["min", "max", "step"]), odd_values, max_size=3),
                        "label": odd_values | texts,
                    },
                )
            )
        )
    elif mutation == "schema_version":
        doc["schema_version"] = draw(st.sampled_from([0, -1, 2**31 - 1, 2**31, 1.0, "1"]) | raw)
    value = _serialize(doc, draw(st.booleans()))
    if mutation == "bom":
        value = BOM + value
    elif mutation == "whitespace":
        value = (
            draw(st.sampled_from([b" ", b"\t", b"\r", b" \r", b""]))
            + value
            + draw(st.sampled_from([b"", b" ", b"\r"]))
        )
    elif mutation == "twice":  # a member given twice: the last one counts (json.loads), Arrow defers
        name = draw(st.sampled_from(fields))
        again = _serialize({"v": draw(odd_values | texts | st.just(doc.get(name)))}, True)[6:-1]
        value = value[:-1] + b", " + json.dumps(name).encode() + b": " + again + b"}"
    elif mutation == "truncated":
        value = value[: draw(st.integers(0, len(value) - 1))]
    elif mutation == "not utf-8":
        value = value.replace(b'"', b"\xff", 1)
    return value


def _serialize(doc: dict[str, Any], ascii_only: bool) -> bytes:
    spliced: dict[str, str] = {}

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            key = f"@@raw{len(spliced)}@@"
            spliced[f'"{key}"'] = RAW[value.name]
            return key
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(doc), ensure_ascii=ascii_only)
    for key, literal in spliced.items():
        text = text.replace(key, literal)
    return text.encode("utf-8")


# --- the property --------------------------------------------------------------------------


def _verdict(stream: str, value: bytes | None, limit: int) -> tuple[Any, ...] | str:
    """The per-record validator's verdict: the row, or the dead-letter reason. Nothing else may come out."""
    try:
        return DECODERS[stream](parse_json(value, limit))
    except InvalidRecord as exc:
        return exc.reason


def _table(stream: str, records: list[ConsumerRecord], rows: list[Any]) -> Any:
    return good_table(
        stream, TOPIC, 0, [r.offset for r in records], [r.timestamp for r in records], rows, NOW_MS
    )


def _check_one_verdict(stream: str, values: list[bytes], limit: int) -> None:
    verdicts = [_verdict(stream, v, limit) for v in values]
    good = [_good(stream, 900 + i) for i in range(3)]
    for batch_values in (values, [good[0], *values, *good[1:]]):
        records = _records(batch_values)
        expected = [_verdict(stream, v, limit) for v in batch_values]
        # 1. The bulk path, when it takes the batch, stores exactly what the validator would.
        fast = bulk_table(stream, TOPIC, 0, records, limit, NOW_MS)
        if fast is not None:
            assert all(not isinstance(v, str) for v in expected), ("bulk accepted", batch_values, expected)
            slow = _table(stream, records, expected)
            assert fast.equals(slow), (batch_values, fast.to_pylist(), slow.to_pylist())
        # 2. The batch as the writer decodes it: the same outcome and the same row for every record.
        batch = PartitionBatch(TOPIC, 0, stream, {}, 10_000, 1 << 30, 60.0, limit)
        assert batch.add(records, 0) == len(records)
        table, letters = batch.decode(NOW_MS)
        reasons = {d.offset: d.reason for d in letters}
        kept = [r for r, v in zip(records, expected, strict=True) if not isinstance(v, str)]
        assert reasons == {r.offset: v for r, v in zip(records, expected, strict=True) if isinstance(v, str)}
        want = _table(stream, kept, [v for v in expected if not isinstance(v, str)])
        got = table if table is not None else _table(stream, [], [])
        assert got.equals(want), (batch_values, got.to_pylist(), want.to_pylist())
    assert [_verdict(stream, v, limit) for v in values] == verdicts


PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.lists(wire_records("traces"), min_size=1, max_size=3), st.sampled_from([1 << 20, 1 << 20, 300]))
def test_a_trace_gets_one_verdict_in_any_batch(values, limit):
    _check_one_verdict("traces", values, limit)


@PROPERTY
@given(st.lists(wire_records("feedback"), min_size=1, max_size=3), st.sampled_from([1 << 20, 1 << 20, 200]))
def test_a_feedback_event_gets_one_verdict_in_any_batch(values, limit):
    _check_one_verdict("feedback", values, limit)


# --- the cases from the report, by name ----------------------------------------------------


def _with(stream: str, raw_member: bytes) -> bytes:
    return _good(stream, 1)[:-1] + b", " + raw_member + b"}"


REFUSED = [
    ("traces", _with("traces", b'"n": ' + b"9" * 5000), None, "an integer of 5000 digits"),
    ("traces", _with("traces", b'"schema_version": ' + b"9" * 5000), None, "an integer of 5000 digits"),
    ("traces", _with("traces", b'"n": ' + b"9" * 101), None, "over the limit of 100"),
    ("traces", _with("traces", b'"d": ' + b"[" * 950 + b"]" * 950), None, "nested deeper than 64 levels"),
    ("traces", _with("traces", b'"d": ' + b"[" * 999 + b"]" * 999), None, "nested deeper than 64 levels"),
    ("traces", _with("traces", b'"d": ' + b"[" * 64 + b"]" * 64), None, "nested deeper than 64 levels"),
    ("traces", _with("traces", b'"d": ' + b"[" * 100_000 + b"]" * 100_000), None, "nested deeper than"),
    ("traces", _with("traces", b'"tags": ' + b'{"a":' * 300_000 + b'"1"' + b"}" * 300_000), None, "nested"),
    ("traces", _with("traces", b'"x": NaN'), None, "NaN is not JSON"),
    ("traces", _with("traces", b'"x": Infinity'), None, "Infinity is not JSON"),
    ("feedback", _with("feedback", b'"x": [-Infinity]'), None, "-Infinity is not JSON"),
    ("traces", _with("traces", b'"x": 1e400'), None, "out of the range of a 64-bit float"),
    ("feedback", feedback_event(1, kind=""), "kind", "an empty string is not one of thumb, edit"),
    ("feedback", feedback_event(1, label=""), "label", "an empty string is not one of up, down"),
    ("traces", BOM + trace_event(1), None, "byte order mark"),
    ("feedback", BOM + feedback_event(1), None, "byte order mark"),
    ("traces", trace_event(1, event_time="2000-01-01T00:30:00+01:00"), "event_time", "1999-12-31T23:30:00Z"),
    ("traces", trace_event(1, event_time="2100-12-31T23:30:00-01:00"), "event_time", "2101-01-01T00:30:00Z"),
    ("traces", trace_event(1, event_time="2025-03-01T10:00Z"), "event_time", "not an RFC 3339 timestamp"),
    ("traces", trace_event(1, event_time="2025-03-01T10:00:00+0100"), "event_time", "not an RFC 3339"),
    # RFC 3339's offset minutes are 00-59 and hours 00-23 (Python's fromisoformat reads +01:60 as +02:00)
    ("traces", trace_event(1, event_time="2025-03-01T10:00:00+01:60"), "event_time", "not an RFC 3339"),
    ("feedback", feedback_event(1, event_time="2025-03-01T10:00:00-24:00"), "event_time", "not an RFC 3339"),
    ("traces", trace_event(1, event_time="2025-02-29T10:00:00Z"), "event_time", "not a valid date and time"),
]
ACCEPTED = [
    # In range in UTC, whatever the year they show: the range is the instant's, in UTC.
    ("traces", trace_event(1, event_time="1999-12-31T23:30:00-01:00"), "event_time", 946686600000000),
    ("traces", trace_event(1, event_time="2101-01-01T00:30:00+01:00"), "event_time", 4133979000000000),
    ("traces", trace_event(1, event_time="2025-03-01t10:00:00.1234567z"), "event_time", 1740823200123456),
    ("traces", _with("traces", b'"n": ' + b"9" * 100), "extra", '{"n":' + "9" * 100 + "}"),
    (
        "traces",
        _with("traces", b'"d": ' + b"[" * 63 + b"]" * 63),
        "extra",
        '{"d":' + "[" * 63 + "]" * 63 + "}",
    ),
    ("feedback", feedback_event(1), "kind", "thumb"),
]


@pytest.mark.parametrize(("stream", "value", "field", "fragment"), REFUSED)
def test_records_past_the_limits_are_dead_lettered_in_any_batch(stream, value, field, fragment):
    with pytest.raises(InvalidRecord) as info:
        decode(stream, value, max_bytes=4 << 20)
    assert fragment in info.value.reason and info.value.field == field
    good = [_good(stream, i) for i in range(600)]
    for values in ([value], [*good, value, *good]):
        records = _records(values)
        assert bulk_table(stream, TOPIC, 0, records, 4 << 20, NOW_MS) is None
        batch = PartitionBatch(TOPIC, 0, stream, {}, 10_000, 1 << 30, 60.0, 4 << 20)
        batch.add(records, 0)
        table, letters = batch.decode(NOW_MS)
        assert [d.reason for d in letters] == [info.value.reason]
        assert (table.num_rows if table is not None else 0) == len(values) - 1


@pytest.mark.parametrize(("stream", "value", "column", "stored"), ACCEPTED)
def test_records_within_the_limits_are_stored_alike_in_any_batch(stream, value, column, stored):
    row = dict(zip(COLUMNS[stream], decode(stream, value), strict=True))
    assert row[column] == stored
    for values in ([value], [_good(stream, 7), value]):
        batch = PartitionBatch(TOPIC, 0, stream, {}, 10_000, 1 << 30, 60.0, 1 << 20)
        batch.add(_records(values), 0)
        table, letters = batch.decode(NOW_MS)
        assert not letters and table is not None
        got = table.column(column).to_pylist()[-1]
        assert ((got - _EPOCH) // dt.timedelta(microseconds=1) if column == "event_time" else got) == stored


# --- the writer, end to end ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_batch_with_records_the_writer_could_not_encode_is_written_bad_ones_dead_lettered(
    tmp_path: Path, mode: str
):
    """Through the writer (Flusher: a thread, or a child process) into real Parquet files: before,
    the first of these records raised in the writer, the batch failed, and a restart failed on it again."""
    bad = [value for stream, value, _, _ in REFUSED if stream == "traces" and len(value) < 1 << 20]
    values = [v for i, b in enumerate(bad) for v in (trace_event(i), b)]
    batch = PartitionBatch(TOPIC, 0, "traces", {}, 10_000, 1 << 30, 60.0, 1 << 20)
    assert batch.add(_records(values, first=0), 0) == len(values)
    flusher = Flusher(tmp_path, dataclasses.replace(defaults().ingest, writer_mode=mode))
    try:
        flusher.submit(batch)
        ((_, files),) = flusher.completed(wait=True)
    finally:
        flusher.close()
    assert (files.rows, files.dead_letters) == (len(bad), len(bad))
    raw_rows = read(tmp_path, "raw", "traces")
    dead = read(tmp_path, "dlq", "traces")
    assert raw_rows is not None and dead is not None
    assert raw_rows.column("trace_id").to_pylist() == [f"tr-{i}" for i in range(len(bad))]
    assert raw_rows.column("_offset").to_pylist() == list(range(0, len(values), 2))
    assert sorted(dead.column("_offset").to_pylist()) == list(range(1, len(values), 2))
    assert sorted(dead.column("value").to_pylist()) == sorted(bad)
    assert all(reason for reason in dead.column("reason").to_pylist())
    assert all(json.loads(extra) == {} for extra in raw_rows.column("extra").to_pylist())
    assert not temps(tmp_path)


def test_a_record_the_validator_did_not_foresee_is_dead_lettered_not_raised(monkeypatch, tmp_path: Path):
    """Should the validator raise something else than InvalidRecord, or pass a row the lake's schema
    refuses, that record is dead-lettered with what went wrong; the batch is still written."""
    real = DECODERS["traces"]

    def buggy(doc: dict[str, Any]) -> tuple[Any, ...]:
        marker = doc.get("bug")
        row = real(doc)
        if marker == "raise":
            raise KeyError("a validator bug")
        if marker == "unencodable":
            return (*row[:5], 12345, *row[6:])  # an int where the completion string goes
        return row

    monkeypatch.setitem(DECODERS, "traces", buggy)
    values = [trace_event(0), trace_event(1, bug="raise"), trace_event(2, bug="unencodable"), trace_event(3)]
    batch = PartitionBatch(TOPIC, 0, "traces", {}, 10_000, 1 << 30, 60.0, 1 << 20)
    batch.add(_records(values, first=0), 0)
    # In this process: the patched validator does not reach a writer process.
    flusher = Flusher(tmp_path, dataclasses.replace(defaults().ingest, writer_mode="thread"))
    try:
        flusher.submit(batch)
        ((_, files),) = flusher.completed(wait=True)
    finally:
        flusher.close()
    assert (files.rows, files.dead_letters) == (2, 2)
    written, dead_letters = read(tmp_path, "raw", "traces"), read(tmp_path, "dlq", "traces")
    assert written is not None and dead_letters is not None
    assert written.column("_offset").to_pylist() == [0, 3]
    dead = sorted(dead_letters.to_pylist(), key=lambda r: r["_offset"])
    assert [d["_offset"] for d in dead] == [1, 2]
    assert "ingest failed decoding this record (KeyError" in dead[0]["reason"]
    assert "ingest failed encoding this record" in dead[1]["reason"]


def test_ratings_are_stored_with_their_score_and_scale_and_thumbs_keep_the_bulk_path():
    """kind "rating" was dead-lettered ("is not one of thumb, edit"); now a score on its scale, or a
    category, is a row. A batch of thumbs still takes the bulk path; one holding a rating does not."""
    thumbs = [feedback_event(i) for i in range(3)]
    stars = feedback_event(7, kind="rating", label=None, score=4, scale={"min": 1, "max": 5})
    category = feedback_event(8, kind="rating", label="hallucination")
    assert bulk_table("feedback", TOPIC, 0, _records(thumbs), 1 << 20, NOW_MS) is not None
    assert bulk_table("feedback", TOPIC, 0, _records([*thumbs, stars]), 1 << 20, NOW_MS) is None
    batch = PartitionBatch(TOPIC, 0, "feedback", {}, 10_000, 1 << 30, 60.0, 1 << 20)
    batch.add(_records([*thumbs, stars, category]), 0)
    table, letters = batch.decode(NOW_MS)
    assert not letters and table is not None
    rows = {r["event_id"]: r for r in table.to_pylist()}
    assert (
        rows["fb-7"]["kind"],
        rows["fb-7"]["score"],
        rows["fb-7"]["scale_min"],
        rows["fb-7"]["scale_max"],
    ) == (
        "rating",
        4.0,
        1.0,
        5.0,
    )
    assert (rows["fb-8"]["label"], rows["fb-8"]["score"]) == ("hallucination", None)
    assert rows["fb-0"]["score"] is None and rows["fb-0"]["kind"] == "thumb"
    with pytest.raises(InvalidRecord, match=r"score: 6 is outside its scale 1\.\.5"):
        decode("feedback", feedback_event(9, kind="rating", label=None, score=6, scale={"min": 1, "max": 5}))
