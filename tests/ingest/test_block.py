"""A Block holds a batch's records exactly: in order, nulls kept, through a slice and through a pipe."""

from __future__ import annotations

import gc
import multiprocessing

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from ingest.block import Block, Record
from ingest.child import receive_block, send_block
from ingest.fastpath import bulk_table
from ingest.service import fewer_collections

NOW_MS = 1_700_000_000_000

# Values and keys with what a join could lose: empty ones, nulls, newlines, bytes that are not UTF-8.
_payload = st.one_of(st.none(), st.binary(max_size=40), st.sampled_from([b"", b"\n", b"a\nb", b"\xff\xfe"]))
_records = st.lists(
    st.tuples(_payload, _payload, st.one_of(st.none(), st.integers(-1, 2**62))),
    max_size=30,
).map(
    lambda rows: [
        ConsumerRecord("t", 0, -1, 100 + 2 * i, stamp, 0, key, value, [], None, -1, -1, -1)
        for i, (value, key, stamp) in enumerate(rows)
    ]
)


def _expected(records: list[ConsumerRecord]) -> list[Record]:
    return [Record(r.value, r.offset, r.timestamp, r.key) for r in records]


@settings(max_examples=200, deadline=None)
@given(_records)
def test_a_block_gives_back_every_record_as_it_was(records):
    assert Block.from_records(records).records() == _expected(records)


@settings(max_examples=200, deadline=None)
@given(_records, st.data())
def test_a_slice_holds_exactly_the_records_it_names(records, data):
    start = data.draw(st.integers(0, len(records)))
    stop = data.draw(st.integers(start, len(records)))
    part = Block.from_records(records).slice(start, stop)
    assert len(part) == stop - start
    assert part.records() == _expected(records)[start:stop]


@settings(max_examples=100, deadline=None)
@given(_records, st.data())
def test_a_selection_holds_exactly_the_records_chosen_in_order(records, data):
    keep = data.draw(st.lists(st.booleans(), min_size=len(records), max_size=len(records)))
    part = Block.from_records(records).select(np.array(keep, bool))
    assert part.records() == [r for r, k in zip(_expected(records), keep, strict=True) if k]


def _echo(conn) -> None:
    send_block(conn, receive_block(conn))


def test_a_block_crosses_a_process_boundary_whole():
    values = [b'{"a":1}', None, b"", b"x\ny", "é".encode()] * 200
    records = [
        ConsumerRecord(
            "t",
            3,
            -1,
            7 + i,
            None if i % 7 == 0 else NOW_MS + i,
            0,
            None if i % 3 else b"k%d" % i,
            v,
            [],
            None,
            -1,
            -1,
            -1,
        )
        for i, v in enumerate(values)
    ]
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_echo, args=(child,))
    process.start()
    try:
        send_block(parent, Block.from_records(records))
        assert receive_block(parent).records() == _expected(records)
    finally:
        process.join(30)
    assert process.exitcode == 0


def test_buffers_that_do_not_fit_together_are_refused_with_the_reason():
    good = Block.from_records(
        [ConsumerRecord("t", 0, -1, 1, NOW_MS, 0, b"k", b"{}", [], None, -1, -1, -1)]
    ).to_wire()
    with pytest.raises(ValueError, match="six buffers"):
        Block.from_wire([bytes(p) for p in good[:5]])
    with pytest.raises(ValueError, match="do not hold the lengths"):
        Block.from_wire([b"{}{}", *[bytes(p) for p in good[1:]]])
    with pytest.raises(ValueError, match="record count"):
        Block.from_wire([good[0], bytes(good[1]) * 2, *[bytes(p) for p in good[2:]]])


def test_the_bulk_path_reads_a_block_as_it_reads_the_records():
    values = [
        b'{"event_id":"e%d","trace_id":"t%d","event_time":"2025-05-01T10:00:00Z","label":"up"}' % (i, i)
        for i in range(50)
    ]
    records = [
        ConsumerRecord("t", 0, -1, 10 + i, None if i == 3 else NOW_MS + i, 0, None, v, [], None, -1, -1, -1)
        for i, v in enumerate(values)
    ]
    from_records = bulk_table("feedback", "t", 0, records, 1 << 20, NOW_MS)
    from_block = bulk_table("feedback", "t", 0, Block.from_records(records), 1 << 20, NOW_MS)
    assert from_records is not None and from_block is not None
    assert from_block.equals(from_records)
    assert from_block.column("_kafka_timestamp").null_count == 1  # the record without a timestamp


def test_ingest_collects_young_garbage_less_often_and_puts_the_setting_back():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] >= 50_000
        assert gc.get_threshold()[1:] == before[1:]
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the loop failed")
    assert gc.get_threshold() == before
