"""Where ingest puts files, and what it finds there when it (re)takes a partition.

Layout (DESIGN.md): ``<lake>/raw/<stream>/dt=<YYYY-MM-DD>/<topic>-<partition>-<first>-<last>.parquet``
and the same under ``dlq/``. ``first`` and ``last`` are the offsets of the
batch that wrote the file; a batch whose records span several event dates
writes one file of that name in each date folder.

Replays must rewrite the same names rather than add copies: when a partition
is assigned, `existing_batches` lists the batches already on disk, and the
consumer cuts a replayed batch at exactly the offset where the earlier one
ended. Temporary files are hidden (``.<name>.<unique>.tmp``) so no reader's
``*.parquet`` glob ever sees them.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

KINDS = ("raw", "dlq")
TMP_SUFFIX = ".tmp"


def file_name(topic: str, partition: int, first: int, last: int) -> str:
    return f"{topic}-{partition}-{first}-{last}.parquet"


def parse_name(name: str) -> tuple[str, int, int, int] | None:
    """``<topic>-<partition>-<first>-<last>.parquet`` -> its parts (topics may contain '-')."""
    if not name.endswith(".parquet") or name.startswith("."):
        return None
    parts = name[: -len(".parquet")].rsplit("-", 3)
    if len(parts) != 4:
        return None
    try:
        return parts[0], int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None


def date_folder(lake: Path, kind: str, stream: str, day: int) -> Path:
    """Folder of the event date ``day`` (days since 1970-01-01, UTC)."""
    date = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    return lake / kind / stream / f"dt={date.isoformat()}"


def _date_dirs(lake: Path, stream: str) -> list[Path]:
    out: list[Path] = []
    for kind in KINDS:
        root = lake / kind / stream
        if root.is_dir():
            out.extend(p for p in root.iterdir() if p.is_dir() and p.name.startswith("dt="))
    return out


def existing_batches(lake: Path, stream: str, topic: str, partition: int) -> dict[int, int]:
    """First offset -> last offset of every batch of ``topic[partition]`` already in the lake."""
    found: dict[int, int] = {}
    prefix = f"{topic}-{partition}-"
    for folder in _date_dirs(lake, stream):
        for entry in os.scandir(folder):
            if not entry.name.startswith(prefix):
                continue
            parts = parse_name(entry.name)
            if parts and parts[0] == topic and parts[1] == partition:
                found[parts[2]] = parts[3]
    return found


def remove_stale_temps(lake: Path, stream: str, topic: str, partition: int) -> int:
    """Delete temporary files a killed writer of ``topic[partition]`` left behind; returns how many.

    Only called for partitions this process has just been assigned, so no live
    writer can own them (the previous owner flushed or died before the handover).
    """
    removed = 0
    prefix = f".{topic}-{partition}-"
    for folder in _date_dirs(lake, stream):
        for entry in os.scandir(folder):
            if entry.name.startswith(prefix) and entry.name.endswith(TMP_SUFFIX):
                inner = entry.name[1:].rsplit(".", 2)[0]  # ".<name>.<unique>.tmp" -> "<name>"
                parts = parse_name(inner)
                if parts and parts[0] == topic and parts[1] == partition:
                    os.unlink(entry.path)
                    removed += 1
    return removed
