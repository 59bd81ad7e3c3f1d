"""The atomic, deterministic batch writer of the lake (its Arrow schemas are core.lake's).

One batch of one partition becomes at most one file per event date in
``raw/`` and one per date in ``dlq/``, all named after the batch's first and
last offsets. `write_batch` only returns once every file is renamed into place
and its folder fsynced (local lake) or every object's upload is acknowledged (object store:
an object appears whole or not at all, so it is written under its final name): the caller
may then, and only then, commit offsets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core import lake as lake_layout
from core.errors import TerminalError
from core.files import fsync_dir
from core.lake import COORDINATES, DLQ_SCHEMA, SCHEMAS, TS_MS, Lake, ObjectLake
from ingest.schema import COLUMNS

_US_PER_DAY = 86_400_000_000
_MS_PER_DAY = 86_400_000
# Columns that are (nearly) unique per event: a dictionary would only cost the writer CPU
# (hashing every value until the dictionary page overflows), which the consumer thread needs.
_UNIQUE = frozenset(
    (
        "_offset",
        "_kafka_timestamp",
        "event_time",
        "trace_id",
        "event_id",
        "session_id",
        "prompt",
        "completion",
        "edited_completion",
        "comment",
        "key",
        "value",
    )
)


@dataclasses.dataclass
class DeadLetter:
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    reason: str
    field: str | None
    day: int  # event date when readable, else the Kafka timestamp's date (days since epoch)


@dataclasses.dataclass
class BatchFiles:
    paths: list[Path] | list[str]  # local files, or object URLs
    rows: int
    dead_letters: int


def coordinates(
    topic: str, partition: int, offsets: Any, timestamps: Any, ingested_at_ms: int
) -> list[pa.Array]:
    n = len(offsets)
    return [
        pa.array([topic] * n, pa.string()) if n else pa.array([], pa.string()),
        pa.array(np.full(n, partition, dtype=np.int32)),
        pa.array(offsets, pa.int64()),
        timestamps.cast(TS_MS) if isinstance(timestamps, pa.Array) else pa.array(timestamps, TS_MS),
        pa.array(np.full(n, ingested_at_ms, dtype=np.int64)).cast(TS_MS),
    ]


def good_table(
    stream: str,
    topic: str,
    partition: int,
    offsets: list[int],
    timestamps: list[int | None],
    rows: list[tuple[Any, ...]],
    ingested_at_ms: int,
) -> pa.Table:
    """Rows in COLUMNS[stream] order plus their Kafka coordinates -> a table of the stream's schema."""
    schema = SCHEMAS[stream]
    names = COLUMNS[stream]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = coordinates(topic, partition, offsets, timestamps, ingested_at_ms)
    for field, values in zip(list(schema)[len(COORDINATES) :], columns, strict=True):
        arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def dead_letter_table(topic: str, partition: int, letters: list[DeadLetter], ingested_at_ms: int) -> pa.Table:
    arrays = coordinates(
        topic, partition, [d.offset for d in letters], [d.timestamp for d in letters], ingested_at_ms
    )
    arrays += [
        pa.array([d.key for d in letters], pa.binary()),
        pa.array([d.value for d in letters], pa.binary()),
        pa.array([d.reason for d in letters], pa.string()),
        pa.array([d.field for d in letters], pa.string()),
    ]
    return pa.Table.from_arrays(arrays, schema=DLQ_SCHEMA)


def _split_by_day(table: pa.Table, days: np.ndarray) -> list[tuple[int, pa.Table]]:
    unique = np.unique(days)
    if len(unique) == 1:
        return [(int(unique[0]), table)]
    return [(int(day), table.filter(pa.array(days == day))) for day in unique]


def write_parquet(table: pa.Table, sink: Any) -> None:
    """Encode ``table`` as a lake file into ``sink`` (an open file or an Arrow output stream)."""
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=[n for n in table.column_names if n not in _UNIQUE],
    )


def _write_atomic(table: pa.Table, folder: Path, name: str, created: set[Path]) -> tuple[Path, Path]:
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        created.add(folder.parent)
    tmp = lake_layout.temp_path(folder, name)
    with open(tmp, "wb") as out:
        write_parquet(table, out)
        out.flush()
        os.fsync(out.fileno())
    return tmp, folder / name


def _check_same_log(new: Path, old: Path, topic: str, partition: int) -> None:
    """Refuse to replace ``old`` unless ``new`` holds records of the same log.

    A file is named by the offsets of its batch, so replaying after a crash rewrites the same name
    with the same records. If the partition's offsets restarted (the topic was deleted and created
    again, or the broker lost its log), the same name would come with other records, and replacing
    the file would lose the old ones. The same log has the same Kafka timestamp at the same offset:
    every offset the two files share must agree, and they must share one. (Offsets only one of them
    has are allowed: a new version of the validator may judge a record differently.)"""
    columns = ["_offset", "_kafka_timestamp"]
    before, after = (pq.read_table(path, columns=columns).to_pydict() for path in (old, new))
    _same_log(before, after, str(old), topic, partition)


def _same_log(
    before: dict[str, list[Any]], after: dict[str, list[Any]], old: str, topic: str, partition: int
) -> None:
    """`_check_same_log` on the two files' ``_offset`` and ``_kafka_timestamp`` columns."""
    stamps = dict(zip(before["_offset"], before["_kafka_timestamp"], strict=True))
    shared = [(o, t) for o, t in zip(after["_offset"], after["_kafka_timestamp"], strict=True) if o in stamps]
    differ = [(o, t) for o, t in shared if stamps[o] != t]
    if shared and not differ:
        return
    detail = (
        f"offset {differ[0][0]} was written at {stamps[differ[0][0]]} and is now {differ[0][1]}"
        if differ
        else "the two hold no offset in common"
    )
    raise TerminalError(
        f"{old} holds other records of {topic}[{partition}] than the batch replayed under its name "
        f"({detail}): the partition's offsets restarted (topic recreated or broker log lost). "
        "Nothing was overwritten or committed",
        hint=f"move the lake's files of {topic} aside (or point paths.lake at a new folder, or consume "
        "a topic of another name), then restart ingest; the records are still in Kafka",
    )


