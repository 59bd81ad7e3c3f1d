"""File-system mechanisms every stage needs for durable, verifiable outputs: the one atomic write.

A file another process may read at any moment (a manifest, the champion pointer, a ledger
record, a resolved configuration, a report) is written by :func:`atomic_output`: to a hidden
temporary file beside it (``.<name>.<pid>.<random>.tmp``, so no reader's glob sees it and two
writers never share one), flushed and fsynced, renamed over the target, and the folder fsynced,
so after a crash the target holds the old content or the new, never half of either. Files
written inside a staging folder that is itself renamed into place (a snapshot, a registry
version) need none of this: the folder's rename publishes them all at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in ``path`` durable (POSIX needs the directory itself fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    """The file's sha256, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def temporary_name(path: Path) -> Path:
    """A hidden, unique temporary file beside ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], mode: str = "w", chmod: int | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file for ``path``; when the block ends without an error, publish it whole.

    ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``. ``chmod`` sets the file's permission bits before
    the rename (a pointer that servers running as other users must read). On an error the
    temporary file is removed and the target is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_output writes a whole file: mode 'w' or 'wb', not {mode!r}")
    target = Path(path)
    tmp = temporary_name(target)
    try:
        with open(tmp, mode, encoding="utf-8" if mode == "w" else None) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if chmod is not None:
            os.chmod(tmp, chmod)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, chmod: int | None = None) -> None:
    """Write ``text`` to ``path`` atomically and durably (:func:`atomic_output`)."""
    with atomic_output(path, "w", chmod=chmod) as out:
        out.write(text)


def atomic_write_json(path: str | os.PathLike[str], doc: Any) -> None:
    """Write ``doc`` as indented, key-sorted JSON, atomically and durably."""
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
