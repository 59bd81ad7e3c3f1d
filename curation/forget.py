"""A user's deletion request: a tombstone curation honours, and a compaction of the raw lake.

``flywheel forget --user-id ID`` writes ``<lake>/tombstones/<sha256 of ID>.json`` (the id's
SHA-256 only: the tombstone does not keep the id it asks to forget). From then on every curation
run leaves out the feedback and traces whose ``user_id`` has a tombstone, wherever they sit in the
lake (a replay of Kafka after the compaction may bring them back), and counts them in the
manifest (``forgotten_feedback``, ``forgotten_traces``). Snapshots built before are immutable and
keep their rows.

The compaction then rewrites each raw Parquet file that holds any of those rows without them:
same name (the ingest's deterministic name by Kafka offsets), same schema and encoding, the other
rows in their order, written to a hidden temporary file in the same folder, fsynced and renamed
over the old one; files without such rows are not touched. A file left without rows stays, empty.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.files import atomic_output, atomic_write_text
from curation.errors import CurationError

TOMBSTONES = "tombstones"
STREAMS = ("feedback", "traces")


def user_digest(user_id: str) -> str:
    """The SHA-256 (hex) of a user id: a tombstone's name and what curation matches rows by."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


def tombstones(lake: str | os.PathLike[str]) -> list[str]:
    """The digests of every user with a tombstone in ``lake``, sorted."""
    folder = Path(lake) / TOMBSTONES
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.json"):
        digest = path.stem
        if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            found.append(digest)
    return sorted(found)


@dataclass
class Forgotten:
    tombstone: Path
    rows_removed: dict[str, int] = field(default_factory=dict)
    files_rewritten: list[Path] = field(default_factory=list)


def forget(lake: str | os.PathLike[str], user_id: str, compact: bool = True) -> Forgotten:
    """Record a tombstone for ``user_id`` in ``lake`` and (``compact``) rewrite the raw files that
    hold its rows. Running it again is harmless: the tombstone stays, nothing is left to remove."""
    if not user_id or user_id != user_id.strip() or any(ord(c) < 32 for c in user_id):
        raise CurationError(
            f"--user-id {user_id!r} is empty or has surrounding spaces or control characters",
            hint="pass the user_id exactly as the events carry it",
        )
    root = Path(lake)
    if not (root / "raw").is_dir():
        raise CurationError(
            f"no raw lake under {root / 'raw'}",
            hint="point --lake at the lake `flywheel ingest` writes",
        )
    digest = user_digest(user_id)
    folder = root / TOMBSTONES
    folder.mkdir(exist_ok=True)
    path = folder / f"{digest}.json"
    if not path.is_file():
        record = {
            "user_sha256": digest,
            "requested_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        atomic_write_text(path, json.dumps(record, sort_keys=True) + "\n")
    result = Forgotten(tombstone=path, rows_removed=dict.fromkeys(STREAMS, 0))
    if compact:
        for stream in STREAMS:
            for file in sorted((root / "raw" / stream).glob("dt=*/*.parquet")):
                if file.name.startswith("."):
                    continue
                removed = _compact_file(file, user_id)
                if removed:
                    result.rows_removed[stream] += removed
                    result.files_rewritten.append(file)
    return result


def _compact_file(path: Path, user_id: str) -> int:
    """Rewrite ``path`` without the rows of ``user_id``; returns how many were removed (0: the file
    was not touched)."""
    users = pq.read_table(path, columns=["user_id"]).column("user_id")
    hit = pc.fill_null(pc.equal(users, pa.scalar(user_id, users.type)), False)
    removed = int(pc.sum(hit).as_py() or 0)
    if not removed:
        return 0
    source = pq.ParquetFile(path)
    table = source.read().filter(pc.invert(hit))
    codec = (
        source.metadata.row_group(0).column(0).compression.lower()
        if source.metadata.num_row_groups
        else "zstd"
    )
    dictionary = [
        source.schema_arrow.field(i).name
        for i in range(source.metadata.num_columns)
        if source.metadata.num_row_groups
        and "DICTIONARY" in str(source.metadata.row_group(0).column(i).encodings)
    ]
    with atomic_output(path, "wb") as out:
        pq.write_table(table, out, compression=codec, use_dictionary=dictionary or False)
    return removed
