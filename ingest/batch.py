"""One partition's batch: records decoded as they arrive, flushed by count, bytes, age or plan.

A batch's name comes from its first and last offsets, so batches must be cut
at the same places when records are replayed after a crash. `plan` holds the
batches already on disk for this partition (first -> last offset); a batch
that starts where one of them starts ends exactly where it ended, whatever
the count, byte and age limits say. That makes a replay rewrite the same
files instead of adding overlapping copies.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ingest.schema import DECODERS, InvalidRecord, parse_json
from ingest.writer import DeadLetter, kafka_day

_US_PER_DAY = 86_400_000_000


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
        self._decode = DECODERS[stream]
        self.reset()

    def reset(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.target: int | None = None  # planned last offset when replaying a batch already on disk
        self.offsets: list[int] = []
        self.timestamps: list[int | None] = []
        self.rows: list[tuple[Any, ...]] = []
        self.letters: list[DeadLetter] = []
        self.nbytes = 0
        self.started = 0.0

    def __len__(self) -> int:
        return len(self.rows) + len(self.letters)

    def full(self) -> bool:
        if self.target is not None:
            return self.last is not None and self.last >= self.target
        return len(self) >= self.max_records or self.nbytes >= self.max_bytes

    def due(self, now: float) -> bool:
        """Full, or old enough to flush (a replayed batch waits for its planned end instead)."""
        if self.first is None:
            return False
        return self.full() or (self.target is None and now - self.started >= self.max_age_s)

    def add(self, records: Sequence[Any], start: int) -> int:
        """Decode ``records[start:]`` into the batch until it is full; returns the index of the next record."""
        decode = self._decode
        max_record_bytes = self.max_record_bytes
        rows_append = self.rows.append
        offsets_append = self.offsets.append
        ts_append = self.timestamps.append
        i = start
        n = len(records)
        while i < n:
            rec = records[i]
            offset = rec.offset
            if self.first is None:
                self.first = offset
                self.target = self.plan.get(offset)
                self.started = time.monotonic()
            elif self.target is not None and offset > self.target:
                return i  # the replayed batch ended before this record (offsets may have gaps)
            value = rec.value
            size = len(value) if value is not None else 0
            self.nbytes += size
            self.last = offset
            i += 1
            try:
                row = decode(parse_json(value, max_record_bytes))
            except InvalidRecord as exc:
                self.letters.append(self._letter(rec, exc))
            else:
                rows_append(row)
                offsets_append(offset)
                ts_append(rec.timestamp)
            if self.target is not None:
                if offset >= self.target:
                    return i
            elif len(self.rows) + len(self.letters) >= self.max_records or self.nbytes >= self.max_bytes:
                return i
        return i

    def _letter(self, rec: Any, exc: InvalidRecord) -> DeadLetter:
        if exc.event_time is not None:
            day = exc.event_time // _US_PER_DAY
        else:
            day = kafka_day(rec.timestamp, int(time.time() * 1000))
        return DeadLetter(rec.offset, rec.timestamp, rec.key, rec.value, exc.reason, exc.field, day)
