"""Snapshots: content-derived ids, atomic publication, and lookup for the stages downstream.

``lake/curated/<id>/`` is built in ``.staging-<id>-<pid>/`` and renamed into place when
complete, so a reader sees a whole snapshot or none. A snapshot is never rewritten: when
one with the same id exists, the run returns it. A snapshot that fails a critical check
is kept as ``_rejected-<id>/`` for the reviewer and is never returned by
:func:`latest_snapshot`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb

from curation.errors import CurationError
from curation.pipeline import load_sql
from flywheel.fsutil import sha256_file

MANIFEST = "manifest.json"
SPLITS = ("train", "eval")
# Bump when the meaning of a snapshot's rows changes, so old and new never share an id.
FORMAT_VERSION = 1


def curated_root(lake: str | os.PathLike[str]) -> Path:
    return Path(lake) / "curated"


def content_digest(con: duckdb.DuckDBPyConnection, weights: dict[str, float]) -> tuple[str, dict[str, Any]]:
    """The snapshot id and what it was derived from (rows per split, their digests, the KTO weights)."""
    parts = {
        split: {"rows": int(n), "xor": x, "sum": s}
        for split, n, x, s in con.execute(load_sql("13_content_hash")).fetchall()
    }
    # DuckDB's hash() may change between versions: a different version must give a different id.
    basis = {"format": FORMAT_VERSION, "duckdb": duckdb.__version__, "splits": parts, "kto": weights}
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()
    return f"snap-{digest[:16]}", basis


def export_splits(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, str]:
    """Write train.parquet and eval.parquet (zstd); returns their sha256."""
    query = load_sql("14_export")
    hashes = {}
    # `out` is stored in the export's row order (pipeline._fetch): keeping that order is a copy,
    # where an ORDER BY here would sort every text again.
    con.execute("SET preserve_insertion_order = true")
    try:
        for split in SPLITS:
            target = folder / f"{split}.parquet"
            literal = str(target).replace("'", "''")
            con.execute(f"COPY ({query}) TO '{literal}' (FORMAT parquet, COMPRESSION zstd)", {"split": split})
            hashes[f"{split}.parquet"] = sha256_file(target)
    finally:
        con.execute("SET preserve_insertion_order = false")
    return hashes


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def publish(staging: Path, final: Path) -> Path:
    """Rename a complete staging folder into place; if another run got there first, keep theirs."""
    try:
        os.rename(staging, final)
    except OSError:
        if (final / MANIFEST).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            return final
        raise
    return final


def reject(staging: Path, snapshot_id: str) -> Path:
    """Keep a snapshot that failed a critical check where a reviewer can read its report."""
    target = staging.parent / f"_rejected-{snapshot_id}"
    shutil.rmtree(target, ignore_errors=True)
    os.rename(staging, target)
    return target


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a snapshot folder (or of the manifest file itself)."""
    p = Path(path)
    file = p / MANIFEST if p.is_dir() else p
    try:
        data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CurationError(
            f"{p} is not a curated snapshot (no {MANIFEST})",
            hint="`flywheel curate` builds one and prints its path",
        ) from None
    return data


def latest_snapshot(lake: str | os.PathLike[str]) -> Path | None:
    """The most recently created complete snapshot under ``lake/curated``, or None."""
    root = curated_root(lake)
    if not root.is_dir():
        return None
    best: tuple[str, str] | None = None
    found: Path | None = None
    for folder in root.iterdir():
        if folder.name.startswith((".", "_")) or not (folder / MANIFEST).is_file():
            continue
        key = (load_manifest(folder).get("created_at", ""), folder.name)
        if best is None or key > best:
            best, found = key, folder
    return found
