"""A batch's records as a few flat buffers: the form the decoder reads and a writer process is handed.

kafka-python hands over one Python object per record. The decoder needs the values joined into
newline-delimited JSON (Arrow's reader takes one buffer) and the offsets and timestamps as arrays,
so a batch is turned into a `Block` once, with loops that run in C (``map`` over attribute getters,
``bytes.join``, ``numpy.fromiter``): about 3 ms for 10,000 records of 400 bytes, against about
30 ms for building the same data as Arrow arrays from Python lists, most of it Arrow's allocator
faulting in fresh pages. That time holds the GIL, which the consumer thread needs for
kafka-python's own record decoding, the thing that bounds the consume rate.

A writer process (ingest/child.py) is handed the six buffers as they are (``to_wire`` /
``from_wire``), and the per-record path (ingest/schema.py) and the dead-letter lake get records back
with `Block.records`, which only a batch that is not plain valid JSON pays for.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

# A record without a timestamp (only a legacy v0 message has none): null in the lake.
NO_TIMESTAMP = np.iinfo(np.int64).min
_VALUE = operator.attrgetter("value")
_KEY = operator.attrgetter("key")
_OFFSET = operator.attrgetter("offset")
_TIMESTAMP = operator.attrgetter("timestamp")


class Record(NamedTuple):
    """A Kafka record as the per-record path and the dead-letter lake read it."""

    value: bytes | None
    offset: int
    timestamp: int | None
    key: bytes | None


def _join(parts: list[bytes | None], separator: bytes) -> tuple[bytes, np.ndarray]:
    """The parts joined by ``separator`` (a null part as nothing), and their lengths (-1: null)."""
    n = len(parts)
    if None in parts:
        lengths = np.fromiter((-1 if p is None else len(p) for p in parts), np.int64, n)
        return separator.join(p or b"" for p in parts), lengths
    present: list[bytes] = parts  # type: ignore[assignment]
    return separator.join(present), np.fromiter(map(len, present), np.int64, n)


def _starts(lengths: np.ndarray, separator: int) -> np.ndarray:
    """Where each part starts in the joined buffer, and (last entry) where the buffer would go on."""
    starts = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(np.maximum(lengths, 0) + separator, out=starts[1:])
    return starts


class Block:
    """The values (joined by newlines), keys (concatenated), offsets and timestamps of a batch."""

    __slots__ = ("key_lengths", "keys", "offsets", "timestamps", "value_lengths", "values")

    def __init__(
        self,
        values: bytes,
        value_lengths: np.ndarray,
        offsets: np.ndarray,
        timestamps: np.ndarray,
        keys: bytes,
        key_lengths: np.ndarray,
    ) -> None:
        n = len(offsets)
        if not (len(value_lengths) == len(timestamps) == len(key_lengths) == n):
            raise ValueError(
                f"a block's arrays disagree on its record count: {len(value_lengths)} values, "
                f"{n} offsets, {len(timestamps)} timestamps, {len(key_lengths)} keys"
            )
        self.values = values
        self.value_lengths = value_lengths
        self.offsets = offsets
        self.timestamps = timestamps
        self.keys = keys
        self.key_lengths = key_lengths
        expected = int(np.maximum(value_lengths, 0).sum()) + max(n - 1, 0)
        if len(values) != expected or len(keys) != int(np.maximum(key_lengths, 0).sum()):
            raise ValueError("a block's buffers do not hold the lengths it lists")

    @classmethod
    def from_records(cls, records: Sequence[Any]) -> Block:
        """From anything with ``value``, ``key``, ``offset`` and ``timestamp`` (kafka-python's records)."""
        n = len(records)
        values, value_lengths = _join(list(map(_VALUE, records)), b"\n")
        keys, key_lengths = _join(list(map(_KEY, records)), b"")
        offsets = np.fromiter(map(_OFFSET, records), np.int64, n)
        stamps = list(map(_TIMESTAMP, records))
        if None in stamps:
            stamps = [NO_TIMESTAMP if t is None else t for t in stamps]
        timestamps = np.fromiter(stamps, np.int64, n)
        return cls(values, value_lengths, offsets, timestamps, keys, key_lengths)

    def __len__(self) -> int:
        return len(self.offsets)

    def timestamp_mask(self) -> np.ndarray | None:
        """True where a record has no timestamp; None when every record has one."""
        missing = self.timestamps == NO_TIMESTAMP
        return missing if missing.any() else None

    def value_starts(self) -> np.ndarray:
        """Where each value starts in ``values`` (a null one as if empty), and after them one entry
        past the end: value i is ``values[starts[i] : starts[i] + value_lengths[i]]``."""
        return _starts(self.value_lengths, 1)

    def slice(self, start: int, stop: int) -> Block:
        """Records ``start`` to ``stop`` (exclusive) as a block of their own."""
        stop = min(stop, len(self))
        starts = _starts(self.value_lengths, 1)
        key_starts = _starts(self.key_lengths, 0)
        end = int(starts[stop]) - 1 if stop > start else int(starts[start])
        return Block(
            self.values[int(starts[start]) : max(end, int(starts[start]))],
            self.value_lengths[start:stop],
            self.offsets[start:stop],
            self.timestamps[start:stop],
            self.keys[int(key_starts[start]) : int(key_starts[stop])],
            self.key_lengths[start:stop],
        )

    def select(self, keep: np.ndarray) -> Block:
        """The records where ``keep`` (booleans, one a record) is true, in order, as a block."""
        return Block.from_records([r for r, k in zip(self.records(), keep.tolist(), strict=True) if k])

    def records(self) -> list[Record]:
        """One Record per record, in order (the per-record path and dead letters)."""
        starts = _starts(self.value_lengths, 1).tolist()
        key_starts = _starts(self.key_lengths, 0).tolist()
        out = []
        for i, (length, key_length, offset, stamp) in enumerate(
            zip(
                self.value_lengths.tolist(),
                self.key_lengths.tolist(),
                self.offsets.tolist(),
                self.timestamps.tolist(),
                strict=True,
            )
        ):
            value = None if length < 0 else self.values[starts[i] : starts[i] + length]
            key = None if key_length < 0 else self.keys[key_starts[i] : key_starts[i] + key_length]
            out.append(Record(value, offset, None if stamp == NO_TIMESTAMP else stamp, key))
        return out

    def to_wire(self) -> list[Any]:
        """The six buffers, for ``Connection.send_bytes`` one by one (no copy into a pickle)."""
        return [self.values, self.value_lengths, self.offsets, self.timestamps, self.keys, self.key_lengths]

    @classmethod
    def from_wire(cls, parts: Sequence[bytes]) -> Block:
        """`to_wire`'s buffers back (as received: bytes); checks that they fit together."""
        if len(parts) != 6:
            raise ValueError(f"a block is six buffers, {len(parts)} were received")
        values, value_lengths, offsets, timestamps, keys, key_lengths = parts
        arrays = [np.frombuffer(p, np.int64) for p in (value_lengths, offsets, timestamps, key_lengths)]
        return cls(bytes(values), arrays[0], arrays[1], arrays[2], bytes(keys), arrays[3])
