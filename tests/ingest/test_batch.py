"""Batch cuts: limits, and replays that follow the files already on disk exactly."""

from __future__ import annotations

import json

from ingest.batch import PartitionBatch
from tests.ingest.test_fastpath import _records
from tests.ingest.test_schema import GOOD_TRACE


def _cuts(batch: PartitionBatch, values: list[bytes], chunk: int) -> list[tuple[int, int]]:
    """Feed records in polls of ``chunk`` and return the (first, last) of every batch flushed."""
    records = _records(values)
    cuts = []
    for start in range(0, len(records), chunk):
        polled = records[start : start + chunk]
        i = 0
        while i < len(polled):
            i = batch.add(polled, i)
            if i < len(polled) or batch.full():
                cuts.append((batch.first, batch.last))
                batch.reset()
    if len(batch):
        cuts.append((batch.first, batch.last))
    return cuts


def _values(n: int, size: int = 0) -> list[bytes]:
    return [json.dumps(dict(GOOD_TRACE, trace_id=f"t{i}", completion="x" * size)).encode() for i in range(n)]


def test_count_and_byte_limits_cut_batches():
    batch = PartitionBatch("t", 0, "traces", {}, 40, 1 << 30, 60.0, 1 << 20)
    assert _cuts(batch, _values(100), chunk=7) == [(100, 139), (140, 179), (180, 199)]
    one = len(_values(1, 1000)[0])
    batch = PartitionBatch("t", 0, "traces", {}, 10_000, 3 * one, 60.0, 1 << 20)
    assert _cuts(batch, _values(7, 1000), chunk=5) == [(100, 102), (103, 105), (106, 106)]


def test_a_replay_rewrites_the_batches_on_disk_and_cuts_around_them():
    # On disk: 150-169 and 220-229 (a later batch written before an earlier one by parallel writers).
    plan = {150: 169, 220: 229}
    batch = PartitionBatch("t", 0, "traces", plan, 1000, 1 << 30, 60.0, 1 << 20)
    cuts = _cuts(batch, _values(200), chunk=33)
    assert cuts == [(100, 149), (150, 169), (170, 219), (220, 229), (230, 299)]
