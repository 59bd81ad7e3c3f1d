"""The raw lake as curation sees it: the date folders to read (the schemas are core.lake's, the writer's own).

Folders are ``raw/<stream>/dt=YYYY-MM-DD/``; only the dates inside the window
are read (pruning), and the rows in folders that are wholly too old are
counted from the Parquet footers, without reading a column.

The raw lake may be in an object store (``paths.raw_lake = "s3://bucket/prefix"``, see
core.lake): the folders are listed and the footers read through pyarrow's filesystem, and
DuckDB reads the window's files as ``s3://`` URLs through the same filesystem (`attach`), so
the same endpoint and credentials serve both and no DuckDB extension is needed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from core.lake import SCHEMAS, Lake, ObjectLake


def _dated_folders(root: Path) -> list[tuple[dt.date, Path]]:
    found = []
    if root.is_dir():
        for folder in root.iterdir():
            if folder.is_dir() and folder.name.startswith("dt="):
                try:
                    found.append((dt.date.fromisoformat(folder.name[3:]), folder))
                except ValueError:
                    continue  # not a date folder the ingest writes; never ours to read
    return sorted(found)


def _dated_objects(lake: ObjectLake, stream: str) -> list[tuple[dt.date, list[str]]]:
    """The ``dt=`` folders of ``raw/<stream>`` in an object store, with their files' paths, by date."""
    root = lake.path("raw", stream)
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    by_day: dict[dt.date, list[str]] = {}
    for info in lake.fs.get_file_info(selector):
        folder, _, name = info.path.rpartition("/")
        parent, _, dated = folder.rpartition("/")
        if info.type != pafs.FileType.File or parent != root or not dated.startswith("dt="):
            continue
        if not name.endswith(".parquet") or name.startswith("."):
            continue
        try:
            day = dt.date.fromisoformat(dated[3:])
        except ValueError:
            continue  # not a date folder the ingest writes; never ours to read
        by_day.setdefault(day, []).append(info.path)
    return sorted((day, sorted(paths)) for day, paths in by_day.items())


def has_stream(lake: Lake, stream: str) -> bool:
    """Whether the raw lake has a folder (local) or any object (object store) of ``stream``."""
    if isinstance(lake, ObjectLake):
        return bool(_dated_objects(lake, stream))
    return (lake / "raw" / stream).is_dir()


def attach(con: Any, lake: Lake) -> None:
    """Let DuckDB read ``lake``'s URLs (``s3://...``) through its pyarrow filesystem; once per connection."""
    if not isinstance(lake, ObjectLake):
        return
    from fsspec.implementations.arrow import ArrowFSWrapper

    if lake.scheme in con.list_filesystems():  # DuckDB names a filesystem by its protocol
        return
    name = f"flywheel-lake-{lake.scheme}"
    wrapper = type(name, (ArrowFSWrapper,), {"protocol": (lake.scheme,), "fsid": name})(lake.fs)
    con.register_filesystem(wrapper)


def window_files(lake: Lake, stream: str, first: dt.date, last: dt.date) -> tuple[list[str], int, int]:
    """Parquet files of ``stream`` dated in [first, last], and the rows and files dated before ``first``.

    Folders after ``last`` hold events that happened after --as-of: not read, not counted.
    In an object store the files are URLs (``s3://bucket/prefix/raw/...``).
    """
    files: list[str] = []
    older_rows = 0
    older_files = 0
    if isinstance(lake, ObjectLake):
        for day, paths in _dated_objects(lake, stream):
            if day < first:
                older_files += len(paths)
                for path in paths:
                    with lake.fs.open_input_file(path) as source:
                        older_rows += pq.ParquetFile(source).metadata.num_rows
            elif day <= last:
                files.extend(lake.uri(path) for path in paths)
        return files, older_rows, older_files
    for day, folder in _dated_folders(lake / "raw" / stream):
        parts = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
        if day < first:
            older_files += len(parts)
            older_rows += sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        elif day <= last:
            files.extend(str(p) for p in parts)
    return files, older_rows, older_files


def empty_table(stream: str) -> pa.Table:
    """A zero-row table of the stream's schema (the one ingest writes), for a lake that has none of it yet."""
    return SCHEMAS[stream].empty_table()
