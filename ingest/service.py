"""`flywheel ingest`: the always-on consumer from Kafka to the Parquet lake.

One consumer group reads both topics. Each assigned partition has a batch
(ingest/batch.py) that decodes records as they arrive; a batch is flushed when
it reaches its record count, byte size or age. A flush is, in this order:

  1. write the batch's valid rows to ``raw/`` and its bad records to ``dlq/``
     (temporary name, fsync, rename, folder fsync: ingest/writer.py);
  2. only then commit the offset after the batch's last record.

So a committed offset always points past data that is on disk, and anything
uncommitted is replayed and rewritten under the same file names. A failure
between 1 and 2 therefore duplicates nothing. Offsets are never committed
after a failure: the error propagates with the batch unflushed.

While running, those commits are asynchronous: a synchronous one costs a
broker round trip on the consumer thread per batch (about a tenth of the
consume rate). Each commit carries the newest on-disk offset of every owned
partition, so one that fails is covered by the next; before a rebalance and
at the stop, the same offsets are committed synchronously, with retries.

On a rebalance, batches of revoked partitions are flushed and committed if
that works at once, else discarded uncommitted (the next owner replays them).
The first SIGTERM/SIGINT finishes the current batches, commits and returns;
a second one exits immediately. Nothing here depends on the embedded broker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from core import lake as lake_layout
from core.signals import two_stage
from ingest.batch import PartitionBatch
from ingest.config import IngestSettings
from ingest.flusher import Flusher, Job
from ingest.metrics import IngestMetrics
from ingest.retry import with_backoff
from ingest.writer import BatchFiles

log = logging.getLogger(__name__)
_POLL_MS = 250


@dataclasses.dataclass
class IngestStats:
    consumed: int = 0
    written: int = 0
    dead_lettered: int = 0
    files: int = 0
    batches: int = 0
    commits: int = 0
    discarded: int = 0  # records of revoked partitions dropped uncommitted (replayed by the next owner)
    elapsed_s: float = 0.0
    # From the first record to the last one durable and committed (a clean stop), or to the end (a
    # failure): the rate's denominator, without the group join before it and the shutdown after it.
    active_s: float = 0.0
    shutdown_s: float = 0.0  # after that: writer processes stopped, the group left
    # The end of active_s in a clean stop: from the last poll to the last commit, while the batches
    # in flight and those the stop cut short were written (part of active_s).
    drain_s: float = 0.0
    stopped_by: str = ""
    writer_peak_rss_mb: float = 0.0  # process mode: the writer processes' peak memory, summed
    writer_restarts: int = 0  # process mode: writer processes that died and were replaced
    by_stream: dict[str, int] = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        rate = self.consumed / self.active_s if self.active_s > 0 else 0.0
        streams = ", ".join(f"{k} {v}" for k, v in sorted(self.by_stream.items())) or "none"
        return (
            f"ingest stopped ({self.stopped_by}) after {self.elapsed_s:.1f}s: {self.consumed} records consumed "
            f"({rate:.0f}/s; {streams}), {self.written} rows written, {self.dead_lettered} dead-lettered, "
            f"{self.files} files in {self.batches} batches, {self.commits} commits"
            + (f", {self.discarded} records handed over uncommitted" if self.discarded else "")
            + (f", {self.writer_restarts} writer process restarts" if self.writer_restarts else "")
        )


class _Listener(ConsumerRebalanceListener):
    def __init__(self, service: IngestService) -> None:
        self.service = service

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.service.on_revoked(list(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.service.on_assigned(list(assigned))


class IngestService:
    def __init__(self, config: IngestSettings, stop: threading.Event | None = None) -> None:
        self.config = config
        self.cfg = config.ingest
        self.lake = lake_layout.open_lake(config.paths.raw_lake or config.paths.lake)
        self.streams = config.kafka.streams()
        self.stop = stop or threading.Event()
        self.stats = IngestStats()
        self.metrics = IngestMetrics()
        self.batches: dict[TopicPartition, PartitionBatch] = {}
        self.last_activity = time.monotonic()
        self.consumer: KafkaConsumer | None = None
        self.first_record_at: float | None = None
        # Offset after the last batch on disk, per owned partition: what every commit carries.
        self.durable: dict[TopicPartition, OffsetAndMetadata] = {}
        self.confirmed: dict[TopicPartition, OffsetAndMetadata] = {}  # acknowledged by the broker
        self.flusher = Flusher(self.lake, self.cfg)
        self.closing = False  # set once the loop is over: the writer is stopped, nothing more is committed
        self._lag_at = float("-inf")  # when flywheel_ingest_consumer_lag was last updated

    # -- Kafka ------------------------------------------------------------

    def _consumer_kwargs(self) -> dict[str, Any]:
        c = self.cfg
        kwargs = self.config.kafka.client_kwargs()
        kwargs.update(
            group_id=c.group_id,
            enable_auto_commit=False,  # offsets move only after the data is on disk (see module doc)
            auto_offset_reset=c.auto_offset_reset,
            session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=max(100, c.session_timeout_ms // 3),
            max_poll_interval_ms=c.max_poll_interval_ms,
            max_poll_records=c.max_poll_records,
            fetch_max_bytes=c.fetch_max_bytes,
            max_partition_fetch_bytes=c.max_partition_fetch_bytes,
            # Topics are created by operators with their partition count, never by a typo here.
            allow_auto_create_topics=False,
            # kafka-python's own sensors cost CPU per record; we export our own metrics.
            metrics_enabled=False,
        )
        return kwargs

    def connect(self) -> KafkaConsumer:
        c = self.cfg
        kwargs = self._consumer_kwargs()
        deadline = time.monotonic() + c.give_up_after_s

        def attempt() -> KafkaConsumer:
            # kafka-python waits bootstrap_timeout_ms (30 s) per attempt: bound each attempt by
            # what is left of give_up_after_s, so giving up takes that long and no longer.
            left_ms = int((deadline - time.monotonic()) * 1000)
            limit = min(int(kwargs.get("bootstrap_timeout_ms", 30_000)), max(left_ms, 100))
            return KafkaConsumer(**{**kwargs, "bootstrap_timeout_ms": limit})

        consumer: KafkaConsumer = with_backoff(
            f"connecting to Kafka at {self.config.kafka.bootstrap_servers}",
            attempt,
            (KafkaError, OSError),
            c.retry_backoff_s,
            c.retry_max_backoff_s,
            c.give_up_after_s,
            hint="check kafka.bootstrap_servers and the security settings; for development run `flywheel broker`",
            stop=self.stop,
        )
        consumer.subscribe(topics=sorted(self.streams), listener=_Listener(self))
        return consumer

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        c = self.cfg
        plans: dict[str, dict[int, dict[int, int]]] = {}
        for topic in {tp.topic for tp in assigned}:  # one listing of the lake per topic
            mine = {tp.partition for tp in assigned if tp.topic == topic}
            plans[topic] = lake_layout.existing_batches(self.lake, self.streams[topic], topic, mine)
        for tp in assigned:
            stream = self.streams[tp.topic]
            removed = lake_layout.remove_stale_temps(self.lake, stream, tp.topic, tp.partition)
            plan = plans[tp.topic][tp.partition]
            self.batches[tp] = PartitionBatch(
                tp.topic,
                tp.partition,
                stream,
                plan,
                c.batch_max_records,
                c.batch_max_bytes,
                c.batch_max_age_s,
                c.max_record_bytes,
            )
            log.info(
                "partition assigned",
                extra={
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "files_on_disk": len(plan),
                    "temps_removed": removed,
                },
            )
        self.last_activity = time.monotonic()  # joining a group takes seconds; that is not idleness

    def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Flush and commit what is ours before the partitions move; drop (uncommitted) what fails."""
        if self.closing:
            # The consumer's close revokes everything: what the stop had to commit is committed, and
            # after a failure nothing more may be (the next owner replays the rest).
            for tp in revoked:
                self.batches.pop(tp, None)
            return
        for tp in revoked:
            with contextlib.suppress(KeyError):  # the lag of a partition another consumer owns now
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
            batch = self.batches.pop(tp, None)
            if batch is not None and len(batch):
                self.flusher.submit(batch)
        try:
            self.complete(wait=True, give_up_s=0.0)
        except Exception as exc:
            # Not on disk or not committed: the next owner replays these records and,
            # having the same plan, rewrites the same file names.
            dropped = sum(job.records for job in self.flusher.pending)
            self.stats.discarded += dropped
            self.flusher.pending.clear()
            log.warning(
                "revoked batches discarded uncommitted", extra={"records": dropped, "error": repr(exc)}
            )
        for tp in revoked:  # theirs now: a later commit of ours must not move them
            self.durable.pop(tp, None)
            self.confirmed.pop(tp, None)

    # -- batches ------------------------------------------------------------

    def take(self, tp: TopicPartition, records: list[Any]) -> None:
        batch = self.batches.get(tp)
        if batch is None:  # records of a partition we no longer own: its new owner reads them
            return
        self.stats.consumed += len(records)
        self.stats.by_stream[batch.stream] = self.stats.by_stream.get(batch.stream, 0) + len(records)
        self.metrics.consumed.labels(batch.stream).inc(len(records))
        i = 0
        while i < len(records):
            i = batch.add(records, i)
            if i < len(records) or batch.full():
                self.flusher.submit(batch)

    def flush_due(self) -> None:
        now = time.monotonic()
        for batch in self.batches.values():
            if batch.due(now):
                self.flusher.submit(batch)

    def complete(self, wait: bool = False, give_up_s: float | None = None) -> None:
        """Commit past every batch the writer has finished (durably on disk), oldest first.

        This is the only place offsets are committed. A writer failure raises before
        anything from that batch on is committed. ``wait`` (a rebalance or the stop):
        wait for every batch and commit synchronously; otherwise commit asynchronously.
        """
        done = self.flusher.completed(wait=wait)
        for job, files in done:
            # Revoked partitions too: on_revoked commits their last batches, then forgets them.
            self.durable[TopicPartition(job.topic, job.partition)] = OffsetAndMetadata(job.last + 1, "", -1)
            self._record(job, files)
        if not (done or wait):
            return
        offsets = {tp: o for tp, o in self.durable.items() if self.confirmed.get(tp) != o}
        if not offsets:
            return
        where = ", ".join(f"{tp.topic}[{tp.partition}]@{o.offset}" for tp, o in offsets.items())
        if wait:
            self.commit(offsets, where, self.cfg.give_up_after_s if give_up_s is None else give_up_s)
        else:
            self.commit_async(offsets, where)

    def _record(self, job: Job, files: BatchFiles) -> None:
        seconds = time.monotonic() - job.submitted
        s = self.stats
        s.written += files.rows
        s.dead_lettered += files.dead_letters
        s.files += len(files.paths)
        s.batches += 1
        m = self.metrics
        m.written.labels(job.stream).inc(files.rows)
        m.dead_lettered.labels(job.stream).inc(files.dead_letters)
        m.files.labels(job.stream).inc(len(files.paths))
        m.batch_seconds.observe(seconds)
        log.info(
            "batch written",
            extra={
                "topic": job.topic,
                "partition": job.partition,
                "first_offset": job.first,
                "last_offset": job.last,
                "rows": files.rows,
                "dead_letters": files.dead_letters,
                "files": len(files.paths),
                "seconds": round(seconds, 4),
            },
        )

    def commit_async(self, offsets: dict[TopicPartition, OffsetAndMetadata], where: str) -> None:
        """Send the commit and go on; a failure is logged, and the next commit carries the same offsets."""
        assert self.consumer is not None

        def done(_: Any, response: Any) -> None:
            if isinstance(response, Exception):
                self.metrics.commit_failures.inc()
                log.warning(
                    "asynchronous commit failed; the next one carries these offsets",
                    extra={"where": where, "error": repr(response)},
                )
                return
            self.confirmed.update(offsets)
            self.stats.commits += 1
            self.metrics.last_commit.set_to_current_time()

        self.consumer.commit_async(offsets, callback=done)

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], where: str, give_up_s: float) -> None:
        assert self.consumer is not None
        consumer = self.consumer

        def attempt() -> None:
            try:
                consumer.commit(offsets)
            except CommitFailedError:
                # The group rebalanced and the partitions moved on: the data is on disk, and the
                # new owner replays from the older commit, rewriting the same files. Not an error.
                self.metrics.commit_failures.inc()
                log.warning("commit refused after a rebalance; the new owner replays", extra={"where": where})
                raise _Handed() from None

        try:
            with_backoff(
                f"committing {where}",
                attempt,
                (KafkaError,),
                self.cfg.retry_backoff_s,
                self.cfg.retry_max_backoff_s,
                give_up_s,
                hint="the batches are on disk but not committed; a restart replays them into the same files",
            )
        except _Handed:
            return
        self.confirmed.update(offsets)
        self.stats.commits += 1
        self.metrics.last_commit.set_to_current_time()

    # -- the loop -----------------------------------------------------------

    def run(self) -> IngestStats:
        c = self.cfg
        started = time.monotonic()
        self.metrics.serve(c.metrics_port)
        try:
            warm_started = time.monotonic()
            self.flusher.warm_up()
            log.info(
                "writer warmed up",
                extra={"mode": c.writer_mode, "seconds": round(time.monotonic() - warm_started, 3)},
            )
            self.consumer = self.connect()
        except BaseException:
            self.flusher.close()
            self.metrics.close()
            raise
        self.last_activity = time.monotonic()
        log.info(
            "ingest running",
            extra={"topics": sorted(self.streams), "group_id": c.group_id, "lake": str(self.lake)},
        )
        try:
            with fewer_collections():
                self.stats.stopped_by = self._loop()
                last_poll = time.monotonic()
                # Clean stop: finish every batch and commit it.
                for batch in self.batches.values():
                    if len(batch):
                        self.flusher.submit(batch)
                self.complete(wait=True)
            done = time.monotonic()
            self.stats.active_s = done - (self.first_record_at or done)
            self.stats.drain_s = done - last_poll if self.first_record_at is not None else 0.0
        finally:
            self.closing = True
            self.flusher.close()
            # autocommit=False: never commit a position whose data is not on disk.
            self.consumer.close(autocommit=False)
            self.metrics.close()
            ended = time.monotonic()
            self.stats.elapsed_s = ended - started
            if not self.stats.active_s:
                self.stats.active_s = ended - (self.first_record_at or ended)
            elif self.first_record_at is not None:
                self.stats.shutdown_s = ended - self.first_record_at - self.stats.active_s
            self.stats.writer_peak_rss_mb = self.flusher.writer_peak_rss_mb
            self.stats.writer_restarts = self.flusher.writer_restarts
        log.info("ingest stopped", extra=dataclasses.asdict(self.stats))
        return self.stats

    def _loop(self) -> str:
        assert self.consumer is not None
        c = self.cfg
        # Joining takes seconds, and after a crash the group waits for the dead member's session
        # to expire first; idleness counts only after an assignment, or after three session
        # timeouts without one (a surplus replica with no partition is idle too).
        joined_by = time.monotonic() + 3 * c.session_timeout_ms / 1000
        while not self.stop.is_set():
            max_records = c.max_poll_records
            if c.max_messages is not None:
                left = c.max_messages - self.stats.consumed
                if left <= 0:
                    return "max_messages"
                max_records = min(max_records, left)
            polled = self.consumer.poll(timeout_ms=_POLL_MS, max_records=max_records)
            if polled:
                self.last_activity = time.monotonic()
                if self.first_record_at is None:
                    self.first_record_at = self.last_activity
                for tp, records in polled.items():
                    self.take(tp, records)
            elif self._idle(joined_by):
                return "idle_timeout"
            self.update_lag()
            self.flush_due()
            self.complete()
        return "signal"

    def update_lag(self) -> None:
        """``flywheel_ingest_consumer_lag`` per assigned partition: the broker's high watermark
        (as of the last fetch) minus this consumer's position; at most once a second."""
        now = time.monotonic()
        if self.consumer is None or now - self._lag_at < _LAG_EVERY_S:
            return
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue  # no fetch response for it yet
            try:
                position = self.consumer.position(tp)
            except Exception:  # a gauge never stops the consumer
                continue
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))
            self._lag_at = now  # throttled once something was measured

    def _idle(self, joined_by: float) -> bool:
        limit = self.cfg.idle_timeout_s
        if limit is None or not (self.batches or time.monotonic() > joined_by):
            return False
        return time.monotonic() - self.last_activity >= limit


