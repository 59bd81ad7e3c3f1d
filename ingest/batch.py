"""One partition's batch: records held as they arrive, decoded and validated when it is flushed.

A batch's name comes from its first and last offsets, so a replay after a
crash must cut batches where the files on disk were cut. `plan` holds the
batches already on disk for this partition (first -> last offset); a batch
that starts where one of them starts ends exactly where it ended, whatever
the count, byte and age limits say. That makes a replay rewrite the same
files instead of adding overlapping copies.

Decoding happens at flush time so the whole batch can go through Arrow in one
call (ingest/fastpath.py); batches with anything unusual in them take the
per-record path (ingest/schema.py), which names every problem.

No record may stop its partition: a record that fails in a way the validator
did not foresee (its decoding raises something other than InvalidRecord, or
its row cannot be encoded in the lake's schema) is dead-lettered with what
went wrong, and logged, instead of failing the batch. A failed batch is never
committed, so it would fail again on every restart.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import operator
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.block import Block
from ingest.fastpath import bulk_table
from ingest.schema import DECODERS, InvalidRecord, parse_json
from ingest.writer import DeadLetter, good_table, kafka_day

_US_PER_DAY = 86_400_000_000
# When a whole batch cannot be bulk-decoded, retry it in this many slices so one bad
# record does not send every good record of the batch down the slow path.
_SLICES = 16
_VALUE = operator.attrgetter("value")
_MIN_SLICE = 256
# The opening of a prompt given as messages, however the producer spaced it. Outside a JSON string
# it can only open that (inside one, its quotes would be escaped).
_CHAT = re.compile(rb'"prompt"\s*:\s*\[')

log = logging.getLogger(__name__)


class PartitionBatch:
    def __init__(
        self,
        topic: str,
        partition: int,
        stream: str,
        plan: dict[int, int],
        max_records: int,
        max_bytes: int,
        max_age_s: float,
        max_record_bytes: int,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.stream = stream
        self.plan = plan
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.max_record_bytes = max_record_bytes
        self.reset()

    def reset(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.target: int | None = None  # planned last offset when replaying a batch already on disk
        self.before: int | None = (
            None  # start of the next batch on disk: an unplanned batch stops short of it
        )
        self.records: list[Any] = []
        self.block: Block | None = None  # the records as a Block, when handed over as one (ingest/child.py)
        self.nbytes = 0
        self.started = 0.0

    def __len__(self) -> int:
        return len(self.records)

    def full(self) -> bool:
        if self.target is not None:
            return self.last is not None and self.last >= self.target
        return len(self.records) >= self.max_records or self.nbytes >= self.max_bytes

    def due(self, now: float) -> bool:
        """Full, or old enough to flush (a replayed batch waits for its planned end instead)."""
        if self.first is None:
            return False
        return self.full() or (self.target is None and now - self.started >= self.max_age_s)

    def add(self, records: Sequence[Any], start: int) -> int:
        """Take ``records[start:]`` until the batch is full; returns the index of the next record."""
        if start >= len(records):
            return start
        if self.first is None:
            self.first = records[start].offset
            self.target = self.plan.get(self.first)
            if self.target is None and self.plan:
                # Batches are written by parallel writers, so after a crash a later batch may be on
                # disk while an earlier one is not; the rewrite of the earlier one must not overlap it.
                self.before = min((f for f in self.plan if f > self.first), default=None)
            self.started = time.monotonic()
        if self.target is not None:
            # Replaying a batch on disk: stop after its last offset (offsets may have gaps).
            stop = start
            while stop < len(records) and records[stop].offset <= self.target:
                stop += 1
        else:
            stop = min(len(records), start + self.max_records - len(self.records))
            if self.before is not None:
                cut = start
                while cut < stop and records[cut].offset < self.before:
                    cut += 1
                stop = cut
        chunk = records[start:stop]
        # Runs on the consumer thread for every record: iterate in C (map/filter), and look at
        # sizes one by one only in the poll that crosses the byte limit.
        nbytes = sum(map(len, filter(None, map(_VALUE, chunk))))
        if self.target is None and self.nbytes + nbytes >= self.max_bytes:
            # Stop at the record that reaches the byte limit.
            sizes = [len(r.value) if r.value is not None else 0 for r in chunk]
            running = list(itertools.accumulate(sizes, initial=self.nbytes))[1:]
            cut = bisect.bisect_left(running, self.max_bytes)
            if cut < len(sizes):
                stop, chunk = start + cut + 1, chunk[: cut + 1]
                nbytes = running[cut] - self.nbytes
        if stop > start:
            self.records.extend(chunk)
            self.nbytes += nbytes
            self.last = records[stop - 1].offset
        return stop

    def decode(self, ingested_at_ms: int) -> tuple[pa.Table | None, list[DeadLetter]]:
        """The batch's valid rows as one table, and its dead letters."""
        block = self.block if self.block is not None else Block.from_records(self.records)
        whole = bulk_table(
            self.stream, self.topic, self.partition, block, self.max_record_bytes, ingested_at_ms
        )
        if whole is not None:
            return whole, []
        mixed = self._by_prompt_form(block, ingested_at_ms)
        if mixed is not None:
            return mixed, []
        size = max(_MIN_SLICE, -(-len(block) // _SLICES))
        tables: list[pa.Table] = []
        letters: list[DeadLetter] = []
        for i in range(0, len(block), size):
            part = block.slice(i, i + size) if len(block) > size else block
            table = None
            if len(block) > size:
                table = bulk_table(
                    self.stream, self.topic, self.partition, part, self.max_record_bytes, ingested_at_ms
                )
            if table is None:
                table = self._slow(part.records(), letters, ingested_at_ms)
            if table.num_rows:
                tables.append(table)
        return (pa.concat_tables(tables) if tables else None), letters

    def _by_prompt_form(self, block: Block, ingested_at_ms: int) -> pa.Table | None:
        """A batch mixing chat and one-string prompts, which Arrow refuses in one column: its chat
        records and its others decoded in bulk apart, their rows put back in offset order; None if
        the batch does not mix the two, or either part needs the per-record path."""
        chat = np.fromiter((_CHAT.search(v) is not None for v in block.values.split(b"\n")), bool, len(block))
        if chat.all() or not chat.any():
            return None
        tables = []
        for part in (block.select(chat), block.select(~chat)):
            table = bulk_table(
                self.stream, self.topic, self.partition, part, self.max_record_bytes, ingested_at_ms
            )
            if table is None:
                return None
            tables.append(table)
        both = pa.concat_tables(tables)
        return both.take(pc.sort_indices(both.column("_offset")))

    def _slow(self, records: Sequence[Any], letters: list[DeadLetter], ingested_at_ms: int) -> pa.Table:
        decode, limit = DECODERS[self.stream], self.max_record_bytes
        rows, kept = [], []
        for rec in records:
            try:
                row = decode(parse_json(rec.value, limit))
            except InvalidRecord as exc:
                letters.append(self._letter(rec, exc))
            except Exception as exc:  # a validator bug must not stop the partition
                letters.append(self._unforeseen(rec, "decoding", exc))
            else:
                rows.append(row)
                kept.append(rec)
        try:
            return self._table(kept, rows, ingested_at_ms)
        except Exception:  # find the rows the schema refuses, keep the others
            good: list[tuple[Any, Any]] = []
            for rec, row in zip(kept, rows, strict=True):
                try:
                    self._table([rec], [row], ingested_at_ms)
                except Exception as exc:
                    letters.append(self._unforeseen(rec, "encoding", exc))
                else:
                    good.append((rec, row))
            return self._table([r for r, _ in good], [row for _, row in good], ingested_at_ms)

    def _table(self, records: Sequence[Any], rows: list[tuple[Any, ...]], ingested_at_ms: int) -> pa.Table:
        offsets = [r.offset for r in records]
        timestamps = [r.timestamp for r in records]
        return good_table(self.stream, self.topic, self.partition, offsets, timestamps, rows, ingested_at_ms)

    def _unforeseen(self, rec: Any, step: str, exc: Exception) -> DeadLetter:
        where = f"{self.topic}[{self.partition}]@{rec.offset}"
        log.error("%s failed on %s; dead-lettered", step, where, exc_info=exc, extra={"where": where})
        problem = (
            f"ingest failed {step} this record ({type(exc).__name__}: {str(exc)[:200]}): a bug in "
            "ingest's validator, which should have named the problem; report it with this value"
        )
        return self._letter(rec, InvalidRecord([(None, problem)]))

    def _letter(self, rec: Any, exc: InvalidRecord) -> DeadLetter:
        if exc.event_time is not None:
            day = exc.event_time // _US_PER_DAY
        else:
            day = kafka_day(rec.timestamp, int(time.time() * 1000))
        return DeadLetter(rec.offset, rec.timestamp, rec.key, rec.value, exc.reason, exc.field, day)
