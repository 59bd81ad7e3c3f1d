"""Where ingest puts files, and what it finds there when it (re)takes a partition.

Layout (docs/contracts.md): ``<lake>/raw/<stream>/dt=<YYYY-MM-DD>/<topic>-<partition>-<first>-<last>.parquet``
and the same under ``dlq/``. ``first`` and ``last`` are the offsets of the
batch that wrote the file; a batch whose records span several event dates
writes one file of that name in each date folder.

Replays must rewrite the same names rather than add copies: when a partition
is assigned, `existing_batches` lists the batches already on disk, and the
consumer cuts a replayed batch at exactly the offset where the earlier one
ended. Temporary files are hidden (``.<name>.<unique>.tmp``) so no reader's
``*.parquet`` glob ever sees them.

The lake is a local folder or an object store, by its URL: ``s3://bucket/prefix`` (S3 and
S3-compatible stores), ``gs://bucket/prefix`` (Google Cloud Storage), through pyarrow's
filesystems, which take the endpoint and credentials from the standard variables and files
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and
``~/.aws``, ``AWS_REGION``; ``GOOGLE_APPLICATION_CREDENTIALS``). An object appears whole or not
at all, so there a batch is one plain write of each file: no temporary name, no rename.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from core.errors import ConfigError
from flywheel_events.schema import COLUMNS

# The lake's Arrow schemas (docs/contracts.md): the writer (ingest) and the reader (curation)
# both use these, so a file ingest writes is one curation reads.
TS_US = pa.timestamp("us", tz="UTC")
TS_MS = pa.timestamp("ms", tz="UTC")

COORDINATES = [
    pa.field("_topic", pa.string(), nullable=False),
    pa.field("_partition", pa.int32(), nullable=False),
    pa.field("_offset", pa.int64(), nullable=False),
    pa.field("_kafka_timestamp", TS_MS),
    pa.field("_ingested_at", TS_MS, nullable=False),
]
TYPES: dict[str, pa.DataType] = {
    "event_time": TS_US,
    "schema_version": pa.int32(),
    "score": pa.float64(),
    "scale_min": pa.float64(),
    "scale_max": pa.float64(),
}


def _stream_schema(stream: str) -> pa.Schema:
    # Event columns are all nullable in the file; the validator already enforced what is required.
    return pa.schema(COORDINATES + [pa.field(n, TYPES.get(n, pa.string())) for n in COLUMNS[stream]])


SCHEMAS = {stream: _stream_schema(stream) for stream in COLUMNS}
DLQ_SCHEMA = pa.schema(
    [
        *COORDINATES,
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("field", pa.string()),
    ]
)

KINDS = ("raw", "dlq")
TMP_SUFFIX = ".tmp"
# URL schemes of the object stores the lake may live in (pyarrow.fs.FileSystem.from_uri).
OBJECT_SCHEMES = ("s3", "gs", "gcs")


@dataclasses.dataclass(frozen=True)
class ObjectLake:
    """A lake in an object store: its URL, pyarrow filesystem and root path inside it."""

    url: str  # s3://bucket/prefix, as configured, without a trailing slash
    fs: pafs.FileSystem
    root: str  # bucket/prefix: the filesystem's path of the lake

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]

    def path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def uri(self, path: str) -> str:
        """A filesystem path of this lake as a URL (what DuckDB and the logs are given)."""
        return f"{self.scheme}://{path}"

    def __str__(self) -> str:
        return self.url


Lake = Path | ObjectLake


def is_url(value: str | os.PathLike[str]) -> bool:
    return "://" in str(value)


def open_lake(value: str | os.PathLike[str]) -> Lake:
    """``paths.lake`` as a local folder (a Path) or an object-store lake (from its URL).

    Creating the filesystem reads the credentials and, for S3, may ask the bucket's region;
    a URL of another scheme, or one pyarrow cannot open, is a configuration error."""
    text = str(value)
    if not is_url(text):
        return Path(text)
    scheme = text.split("://", 1)[0].lower()
    if scheme == "file":
        return Path(text.split("://", 1)[1])
    if scheme not in OBJECT_SCHEMES:
        raise ConfigError(
            [
                f"paths.lake = {text!r}: {scheme}:// is not a lake this version can write; use a "
                "local folder, s3://bucket/prefix (S3 or an S3-compatible store: set "
                "AWS_ENDPOINT_URL) or gs://bucket/prefix"
            ]
        )
    url = text.rstrip("/")
    opened = url
    if scheme == "s3" and "allow_delayed_open" not in url:
        # An object written in one go is then one PUT, not three requests of a multipart upload
        # (create, part, complete); failures still surface, at the latest when the stream closes.
        opened += ("&" if "?" in url else "?") + "allow_delayed_open=true"
    try:
        fs, root = pafs.FileSystem.from_uri(opened)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            [
                f"paths.lake = {text!r} cannot be opened ({exc}); check the bucket name and the "
                "credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE, AWS_ENDPOINT_URL and AWS_REGION for "
                "S3-compatible stores, GOOGLE_APPLICATION_CREDENTIALS for gs://)"
            ]
        ) from exc
    if not root.strip("/"):
        raise ConfigError([f"paths.lake = {text!r} names no bucket: use s3://bucket/prefix"])
    return ObjectLake(url, fs, root.rstrip("/"))


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


def date_name(day: int) -> str:
    """``dt=YYYY-MM-DD`` of the event date ``day`` (days since 1970-01-01, UTC)."""
    return f"dt={(dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()}"


def date_folder(lake: Path, kind: str, stream: str, day: int) -> Path:
    """Folder of the event date ``day`` (days since 1970-01-01, UTC)."""
    return lake / kind / stream / date_name(day)


def object_files(lake: ObjectLake, kind: str, stream: str) -> list[tuple[str, str]]:
    """(``dt=`` folder name, object path) of every lake file of ``stream`` in ``kind``, by path."""
    selector = pafs.FileSelector(lake.path(kind, stream), recursive=True, allow_not_found=True)
    found = []
    for info in lake.fs.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        folder, _, name = info.path.rpartition("/")
        parent = folder.rpartition("/")[2]
        if parent.startswith("dt=") and parse_name(name) and folder == lake.path(kind, stream, parent):
            found.append((parent, info.path))
    return sorted(found, key=lambda f: f[1])


def _date_dirs(lake: Path, stream: str) -> list[Path]:
    out: list[Path] = []
    for kind in KINDS:
        root = lake / kind / stream
        if root.is_dir():
            out.extend(p for p in root.iterdir() if p.is_dir() and p.name.startswith("dt="))
    return out


def existing_batches(
    lake: Lake, stream: str, topic: str, partitions: Iterable[int]
) -> dict[int, dict[int, int]]:
    """For each of ``partitions`` of ``topic``: first offset -> last offset of every batch of it
    already in the lake (an empty dict for a partition with none).

    One listing of the stream's folders serves every partition given: in an object store a listing
    costs a request per thousand objects, so a consumer that takes eight partitions lists the
    lake once per stream, not eight times."""
    found: dict[int, dict[int, int]] = {p: {} for p in partitions}
    if isinstance(lake, ObjectLake):
        names = (path.rpartition("/")[2] for kind in KINDS for _, path in object_files(lake, kind, stream))
    else:
        prefix = f"{topic}-"
        names = (
            entry.name
            for folder in _date_dirs(lake, stream)
            for entry in os.scandir(folder)
            if entry.name.startswith(prefix)
        )
    for name in names:
        parts = parse_name(name)
        if parts and parts[0] == topic and parts[1] in found:
            found[parts[1]][parts[2]] = parts[3]
    return found


def temp_path(folder: Path, name: str) -> Path:
    """A hidden, unique temporary file for the lake file ``name`` in ``folder``: ``.<name>.<unique>.tmp``."""
    return folder / f".{name}.{uuid.uuid4().hex}{TMP_SUFFIX}"


def remove_stale_temps(
    lake: Lake, stream: str, topic: str, partition: int, batch: tuple[int, int] | None = None
) -> int:
    """Delete temporary files a killed writer of ``topic[partition]`` left behind (only those of the
    batch ``(first, last)`` when given); returns how many.

    Called for partitions this process has just been assigned, so no live writer can own them
    (the previous owner flushed or died before the handover), and for one batch whose writer
    process died. An object-store lake has none: its writer never makes temporary objects.
    """
    if isinstance(lake, ObjectLake):
        return 0
    removed = 0
    prefix = f".{topic}-{partition}-"
    for folder in _date_dirs(lake, stream):
        for entry in os.scandir(folder):
            if entry.name.startswith(prefix) and entry.name.endswith(TMP_SUFFIX):
                inner = entry.name[1:].rsplit(".", 2)[0]  # ".<name>.<unique>.tmp" -> "<name>"
                parts = parse_name(inner)
                if parts and parts[:2] == (topic, partition) and batch in (None, parts[2:]):
                    os.unlink(entry.path)
                    removed += 1
    return removed
