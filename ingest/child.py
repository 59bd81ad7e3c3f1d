"""Process mode (``ingest.writer_mode = "process"``): batches are decoded, encoded and written in
child processes, so the consumer's process keeps its GIL for kafka-python.

In thread mode the writer threads share the consumer's GIL: Arrow's JSON reader, zstd and fsync
release it, but the Python between those calls (the bulk path's checks and compute calls, the
per-record path, the Parquet writer's setup) takes it from kafka-python's record decoding, which
is what bounds the consume rate. Here each writer thread of the flusher owns one child process
(``multiprocessing``, spawn context) and hands it each batch as the six flat buffers of a
`ingest.block.Block` (the values joined by newlines, the keys, and the lengths, offsets and
timestamps as int64 arrays: built with loops in C, never pickled Python rows); the child
decodes, validates, encodes and writes the batch exactly as a writer thread would
(``flusher.write_one``, the same files under the same names) and answers only once every file is
durable. The parent commits nothing before that answer.

A child that dies (killed, out of memory, a crash in native code) is noticed by its writer thread
as a closed pipe: the thread removes the temporary files the child may have left for that batch,
starts a new child and hands it the same batch again, which rewrites the same deterministic file
names (a batch the dead child had already renamed into place is replaced by the same records, as in
a replay). Only then does the batch's job finish, so its offset is committed after the rewrite and
never before; a child that dies on the same batch ``_MAX_DEATHS`` times stops ingest with an error
naming the batch, with nothing of it committed.

Children ignore SIGINT and SIGTERM: the two-stage stop is the parent's (core/signals.py), which
finishes the batches in flight, then closes the children's pipes. A child whose parent is gone
(kill -9, or the second signal's immediate exit) reads the end of its pipe and exits.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import resource
import signal
import threading
import time
from pathlib import Path
from typing import Any

from core import lake as lake_layout
from core.errors import FlywheelError, TerminalError
from core.lake import Lake, ObjectLake, open_lake
from core.logs import json_logs, setup_logging
from ingest.batch import PartitionBatch
from ingest.block import Block
from ingest.config import IngestConfig
from ingest.writer import BatchFiles

log = logging.getLogger(__name__)

# A child that dies this many times on one batch is not restarted for it again.
_MAX_DEATHS = 3
# How long a new child may take to import Arrow and warm up before it is given up on.
_START_TIMEOUT_S = 120.0
# How long a child may take to answer the request to stop, once its last batch is done.
_STOP_TIMEOUT_S = 30.0
# Writer processes run at this much lower CPU priority (``nice``) than the consumer's process: the
# consumer thread is the serial part of ingest, and on a machine with few cores a writer that
# competes with it for a core slows the whole pipeline; a lower-priority writer takes the cores'
# idle time, and once it falls behind, the consumer waits for it (the flusher's bound on pending
# batches) and the CPU is the writer's.
WRITER_NICENESS = 10


def send_block(conn: multiprocessing.connection.Connection, block: Block) -> None:
    for part in block.to_wire():
        conn.send_bytes(part)


def receive_block(conn: multiprocessing.connection.Connection) -> Block:
    return Block.from_wire([conn.recv_bytes() for _ in range(6)])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _portable(exc: BaseException) -> bytes:
    """The exception pickled so that the parent raises the same class with the same hint."""
    if isinstance(exc, FlywheelError):
        return pickle.dumps(("flywheel", type(exc), exc.message, exc.hint))
    try:
        return pickle.dumps(("pickled", exc))
    except Exception:
        return pickle.dumps(("pickled", RuntimeError(f"in the writer process: {exc!r}")))


def _rebuild(data: bytes) -> BaseException:
    kind, *rest = pickle.loads(data)
    if kind == "flywheel":
        cls, message, hint = rest
        exc: FlywheelError = cls.__new__(cls)
        FlywheelError.__init__(exc, message, hint)
        return exc
    return rest[0]


def child_main(
    conn: multiprocessing.connection.Connection,
    lake_url: str,
    cfg: IngestConfig,
    log_level: int,
    log_json: bool,
) -> None:
    """A writer process: warm up, then write each batch it is handed until told to stop."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # the parent's two-stage stop decides (module doc)
    with contextlib.suppress(OSError):  # WRITER_NICENESS; a container may refuse, which costs speed only
        os.nice(WRITER_NICENESS)
    setup_logging(logging.getLevelName(log_level), "json" if log_json else "text")
    from ingest.flusher import warm_up, write_one

    lake = open_lake(lake_url)
    conn.send(("ready", os.getpid(), warm_up(cfg.max_record_bytes)))
    while True:
        try:
            header = conn.recv()
        except EOFError:
            return  # the parent is gone: nothing it handed over can be committed any more
        if header is None:
            conn.send(("stopped", peak_rss_mb()))
            return
        stream, topic, partition, first, last = header
        block = receive_block(conn)
        try:
            batch = PartitionBatch(topic, partition, stream, {}, 1, 1, 1.0, cfg.max_record_bytes)
            batch.block = block
            batch.first, batch.last = first, last
            files = write_one(lake, cfg, batch)
        except Exception as exc:
            log.error("writing %s[%s]@%s-%s failed", topic, partition, first, last, exc_info=exc)
            conn.send(("error", _portable(exc)))
            continue
        conn.send(("done", [str(p) for p in files.paths], files.rows, files.dead_letters))