def _write_objects(
    lake: ObjectLake, parts: list[tuple[str, pa.Table]], name: str, topic: str, partition: int
) -> list[str]:
    """Write each (folder, table) as the object ``<folder>/<name>``; returns their URLs.

    Every table is encoded in memory first, and every existing object of one of the names (a
    replay after a crash) is compared with `_same_log` before anything is written: a different
    log under the name stops the batch with nothing written. Each upload is one stream closed
    only when the table is whole in memory, and ``close`` returns once the store acknowledged it
    (a failed upload raises and leaves no object), so on return every object is durable."""
    columns = ["_offset", "_kafka_timestamp"]
    encoded = []
    for folder, table in parts:
        path = f"{folder}/{name}"
        try:  # one request (HEAD); get_file_info would also list the name as a folder when it is absent
            existing = lake.fs.open_input_file(path)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            with existing:
                before = pq.read_table(existing, columns=columns).to_pydict()
            _same_log(before, table.select(columns).to_pydict(), lake.uri(path), topic, partition)
        sink = pa.BufferOutputStream()
        write_parquet(table, sink)
        encoded.append((path, sink.getvalue()))
    for path, data in encoded:
        out = lake.fs.open_output_stream(path)
        try:
            out.write(data)
        except BaseException:
            # pyarrow's streams cannot abort an upload: finish it and remove the object, so no
            # partial object stays (nothing is committed; the replay writes the name again)
            with contextlib.suppress(Exception):
                out.close()
            with contextlib.suppress(Exception):
                lake.fs.delete_file(path)
            raise
        out.close()
    return [lake.uri(path) for path, _ in encoded]


def write_batch(
    lake: Lake,
    stream: str,
    topic: str,
    partition: int,
    first: int,
    last: int,
    table: pa.Table | None,
    letters: list[DeadLetter],
    ingested_at_ms: int,
) -> BatchFiles:
    """Write one batch durably: temp files, fsync, rename, fsync the folders.

    ``table`` holds the batch's valid rows (stream schema), ``letters`` its bad records.
    Steps, in this order, because the caller commits offsets right after we return:
      1. every table goes to a hidden temporary name in its final folder and is fsynced;
      2. each is renamed onto its deterministic name (a replay overwrites, never duplicates; a file
         of that name holding other records of the partition is never replaced: see _check_same_log);
      3. every folder touched (and the parent of any folder created) is fsynced so the renames survive a crash.
    An exception anywhere leaves at most hidden temp files, which the next owner of the partition removes.
    In an object store (``lake`` an ObjectLake) each table is one object under its final name instead:
    see `_write_objects`.
    """
    name = lake_layout.file_name(topic, partition, first, last)
    if isinstance(lake, ObjectLake):
        return _write_batch_objects(lake, stream, topic, partition, name, table, letters, ingested_at_ms)
    created: set[Path] = set()
    pending: list[tuple[Path, Path]] = []
    try:
        rows = table.num_rows if table is not None else 0
        if table is not None and rows:
            times = np.asarray(table.column("event_time").cast(pa.int64()).to_numpy())
            for day, part in _split_by_day(table, times // _US_PER_DAY):
                folder = lake_layout.date_folder(lake, "raw", stream, day)
                pending.append(_write_atomic(part, folder, name, created))
        if letters:
            dead = dead_letter_table(topic, partition, letters, ingested_at_ms)
            for day, part in _split_by_day(dead, np.array([d.day for d in letters])):
                folder = lake_layout.date_folder(lake, "dlq", stream, day)
                pending.append(_write_atomic(part, folder, name, created))
        for tmp, final in pending:
            if final.exists():  # a replay after a crash; a different log under the same name is not
                _check_same_log(tmp, final, topic, partition)
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in pending:
        os.replace(tmp, final)
    for folder in {final.parent for _, final in pending} | created:
        fsync_dir(folder)
    return BatchFiles([final for _, final in pending], rows, len(letters))


def _write_batch_objects(
    lake: ObjectLake,
    stream: str,
    topic: str,
    partition: int,
    name: str,
    table: pa.Table | None,
    letters: list[DeadLetter],
    ingested_at_ms: int,
) -> BatchFiles:
    parts: list[tuple[str, pa.Table]] = []
    rows = table.num_rows if table is not None else 0
    if table is not None and rows:
        times = np.asarray(table.column("event_time").cast(pa.int64()).to_numpy())
        for day, part in _split_by_day(table, times // _US_PER_DAY):
            parts.append((lake.path("raw", stream, lake_layout.date_name(day)), part))
    if letters:
        dead = dead_letter_table(topic, partition, letters, ingested_at_ms)
        for day, part in _split_by_day(dead, np.array([d.day for d in letters])):
            parts.append((lake.path("dlq", stream, lake_layout.date_name(day)), part))
    return BatchFiles(_write_objects(lake, parts, name, topic, partition), rows, len(letters))


def kafka_day(timestamp_ms: int | None, fallback_ms: int) -> int:
    """Date of a Kafka timestamp (days since epoch), for dead letters whose own time is unreadable."""
    return (timestamp_ms if timestamp_ms is not None and timestamp_ms >= 0 else fallback_ms) // _MS_PER_DAY