_LAG_EVERY_S = 1.0
# Allocations (minus deallocations) of container objects between two young-generation garbage
# collections while ingest runs; Python's default is 700. kafka-python makes a few such objects per
# record and a batch keeps 10,000 records alive, so at 700 the collector runs every few hundred
# records and its older generations keep walking the batches held, on the consumer thread
# (`python -m benchmarks ingest` reports the collections). Reference counting frees almost
# everything ingest allocates; cycles are rare, and are still collected, less often.
_YOUNG_COLLECTION_EVERY = 50_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect garbage less often while the consumer runs (_YOUNG_COLLECTION_EVERY); restored after."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], _YOUNG_COLLECTION_EVERY), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


class _Handed(Exception):
    """A commit refused because the partition was handed to another consumer."""


def run(config: IngestSettings, stop: threading.Event | None = None) -> IngestStats:
    """Consume both topics into the lake until a signal, ``max_messages`` or ``idle_timeout_s``.

    First SIGTERM/SIGINT: finish the current batches, commit, return. Second: exit now.
    """
    event = stop or threading.Event()
    with stop_on_signals(event):
        return IngestService(config, event).run()


def stop_on_signals(stop: threading.Event) -> contextlib.AbstractContextManager[None]:
    """First SIGTERM/SIGINT sets ``stop`` (the loop finishes its batches and commits); a second one
    exits at once (core.signals.two_stage)."""

    def finish(signum: int) -> None:
        log.info("signal received: finishing the current batches, then stopping", extra={"signal": signum})
        stop.set()

    return two_stage(finish)
