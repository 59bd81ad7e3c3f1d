"""A curated snapshot as every reader sees it: open it, check it, read its manifest and splits, find the newest.

Curation writes snapshots (``curation.snapshot``); training, the gate, the nightly round and
``flywheel export`` read them, all through this module, so "is this a snapshot", "which is the
newest" and "in which order are its rows" have one answer. The layout (docs/contracts.md)::

    <paths.lake>/curated/<snapshot id>/
        manifest.json        what it was built from, counts, KTO weights, data-quality results
        train.parquet        the rows to train on
        eval.parquet         the held-out rows the gate replays
        pairs.parquet        (when curation.pairs is on) chosen/rejected pairs for DPO-family methods
        quality/             the data-quality report

A snapshot is published by renaming a complete staging folder into place, so a folder with a
``manifest.json`` is complete. Folders starting with ``.`` (staging) or ``_`` (rejected by a
critical data-quality check, kept for the reviewer) are never snapshots to read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import TerminalError

MANIFEST = "manifest.json"
SPLITS = ("train", "eval")
# The preference pairs of each split (written when curation.pairs is on).
PAIRS_FILES = {"train": "pairs.parquet", "eval": "pairs_eval.parquet"}
# Row order inside a snapshot file is not part of the contract; readers that need a stable order
# (training's seeded shuffle, the gate's sample) sort by these columns, those the file has.
ROW_ORDER = ("event_id", "source", "trace_id", "prompt", "completion")
_BUILD_ONE = "`flywheel curate` builds one and prints its path"


class SnapshotError(TerminalError):
    """A path is not a curated snapshot, or the snapshot lacks what a reader needs."""


def curated_root(lake: str | os.PathLike[str]) -> Path:
    return Path(lake) / "curated"


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a snapshot folder (or of the manifest file itself)."""
    p = Path(path)
    file = p / MANIFEST if p.is_dir() or not p.suffix else p
    try:
        data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise SnapshotError(f"{p} is not a curated snapshot (no {MANIFEST})", hint=_BUILD_ONE) from None
    except json.JSONDecodeError as exc:
        raise SnapshotError(
            f"{file} is not valid JSON ({exc}); the snapshot is damaged",
            hint="rebuild it with `flywheel curate`; never edit a snapshot by hand",
        ) from None
    return data


def check(path: str | os.PathLike[str]) -> Path:
    """``path`` as a snapshot folder, or a :class:`SnapshotError` saying what it lacks."""
    folder = Path(path)
    if not (folder / MANIFEST).is_file():
        raise SnapshotError(
            f"{folder} is not a curated snapshot (no {MANIFEST})",
            hint="pass a folder printed by `flywheel curate`",
        )
    return folder


def latest_snapshot(lake: str | os.PathLike[str]) -> Path | None:
    """The most recently created complete snapshot under ``lake/curated`` (by its manifest's
    ``created_at``, then its name), or None."""
    root = curated_root(lake)
    if not root.is_dir():
        return None
    best: tuple[str, str] | None = None
    found: Path | None = None
    for folder in root.iterdir():
        if folder.name.startswith((".", "_")) or not (folder / MANIFEST).is_file():
            continue
        key = (str(load_manifest(folder).get("created_at", "")), folder.name)
        if best is None or key > best:
            best, found = key, folder
    return found


def resolve(lake: str | os.PathLike[str], snapshot: str | os.PathLike[str] | None) -> Path:
    """The snapshot a command was given (checked), or the newest under ``lake`` when none was."""
    if snapshot is not None:
        return check(snapshot)
    found = latest_snapshot(lake)
    if found is None:
        raise SnapshotError(
            f"no curated snapshot under {curated_root(lake)}",
            hint="run `flywheel curate` first, or pass --snapshot DIR",
        )
    return found


def split_path(snapshot: str | os.PathLike[str], split: str) -> Path:
    """The file of one split (``train``, ``eval``, ``pairs`` or ``pairs_eval``), which must exist."""
    path = Path(snapshot) / f"{split}.parquet"
    if not path.is_file():
        raise SnapshotError(
            f"{path} does not exist",
            hint="pass a folder written by `flywheel curate`, or rebuild the snapshot",
        )
    return path


def read_split(
    snapshot: str | os.PathLike[str],
    split: str,
    required: Sequence[str] = (),
    order: Sequence[str] = ROW_ORDER,
) -> Any:
    """One split as a pyarrow Table sorted by the ``order`` columns it has (a snapshot's row order
    is not part of its contract), after checking it has the ``required`` columns."""
    import pyarrow.parquet as pq

    path = split_path(snapshot, split)
    table = pq.read_table(path)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise SnapshotError(
            f"{path} lacks column(s) {', '.join(missing)} (docs/contracts.md lists the snapshot columns)",
            hint="rebuild the snapshot with the current `flywheel curate`",
        )
    keys = [c for c in order if c in table.column_names]
    return table.sort_by([(c, "ascending") for c in keys])


def facts(snapshot: str | os.PathLike[str]) -> tuple[str, int]:
    """(snapshot id, training rows) of a snapshot, from its manifest and train file's footer."""
    import pyarrow.parquet as pq

    folder = check(snapshot)
    train = split_path(folder, "train")
    manifest = load_manifest(folder)
    return str(manifest.get("snapshot_id") or folder.name), pq.read_metadata(train).num_rows
