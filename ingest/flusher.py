"""Batches are decoded and written by two writers while the consumer keeps fetching.

Each writer is a thread of this process that either hands the batch to a writer process of its own
(``ingest.writer_mode = "process"``, the default: ingest/child.py) or decodes and writes it itself
("thread"; Arrow's JSON reader, Parquet encoding, zstd, fsync and object-store uploads release the
GIL, the Python between them does not). The consumer thread alone talks to Kafka (kafka-python's
consumer is not thread-safe): it submits a batch here, and commits its offset only after
`completed` hands the finished job back. Jobs are handed back strictly in submission order,
whatever order the writers finish them in, so an offset is never committed ahead of an earlier
batch of the same partition; a failed job stops the hand-back at that job, so nothing after it is
committed either. (After a crash, a later batch may be on disk without an earlier one; the replay
cuts around it: see `PartitionBatch.before`.)
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from core.lake import Lake, ObjectLake
from ingest.batch import PartitionBatch
from ingest.block import Record
from ingest.config import IngestConfig
from ingest.fastpath import bulk_table
from ingest.retry import with_backoff
from ingest.writer import BatchFiles, write_batch, write_parquet

if TYPE_CHECKING:
    from ingest.child import WriterProcesses

# One plain, valid event per stream for Flusher.warm_up (each must take the bulk path; the trace
# once more with a chat prompt).
_WARM_UP_EVENTS: dict[str, dict[str, Any]] = {
    "traces": {
        "trace_id": "warm-up",
        "event_time": "2025-01-01T00:00:00+00:00",
        "model_version": "warm-up",
        "prompt": "warm-up",
        "completion": "warm-up",
        "session_id": "warm-up",
        "user_id": "warm-up",
        "tags": {"warm": "up"},
    },
    "feedback": {
        "event_id": "warm-up",
        "trace_id": "warm-up",
        "event_time": "2025-01-01T00:00:00+00:00",
        "kind": "thumb",
        "label": "up",
        "user_id": "warm-up",
    },
}


@dataclasses.dataclass
class Job:
    topic: str
    partition: int
    stream: str
    first: int
    last: int
    records: int
    future: Future[BatchFiles]
    submitted: float

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.first}-{self.last}"


class Flusher:
    def __init__(self, lake: Lake, cfg: IngestConfig, writers: int = 2, max_pending: int = 4) -> None:
        self.lake = lake
        self.cfg = cfg
        self.max_pending = max_pending
        self.pending: collections.deque[Job] = collections.deque()
        self._pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="ingest-writer")
        self._children: WriterProcesses | None = None
        if cfg.writer_mode == "process":  # one child per writer thread, which hands it batches and waits
            from ingest.child import WriterProcesses

            self._children = WriterProcesses(lake, cfg, writers)

    @property
    def writer_peak_rss_mb(self) -> float:
        """The child processes' peak resident memory, summed (0 in thread mode); known after close."""
        return self._children.peak_rss_mb if self._children is not None else 0.0

    @property
    def writer_restarts(self) -> int:
        """Child processes that died and were replaced (their batches rewritten)."""
        return self._children.restarts if self._children is not None else 0

    def warm_up(self) -> dict[str, int]:
        """Get the writer ready before the first record arrives: in process mode, start the
        child processes (each warms itself up); in thread mode, warm this process up
        (`warm_up`). Returns the rows decoded per stream by the warm-up."""
        if self._children is not None:
            return self._children.start()
        return warm_up(self.cfg.max_record_bytes)

    def submit(self, batch: PartitionBatch) -> Job:
        """Hand the batch's records to the writer; ``batch`` is emptied for the next records."""
        assert batch.first is not None and batch.last is not None
        snapshot = copy.copy(batch)  # shares the record list, which reset() below replaces in `batch`
        batch.reset()
        future = self._pool.submit(self._write, snapshot)
        job = Job(
            snapshot.topic,
            snapshot.partition,
            snapshot.stream,
            snapshot.first or 0,
            snapshot.last or 0,
            len(snapshot),
            future,
            time.monotonic(),
        )
        self.pending.append(job)
        return job

    def _write(self, batch: PartitionBatch) -> BatchFiles:
        if self._children is not None:
            return self._children.write(batch)
        return write_one(self.lake, self.cfg, batch)

    def completed(self, wait: bool = False) -> list[tuple[Job, BatchFiles]]:
        """Finished jobs, oldest first. ``wait``: wait for all; and wait anyway while too many are pending.

        A failed job raises here (its exception), before any later job is returned.
        """
        out = []
        while self.pending:
            job = self.pending[0]
            if not (wait or len(self.pending) > self.max_pending or job.future.done()):
                break
            files = job.future.result()  # raises the writer's error: the caller must not commit
            self.pending.popleft()
            out.append((job, files))
        return out

    def close(self) -> None:
        """Stop the writer; jobs not yet started are dropped (never committed, so replayed)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()
        if self._children is not None:
            self._children.close()


def warm_up(max_record_bytes: int) -> dict[str, int]:
    """Decode and encode one event per stream, in memory, before the first record arrives.

    The first batch otherwise pays for what Arrow does once per process: pyarrow's first
    compute call imports pandas (about 0.5 s here, GIL held: the consumer thread stalls),
    and kernels, regexes and codecs are set up on first use. Returns the rows decoded per
    stream; a warm-up event the bulk path refuses is a bug and raises."""
    rows = {}
    chat = [{"role": "system", "content": "warm\nup"}, {"role": "user", "content": 'say "up"'}]
    for stream, event in [
        *_WARM_UP_EVENTS.items(),
        ("traces", {**_WARM_UP_EVENTS["traces"], "prompt": chat}),
    ]:
        record = Record(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode(), 0, 0, None)
        table = bulk_table(stream, "warm-up", 0, [record], max_record_bytes, 0)
        if table is None:
            raise AssertionError(f"the {stream} warm-up event no longer takes the bulk path")
        write_parquet(table, pa.BufferOutputStream())
        rows[stream] = table.num_rows
    return rows


def write_one(lake: Lake, cfg: IngestConfig, batch: PartitionBatch) -> BatchFiles:
    """Decode ``batch`` and write it durably (ingest/writer.py), retrying the disk or the store;
    in the writer thread (thread mode) or in a child process (process mode, ingest/child.py)."""
    ingested_at = int(time.time() * 1000)
    table, letters = batch.decode(ingested_at)
    c = cfg
    where = f"{batch.topic}[{batch.partition}]@{batch.first}-{batch.last}"
    return with_backoff(
        f"writing {where} to {lake}",
        lambda: write_batch(
            lake,
            batch.stream,
            batch.topic,
            batch.partition,
            batch.first or 0,
            batch.last or 0,
            table,
            letters,
            ingested_at,
        ),
        (OSError,),
        c.retry_backoff_s,
        c.retry_max_backoff_s,
        c.give_up_after_s,
        hint=(
            "check the bucket, the credentials and the endpoint (AWS_ENDPOINT_URL, AWS_PROFILE, "
            "GOOGLE_APPLICATION_CREDENTIALS)"
            if isinstance(lake, ObjectLake)
            else "check free space and permissions of paths.lake"
        )
        + "; nothing was committed, a restart replays",
    )
