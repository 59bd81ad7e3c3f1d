"""The Arrow bulk path accepts only what the per-record validator accepts, and writes the same rows."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from ingest.batch import PartitionBatch
from ingest.block import Block
from ingest.fastpath import bulk_table
from ingest.schema import decode
from ingest.writer import good_table
from tests.ingest.test_schema import BAD, GOOD_FEEDBACK, GOOD_TRACE, feedback, traces

NOW_MS = 1_700_000_000_000


def _records(values: list[bytes | None]) -> list[ConsumerRecord]:
    return [
        ConsumerRecord("t", 0, -1, 100 + i, NOW_MS + i, 0, None, v, [], None, -1, len(v or b""), -1)
        for i, v in enumerate(values)
    ]


def _slow(stream: str, records: list[ConsumerRecord]):
    rows = [decode(stream, r.value) for r in records]
    return good_table(
        stream, "t", 0, [r.offset for r in records], [r.timestamp for r in records], rows, NOW_MS
    )


def _wire(event: dict, ascii_only: bool) -> bytes:
    return json.dumps(
        dict(event, event_time=event["event_time"].isoformat()), ensure_ascii=ascii_only
    ).encode()


def _check_same(stream: str, events: list[dict], ascii_only: bool) -> None:
    records = _records([_wire(e, ascii_only) for e in events])
    fast = bulk_table(stream, "t", 0, records, 1 << 20, NOW_MS)
    if fast is not None:
        assert fast.equals(_slow(stream, records)), (fast.to_pylist(), _slow(stream, records).to_pylist())


@settings(max_examples=100, deadline=None)
@given(st.lists(traces, min_size=1, max_size=6), st.booleans())
def test_bulk_traces_equal_per_record_traces(batch, ascii_only):
    _check_same("traces", [{**p[2], **p[1], **p[0]} for p in batch], ascii_only)


@settings(max_examples=100, deadline=None)
@given(st.lists(feedback, min_size=1, max_size=6), st.booleans())
def test_bulk_feedback_equals_per_record_feedback(batch, ascii_only):
    _check_same("feedback", [{**p[3], **p[2], **p[1], **p[0]} for p in batch], ascii_only)


def test_plain_batches_take_the_bulk_path():
    traces = [
        dict(GOOD_TRACE, trace_id=f"t{i}", tags={"locale": "en", "b": "x\u00e9"}, user_id="u")
        for i in range(50)
    ]
    records = _records([json.dumps(t).encode() for t in traces])
    fast = bulk_table("traces", "t", 0, records, 1 << 20, NOW_MS)
    assert fast is not None and fast.equals(_slow("traces", records))
    # Tag values JSON escapes (quotes, backslashes, newlines) are escaped as json.dumps escapes them.
    escaped = [
        dict(t, tags={"q": 'say "hi"\\', "n": "a\nb"} if i % 2 else {"q": "x"}) for i, t in enumerate(traces)
    ]
    records = _records([json.dumps(t).encode() for t in escaped])
    fast = bulk_table("traces", "t", 0, records, 1 << 20, NOW_MS)
    assert fast is not None and fast.equals(_slow("traces", records))
    edits = [dict(GOOD_FEEDBACK, event_id=f"e{i}", kind="edit", edited_completion="ok") for i in range(5)]
    thumbs = [dict(GOOD_FEEDBACK, event_id=f"f{i}") for i in range(5)]
    for i in range(5):
        edits[i].pop("label")
    records = _records([json.dumps(e).encode() for e in edits + thumbs])
    fast = bulk_table("feedback", "t", 0, records, 1 << 20, NOW_MS)
    assert fast is not None and fast.equals(_slow("feedback", records))


def test_chat_prompts_take_the_bulk_path_and_are_stored_as_the_contract_stores_them():
    chat = [
        {"role": "system", "content": 'Answer in "plain" words.\nNo markdown, \\ no tables.'},
        {"content": "wie spät ist es? \u00e9\u4e2d", "role": "user", "name": "ana"},
    ]
    traces = [dict(GOOD_TRACE, trace_id=f"t{i}", prompt=chat[: 1 + i % 2]) for i in range(40)]
    records = _records([json.dumps(t, ensure_ascii=i % 2 == 0).encode() for i, t in enumerate(traces)])
    fast = bulk_table("traces", "t", 0, records, 1 << 20, NOW_MS)
    assert fast is not None and fast.equals(_slow("traces", records))
    assert set(fast.column("prompt_format").to_pylist()) == {"messages"}
    assert json.loads(fast.column("prompt")[1].as_py()) == chat  # the key order of each message kept
    # Feedback may carry the prompt or not: a null prompt stays null beside chat prompts.
    votes = [dict(GOOD_FEEDBACK, event_id=f"e{i}") for i in range(6)]
    for i in (0, 2, 4):
        votes[i]["prompt"] = chat
    records = _records([json.dumps(v).encode() for v in votes])
    fast = bulk_table("feedback", "t", 0, records, 1 << 20, NOW_MS)
    assert fast is not None and fast.equals(_slow("feedback", records))
    assert fast.column("prompt_format").to_pylist() == ["messages", None] * 3
    # A tag named "prompt" written before the prompt: the prompt is still the prompt's.
    tagged = [
        {"tags": {"prompt": "[x]"}, **dict(GOOD_TRACE, trace_id=f"g{i}", prompt=chat)} for i in range(4)
    ]
    records = _records([json.dumps(t, ensure_ascii=False, separators=(",", ":")).encode() for t in tagged])
    fast = bulk_table("traces", "t", 0, records, 1 << 20, NOW_MS)
    assert fast is not None and fast.equals(_slow("traces", records))
    # A message without string content is the per-record path's to name.
    bad = dict(GOOD_TRACE, prompt=[{"role": "user", "content": 3}])
    records = _records([json.dumps(t).encode() for t in traces[:5]] + [json.dumps(bad).encode()])
    assert bulk_table("traces", "t", 0, records, 1 << 20, NOW_MS) is None


def test_chat_prompts_written_as_json_dumps_writes_them_are_not_parsed_again(monkeypatch):
    import ingest.fastpath

    chat = [
        {"role": "system", "content": 'Say "hi".\n\tThen \\stop\b\f\r. \u00e9\u4e2d\U0001f600 \u2028'},
        {"role": "user", "content": ""},
    ]
    traces = [dict(GOOD_TRACE, trace_id=f"t{i}", prompt=chat[: 1 + i % 2]) for i in range(20)]
    records = _records([json.dumps(t, ensure_ascii=False, separators=(",", ":")).encode() for t in traces])
    expected = _slow("traces", records)

    def refuse(*args):
        raise AssertionError("a prompt written as json.dumps writes it was parsed again")

    # json.dumps with its default separators, as most Python producers call it (ASCII content).
    plain = [
        dict(GOOD_TRACE, trace_id=f"p{i}", prompt=[{"role": "user", "content": 'a "b"\n'}]) for i in range(5)
    ]
    spaced = _records([json.dumps(t).encode() for t in plain])
    expected_spaced = _slow("traces", spaced)
    monkeypatch.setattr(ingest.fastpath, "prompt_columns", refuse)
    fast = bulk_table("traces", "t", 0, records, 1 << 20, NOW_MS)
    assert fast is not None and fast.equals(expected)
    fast = bulk_table("traces", "t", 0, spaced, 1 << 20, NOW_MS)
    assert fast is not None and fast.equals(expected_spaced)
    # A prompt with a control character json.dumps writes as \u0001 is written by json.dumps itself.
    odd = dict(GOOD_TRACE, prompt=[{"role": "user", "content": "a\u0001b"}])
    records = _records([json.dumps(odd, separators=(",", ":")).encode()])
    with pytest.raises(AssertionError, match="parsed again"):
        bulk_table("traces", "t", 0, records, 1 << 20, NOW_MS)


def test_only_the_prompts_not_found_as_written_are_parsed_again(monkeypatch):
    import ingest.fastpath

    chat = [{"role": "user", "content": "how long is a week in ms?"}]
    traces = [dict(GOOD_TRACE, trace_id=f"t{i}", prompt=chat) for i in range(6)]
    values = [json.dumps(t, separators=(",", ":")).encode() for t in traces]
    # The key written with an escape (the same key to a JSON reader), and a prompt spaced another way.
    values[2] = values[2].replace(b'"prompt":', b'"\\u0070rompt":')
    values[4] = values[4].replace(b'"prompt":[{', b'"prompt":  [ {')
    records = _records(values)
    expected = _slow("traces", records)
    parsed = []
    real = ingest.fastpath.prompt_columns

    def counting(prompt, *args):
        parsed.append(prompt)
        return real(prompt, *args)

    monkeypatch.setattr(ingest.fastpath, "prompt_columns", counting)
    fast = bulk_table("traces", "t", 0, records, 1 << 20, NOW_MS)
    assert fast is not None and fast.equals(expected)
    assert parsed == [chat, chat]  # records 2 and 4; the other four were found as written
    assert fast.column("prompt").to_pylist() == [json.dumps(chat, separators=(",", ":"))] * 6


@pytest.mark.parametrize(("stream", "value", "field", "fragment"), BAD)
def test_one_bad_record_sends_the_batch_to_the_per_record_path(stream, value, field, fragment):
    good = json.dumps(GOOD_TRACE if stream == "traces" else GOOD_FEEDBACK).encode()
    assert bulk_table(stream, "t", 0, _records([good, value, good]), 1 << 20, NOW_MS) is None


def test_a_mixed_batch_keeps_its_good_records_and_dead_letters_the_bad():
    good = [json.dumps(dict(GOOD_TRACE, trace_id=f"t{i}")).encode() for i in range(1000)]
    values = [*good[:500], b"{oops", *good[500:]]
    batch = PartitionBatch("t", 0, "traces", {}, 10_000, 1 << 30, 60.0, 1 << 20)
    assert batch.add(_records(values), 0) == 1001
    table, letters = batch.decode(NOW_MS)
    assert table.column("trace_id").to_pylist() == [f"t{i}" for i in range(1000)]
    assert [d.offset for d in letters] == [600]
    assert "not valid JSON" in letters[0].reason


@pytest.mark.parametrize("stream", ["traces", "feedback"])
def test_a_batch_mixing_chat_and_text_prompts_is_decoded_in_bulk_in_offset_order(stream, monkeypatch):
    chat = [{"role": "user", "content": 'a "quoted"\nquestion'}]
    base = GOOD_TRACE if stream == "traces" else GOOD_FEEDBACK
    key = "trace_id" if stream == "traces" else "event_id"
    events = [dict(base, **{key: f"x{i}"}, prompt=chat if i % 3 else f"text {i}") for i in range(300)]
    if stream == "feedback":
        events[4].pop("prompt")  # a vote without its prompt beside both forms
    records = _records([json.dumps(e).encode() for e in events])
    expected = _slow(stream, records)
    batch = PartitionBatch("t", 0, stream, {}, 10_000, 1 << 30, 60.0, 1 << 20)
    batch.add(records, 0)

    def refuse(*args):
        raise AssertionError("a mixed batch went to the per-record path")

    monkeypatch.setattr(batch, "_slow", refuse)
    table, letters = batch.decode(NOW_MS)
    assert letters == [] and table.equals(expected)
    assert table.column(key).to_pylist() == [f"x{i}" for i in range(300)]


def test_the_writers_warm_up_events_are_valid_and_take_the_bulk_path(tmp_path):
    from flywheel.config import defaults
    from ingest.flusher import _WARM_UP_EVENTS, Flusher

    for stream, event in _WARM_UP_EVENTS.items():
        decode(stream, json.dumps(event).encode())  # the per-record validator raises on an invalid event
    flusher = Flusher(tmp_path, defaults().ingest)
    try:
        assert flusher.warm_up() == {"traces": 1, "feedback": 1}
    finally:
        flusher.close()
    assert list(tmp_path.iterdir()) == []  # encoded in memory: nothing reaches the lake


def test_the_nesting_guard_counts_brackets_per_record_not_per_batch():
    from ingest.fastpath import _MAX_OPENERS, _shallow

    def check(values: list[bytes]) -> bool:
        block = Block.from_records(_records(values))
        return _shallow(block.values, block.value_lengths)

    under = b'{"d":' + b"[" * (_MAX_OPENERS - 1) + b"]" * (_MAX_OPENERS - 1) + b"}"
    over = b'{"d":' + b"[" * _MAX_OPENERS + b"]" * _MAX_OPENERS + b"}"
    assert check([under] * 50)  # 12,800 brackets in the batch, none too many in a record
    assert not check([under] * 20 + [over] + [under] * 20)
    assert not check([over])
    assert check([b"{}"] * 10)
