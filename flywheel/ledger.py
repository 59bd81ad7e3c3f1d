"""The run ledger: one JSON file per nightly round, rewritten atomically after every step.

Layout under ``paths.runs``::

    rounds/<run id>.json   the round's record (below); the newest name sorts last
    round.lock             held (flock) by the round in progress

A record holds the run id, its status (``running``, ``completed``, ``skipped``,
``failed``), the outcome (``promoted``, ``rejected``, ``skipped``, ``failed``),
the state and timing of every step (``curate``, ``train``, ``gate``,
``promote``), the snapshot id, the candidate version, the gate's decision with
its reasons, and the champion before and after. A record still ``running``
when no round holds the lock belongs to a round that was killed: the next round
reads it to resume (:func:`interrupted`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import TransientError
from core.files import atomic_write_json

STEPS = ("curate", "train", "gate", "promote")


class RoundBusyError(TransientError):
    """Another round holds the lock; this one did nothing."""


def now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def new_run_id(t: float | None = None) -> str:
    t = time.time() if t is None else t
    # Sortable by time; the pid tells apart two rounds started in the same second on different hosts' clocks.
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"{int(t * 1000) % 1000:03d}Z-{os.getpid()}"


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write, fsync, rename: a reader sees the old record or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, doc)


class Ledger:
    """The record of one round, persisted on every change."""

    def __init__(self, runs: str | os.PathLike[str], run_id: str | None = None) -> None:
        self.run_id = run_id or new_run_id()
        self.path = Path(runs) / "rounds" / f"{self.run_id}.json"
        self._t0: dict[str, float] = {}
        self.doc: dict[str, Any] = {
            "run_id": self.run_id,
            "status": "running",
            "outcome": None,
            "started_at": now_iso(),
            "finished_at": None,
            "duration_s": None,
            "resumed_from": None,
            "champion_before": None,
            "champion_after": None,
            "snapshot_id": None,
            "snapshot_path": None,
            "train_rows": None,
            "candidate": None,
            "decision": None,
            "message": None,
            "error": None,
            "steps": {s: {"state": "pending"} for s in STEPS},
        }
        self._start = time.monotonic()

    def set(self, **fields: Any) -> None:
        self.doc.update(fields)
        self.save()

    def begin(self, step: str) -> None:
        self._t0[step] = time.monotonic()
        self.doc["steps"][step] = {"state": "running", "started_at": now_iso()}
        self.save()

    def end(self, step: str, state: str = "done", detail: str | None = None) -> None:
        entry = self.doc["steps"][step]
        entry["state"] = state
        entry["finished_at"] = now_iso()
        if step in self._t0:
            entry["duration_s"] = round(time.monotonic() - self._t0[step], 3)
        if detail:
            entry["detail"] = detail
        self.save()

    def finish(self, status: str, outcome: str, message: str, error: BaseException | None = None) -> None:
        self.doc.update(
            status=status,
            outcome=outcome,
            message=message,
            finished_at=now_iso(),
            duration_s=round(time.monotonic() - self._start, 3),
        )
        if error is not None:
            self.doc["error"] = {
                "type": type(error).__name__,
                "message": getattr(error, "message", str(error)),
                "hint": getattr(error, "hint", None),
            }
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.doc)


def records(runs: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every round's record, oldest first. Unreadable files are skipped (a torn tmp never has a .json name)."""
    folder = Path(runs) / "rounds"
    if not folder.is_dir():
        return []
    out = []
    for f in sorted(folder.glob("*.json")):
        with contextlib.suppress(OSError, json.JSONDecodeError):
            out.append(json.loads(f.read_text(encoding="utf-8")))
    return out


def latest(runs: str | os.PathLike[str]) -> dict[str, Any] | None:
    found = records(runs)
    return found[-1] if found else None


def interrupted(runs: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The newest round, if it did not finish cleanly (killed while ``running``, or ``failed``).

    Only meaningful while holding the round lock: then no round is in progress.
    """
    last = latest(runs)
    if last is None or last.get("status") in ("completed", "skipped"):
        return None
    return last


@contextlib.contextmanager
def round_lock(runs: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``runs/round.lock`` exclusively; raise :class:`RoundBusyError` at once if another round holds it.

    ``flock`` is released by the kernel when the holder dies, so a killed round never leaves a stale lock.
    """
    path = Path(runs) / "round.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RoundBusyError(
                f"another nightly round is running ({holder}); this one did nothing",
                hint=f"wait for it to finish; `cat {path.parent / 'rounds'}/*.json` shows its progress",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {now_iso()}\n".encode(), 0)
        yield path
    finally:
        # Closing the descriptor releases the flock.
        os.close(fd)