class _Child:
    """One writer process and the parent's end of its pipe."""

    def __init__(self, context: Any, lake_url: str, cfg: IngestConfig) -> None:
        self.context, self.lake_url, self.cfg = context, lake_url, cfg
        self.conn: multiprocessing.connection.Connection | None = None
        self.process: Any = None

    def launch(self) -> None:
        parent, child = self.context.Pipe(duplex=True)
        root = logging.getLogger()
        self.process = self.context.Process(
            target=child_main,
            args=(child, self.lake_url, self.cfg, root.getEffectiveLevel(), json_logs()),
            name="ingest-writer-process",
            daemon=True,
        )
        self.process.start()
        child.close()  # the parent keeps its own end only, so it reads EOF when the child dies
        self.conn = parent

    def ready(self) -> dict[str, int]:
        """Wait for the child's warm-up; raises if it dies or takes longer than _START_TIMEOUT_S."""
        assert self.conn is not None
        if not self.conn.poll(_START_TIMEOUT_S):
            self.process.kill()
            raise TerminalError(
                f"an ingest writer process did not start within {_START_TIMEOUT_S:.0f}s",
                hint='check the machine\'s load and memory, or set ingest.writer_mode = "thread"',
            )
        try:
            _, pid, rows = self.conn.recv()
        except EOFError:
            self.process.join(5)
            raise TerminalError(
                f"an ingest writer process exited while starting (exit code {self.process.exitcode})",
                hint='its error is logged above; or set ingest.writer_mode = "thread"',
            ) from None
        log.info("writer process started", extra={"pid": pid})
        return dict(rows)

    def restart(self) -> None:
        self.discard()
        self.launch()
        self.ready()

    def discard(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.process is not None:
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)

    def ask_to_stop(self) -> None:
        """Tell the child to exit once its batch is done (`stopped` waits for it)."""
        if self.conn is not None:
            with contextlib.suppress(OSError):  # it died already: `stopped` finds the pipe closed
                self.conn.send(None)

    def stopped(self) -> float:
        """Wait for the child asked to stop; returns its peak resident memory (MB)."""
        peak = 0.0
        if self.conn is not None:
            try:
                if self.conn.poll(_STOP_TIMEOUT_S):
                    _, peak = self.conn.recv()
            except (EOFError, OSError):
                pass  # it died already: nothing of it is waited for
        self.discard()
        return float(peak)


class WriterProcesses:
    """The children of one flusher; each writer thread borrows one child per batch."""

    def __init__(self, lake: Lake, cfg: IngestConfig, count: int) -> None:
        self.lake = lake
        self.cfg = cfg
        context = multiprocessing.get_context("spawn")
        self.children = [_Child(context, str(lake), cfg) for _ in range(count)]
        self._idle: queue.SimpleQueue[_Child] = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()
        self.restarts = 0
        self.peak_rss_mb = 0.0

    def start(self) -> dict[str, int]:
        """Start every child (they import and warm up side by side); returns one's warm-up rows."""
        with self._lock:
            if self._started:
                return {}
            self._started = True
        for child in self.children:
            child.launch()
        rows: dict[str, int] = {}
        for child in self.children:
            rows = child.ready()
            self._idle.put(child)
        return rows

    def write(self, batch: PartitionBatch) -> BatchFiles:
        """Have a child write ``batch``; returns once its files are durable (module doc)."""
        self.start()  # a no-op after the flusher's warm-up
        child = self._idle.get()
        try:
            return self._write(child, batch)
        finally:
            self._idle.put(child)

    def _write(self, child: _Child, batch: PartitionBatch) -> BatchFiles:
        header = (batch.stream, batch.topic, batch.partition, batch.first, batch.last)
        block = batch.block if batch.block is not None else Block.from_records(batch.records)
        where = f"{batch.topic}[{batch.partition}]@{batch.first}-{batch.last}"
        deaths = 0
        while True:
            try:
                assert child.conn is not None
                child.conn.send(header)
                send_block(child.conn, block)
                reply = child.conn.recv()
                break
            except (EOFError, OSError) as exc:
                deaths += 1
                child.discard()
                code = child.process.exitcode
                if deaths >= _MAX_DEATHS:
                    raise TerminalError(
                        f"the ingest writer process died {deaths} times writing {where} (last exit code "
                        f"{code}); nothing of it was committed",
                        hint="look for a record of that batch that crashes the decoder, and for the "
                        'machine\'s memory (an out-of-memory kill); ingest.writer_mode = "thread" '
                        "writes in the consumer's process",
                    ) from exc
                log.warning(
                    "writer process died; starting another and rewriting its batch",
                    extra={"where": where, "exit_code": code, "deaths": deaths},
                )
                # a dead child's temporary files of this batch (the rewrite makes its own)
                lake_layout.remove_stale_temps(
                    self.lake, batch.stream, batch.topic, batch.partition, (batch.first or 0, batch.last or 0)
                )
                started = time.monotonic()
                child.restart()
                self.restarts += 1
                log.info("writer process restarted", extra={"seconds": round(time.monotonic() - started, 2)})
        if reply[0] == "error":
            raise _rebuild(reply[1])
        _, paths, rows, dead_letters = reply
        found: list[Path] | list[str] = (
            paths if isinstance(self.lake, ObjectLake) else [Path(p) for p in paths]
        )
        return BatchFiles(found, rows, dead_letters)

    def close(self) -> None:
        """Stop every child (after the flusher's threads are done); records their peak memory.

        All are asked first, then waited for: they exit side by side."""
        for child in self.children:
            child.ask_to_stop()
        self.peak_rss_mb = sum(child.stopped() for child in self.children)
