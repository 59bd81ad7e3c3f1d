"""Ingest throughput against raw kafka-python on the same topics, in the same run.

    python -m benchmarks ingest            (BENCH_INGEST_EVENTS=1000000 by default)
    BENCH_INGEST_PROMPTS=text python -m benchmarks ingest   (trace prompts as one string, not chat)
    BENCH_INGEST_LAKE=s3 python -m benchmarks ingest     (the lake in S3: moto's server on loopback,
                                                          in its own process at nice 19)
    BENCH_INGEST_MIX=1 python -m benchmarks ingest       (as many feedback events as traces)

1. Start the embedded broker (4 partitions a topic, as `flywheel broker` and infra/ create them),
   produce N events in production's mix: BENCH_INGEST_MIX traces (20 by default; production
   sees 20 to 100) for each feedback event. A trace is ~550 bytes, its prompt a chat
   conversation (a system and a user message) unless BENCH_INGEST_PROMPTS=text; a feedback
   event ~220 bytes. Events are stamped with one day, but one in BENCH_INGEST_LATE (100) with the
   day before, as late arrivals are: most batches are written as two files, one per day.
2. Baseline: a bare KafkaConsumer (same fetch settings) reads all N and does nothing with them.
3. Ours: the ingest service reads the same N into the lake (validate, Arrow, zstd Parquet,
   fsync, rename, commit), once with ``ingest.writer_mode = "thread"`` and once with "process".
   All run in fresh processes, alternating (raw, thread, process), five times each
   (BENCH_INGEST_ROUNDS); rates count
   from the first record to the last one on disk and committed (group joins are excluded from all,
   and so is ingest's shutdown after its last commit: stopping the writers, leaving the group,
   which the raw consumer never does; it is printed apart). Each mode's
   ratio is the median of its ratios to the raw run of the same round, which cancels most
   of the drift when other work shares the machine.
4. Peak memory: the ingest process's peak RSS plus, in process mode, its writer processes' peaks.
5. Latency: with ingest running live (batch_max_age_s = 1), events produced at a steady rate;
   produce-to-durable = file mtime (written and fsynced) - the record's Kafka timestamp (local
   lake), or the time the writer's answer reached the service - the Kafka timestamp (S3 lake,
   whose objects have no usable mtime), from the service's "batch written" log lines.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Ingest is always on, so what counts is its sustained rate. Whatever the run's length, it ends with
# a drain of about 0.3-0.4 s here (the batches in flight, and the partial batch of each of the eight
# partitions, written after the last poll; printed): over 200,000 events that is a tenth of the run,
# over a million a fiftieth.
N = int(os.environ.get("BENCH_INGEST_EVENTS", "1000000"))
LAKE = os.environ.get("BENCH_INGEST_LAKE", "local")
# Trace prompts as chat conversations (as chat apps send them), or as one string.
PROMPTS = os.environ.get("BENCH_INGEST_PROMPTS", "chat")
# Rounds of (raw, thread, process). On a shared 2-core VM raw kafka-python alone has swung from 50k
# to 111k events/s between rounds minutes apart; five rounds give the median room.
ROUNDS = int(os.environ.get("BENCH_INGEST_ROUNDS", "5"))
# Traces per feedback event: production apps see 20 to 100 (most answers get no vote).
MIX = int(os.environ.get("BENCH_INGEST_MIX", "20"))
# One event in LATE is stamped the day before (a late arrival); the rest are stamped the same day.
LATE = int(os.environ.get("BENCH_INGEST_LATE", "100"))
MODES = ("thread", "process")
# The S3 lake's server (moto) runs at this niceness; its pid, once started.
STORE_NICENESS = 19
_STORE_PID: list[int] = []
ROOT = Path(__file__).resolve().parents[1]


def _config(bootstrap: str, traces: str, feedback: str, lake: str, group: str, **extra: Any) -> Any:
    from flywheel import config as cfg

    values = {
        "kafka.bootstrap_servers": bootstrap,
        "kafka.traces_topic": traces,
        "kafka.feedback_topic": feedback,
        "paths.lake": lake,
        "ingest.group_id": group,
        "ingest.session_timeout_ms": 6000,
        **extra,
    }
    return cfg.load(None, env={}, overrides=values)


def _event(i: int, stream: str) -> bytes:
    # Apps stamp events as they happen, so a batch holds one day's events, but for late arrivals
    # (clients that were offline): one in LATE comes from the day before, and its batch is split in two.
    day = 1 if i % LATE == LATE - 1 else 2
    when = f"2025-05-0{day}T{i % 24:02d}:{i % 60:02d}:00.{i % 999:03d}+00:00"
    if stream == "traces":
        question = f"Question number {i}: how do I configure the retention of a Kafka topic for a week?"
        doc: dict[str, Any] = {
            "trace_id": f"trace-{i:09d}",
            "event_time": when,
            "model_version": f"v{i % 3}",
            "prompt": question
            if PROMPTS == "text"
            else [
                {"role": "system", "content": "You answer questions about running Kafka.\nBe brief."},
                {"role": "user", "content": question},
            ],
            "completion": "Set retention.ms to 604800000 on the topic with kafka-configs, then check it with "
            "--describe; segments older than that are deleted in the background.",
            "user_id": f"user-{i % 5000}",
            "session_id": f"s-{i // 20}",
            "tags": {"workload": "chat", "locale": "en"},
        }
    else:
        doc = {
            "event_id": f"ev-{i:09d}",
            "trace_id": f"trace-{i:09d}",
            "event_time": when,
            "kind": "thumb",
            "label": "down" if i % 3 else "up",
            "user_id": f"user-{i % 5000}",
            "comment": "too long, and the second half did not answer the question",
        }
    return json.dumps(doc, separators=(",", ":")).encode()


def _produce(config: Any, n: int, rate: float = 0.0) -> None:
    from ingest.producer import EventProducer

    with EventProducer(config.kafka, linger_ms=20, batch_size=256 * 1024) as out:
        began = time.monotonic()
        for i in range(n):
            stream = "feedback" if i % (MIX + 1) == MIX else "traces"
            topic = config.kafka.traces_topic if stream == "traces" else config.kafka.feedback_topic
            out.send_raw(topic, _event(i, stream), key=str(i).encode())
            if rate and i % 100 == 0 and (ahead := i / rate - (time.monotonic() - began)) > 0:
                time.sleep(ahead)


# -- workers (fresh processes, so their peak RSS is their own) ------------------------


def _worker_raw(config: Any, n: int) -> dict[str, Any]:
    from kafka import KafkaConsumer

    from ingest.service import IngestService

    kwargs = IngestService(config)._consumer_kwargs()  # the very same fetch settings
    consumer = KafkaConsumer(**kwargs)
    consumer.subscribe([config.kafka.traces_topic, config.kafka.feedback_topic])
    seen, first, nbytes = 0, 0.0, 0
    collections = sum(s["collections"] for s in gc.get_stats())
    while seen < n:
        for records in consumer.poll(timeout_ms=500).values():
            if not first:
                first = time.monotonic()
            seen += len(records)
            nbytes += sum(len(r.value) for r in records)
    elapsed = time.monotonic() - first
    consumer.close(autocommit=False)
    return {
        "records": seen,
        "seconds": elapsed,
        "bytes": nbytes,
        "gc_collections": sum(s["collections"] for s in gc.get_stats()) - collections,
    }


def _worker_ingest(config: Any, n: int, mode: str) -> dict[str, Any]:
    from ingest.service import IngestService

    service = IngestService(config.replace(**{"ingest.max_messages": n, "ingest.writer_mode": mode}))
    collections = sum(s["collections"] for s in gc.get_stats())
    stats = service.run()
    return {
        "gc_collections": sum(s["collections"] for s in gc.get_stats()) - collections,
        "shutdown_s": stats.shutdown_s,
        "drain_s": stats.drain_s,
        "records": stats.consumed,
        "seconds": stats.active_s,
        "written": stats.written,
        "files": stats.files,
        "writer_rss_mb": stats.writer_peak_rss_mb,
    }


def _steal_s() -> float:
    """CPU time the hypervisor gave other machines while this one wanted it (all cores, seconds;
    0 where /proc/stat is missing): on a shared VM, the cause of most rounds that fall out of line."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _cpu_s(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (seconds; 0 without /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _run_worker(kind: str, config_path: Path, env: dict[str, str]) -> dict[str, Any]:
    steal = _steal_s()
    store = sum(map(_cpu_s, _STORE_PID))
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_ingest", kind, str(config_path), str(N)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed: {out.stderr[-2000:]}")
    result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    result["steal_s"] = _steal_s() - steal
    result["store_cpu_s"] = sum(map(_cpu_s, _STORE_PID)) - store
    return result


class _Written(logging.Handler):
    """The service's "batch written" lines: when each batch's answer (durable) reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[str, int, int, int, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "batch written":
            r: Any = record
            self.batches.append((r.topic, r.partition, r.first_offset, r.last_offset, record.created * 1000))


def _latency(broker: Any, lake_url: str, mode: str) -> tuple[float, float, int]:
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from core import lake as lake_layout
    from core.lake import ObjectLake, open_lake
    from ingest.service import run as ingest

    tag = uuid.uuid4().hex[:8]
    traces, feedback = f"lat{tag}.traces", f"lat{tag}.feedback"
    broker.create_topics([traces, feedback])
    config = _config(
        broker.bootstrap,
        traces,
        feedback,
        lake_url,
        f"lat{tag}",
        **{"ingest.batch_max_age_s": 1.0, "ingest.writer_mode": mode},
    )
    written = _Written()
    service_log = logging.getLogger("ingest.service")
    service_log.addHandler(written)
    service_log.setLevel(logging.INFO)
    stop = threading.Event()
    worker = threading.Thread(target=ingest, args=(config, stop))
    worker.start()
    time.sleep(4)  # the group's first assignment
    _produce(config, 10_000, rate=2000.0)
    time.sleep(3)
    stop.set()
    worker.join()
    service_log.removeHandler(written)
    lake = open_lake(lake_url)
    latencies = []
    if isinstance(lake, ObjectLake):  # no usable mtime: the time the service heard the batch was durable
        durable = {(t, p, first): ms for t, p, first, _, ms in written.batches}
        selector = pafs.FileSelector(lake.path("raw"), recursive=True)
        for info in lake.fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            topic, partition, first, _ = lake_layout.parse_name(info.base_name) or ("", 0, 0, 0)
            stamps = pq.read_table(info.path, columns=["_kafka_timestamp"], filesystem=lake.fs).column(0)
            when = durable[(topic, partition, first)]
            latencies += [when - ts for ts in stamps.cast("int64").to_pylist()]
    else:
        for path in Path(lake).glob("raw/*/dt=*/*.parquet"):
            durable_ms = path.stat().st_mtime * 1000
            for ts in pq.read_table(path, columns=["_kafka_timestamp"]).column(0).cast("int64").to_pylist():
                latencies.append(durable_ms - ts)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    return p50, p99, len(latencies)


@contextlib.contextmanager
def _lake_root(tmp: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The folder or bucket the runs' lakes go under, and the environment the workers need."""
    if LAKE == "local":
        yield str(tmp), dict(os.environ)
        return
    if LAKE != "s3":
        raise SystemExit(f"BENCH_INGEST_LAKE must be local or s3, not {LAKE!r}")
    import pyarrow.fs as pafs

    from flywheel.dev.broker import free_port

    # The store in a process of its own at the lowest CPU priority: in production it is another
    # machine, whose CPU the consumer and the writers never compete with; here it gets what is left.
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    server = subprocess.Popen(
        ["nice", "-n", str(STORE_NICENESS), str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _STORE_PID.append(server.pid)
    endpoint = f"http://127.0.0.1:{port}"
    aws = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in aws}
    os.environ.update(aws)
    try:
        store = pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1", allow_bucket_creation=True)
        for _ in range(100):  # moto takes a few seconds to import
            try:
                store.create_dir("bench")
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"moto_server did not answer on {endpoint}")
        yield "s3://bench", dict(os.environ)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.terminate()
        server.wait()


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    from flywheel.config import write_resolved
    from flywheel.dev.broker import EmbeddedBroker

    with (
        tempfile.TemporaryDirectory() as tmpdir,
        EmbeddedBroker(topics=("bench.traces", "bench.feedback")) as broker,
        _lake_root(Path(tmpdir)) as (root, env),
    ):
        tmp = Path(tmpdir)
        load = os.getloadavg()[0]
        print(
            f"lake: {LAKE} ({root}); prompts: {PROMPTS}; {MIX} traces per feedback event; "
            f"load average before: {load:.2f}",
            flush=True,
        )
        started = time.monotonic()
        base = _config(broker.bootstrap, "bench.traces", "bench.feedback", f"{root}/lake", "unused")
        _produce(base, N)
        print(f"produced {N} events in {time.monotonic() - started:.1f}s", flush=True)
        rounds: list[dict[str, dict[str, Any]]] = []
        for attempt in range(ROUNDS):
            one: dict[str, dict[str, Any]] = {}
            for kind in ("raw", *MODES):
                config = base.replace(
                    **{
                        "paths.lake": f"{root}/lake-{kind}-{attempt}",
                        "ingest.group_id": f"bench-{kind}-{attempt}",
                    }
                )
                result = _run_worker(kind, write_resolved(config, tmp / f"{kind}-{attempt}.toml"), env)
                result["rate"] = result["records"] / result["seconds"]
                one[kind] = result
            steal = ", ".join(f"{kind} {one[kind]['steal_s']:.1f}" for kind in one)
            line = f"  round {attempt + 1} (load {os.getloadavg()[0]:.2f}; CPU stolen by the host, s: {steal}"
            if _STORE_PID:
                line += "; S3 server's CPU, s: " + ", ".join(
                    f"{m} {one[m]['store_cpu_s']:.1f}" for m in MODES
                )
            line += f"):\n    raw {one['raw']['rate']:>7,.0f}/s"
            for mode in MODES:
                assert one[mode]["written"] == N, f"{mode} ingest wrote {one[mode]['written']} rows of {N}"
                one[mode]["ratio"] = one[mode]["rate"] / one["raw"]["rate"]
                one[mode]["peak_mb"] = one[mode]["rss_mb"] + one[mode]["writer_rss_mb"]
                line += (
                    f", {mode} {one[mode]['rate']:>7,.0f}/s (ratio {one[mode]['ratio']:.2f}, "
                    f"peak {one[mode]['peak_mb']:.0f} MB)"
                )
            print(line, flush=True)
            rounds.append(one)
        latency = {mode: _latency(broker, f"{root}/latency-{mode}", mode) for mode in MODES}
    raw_rate = _median([r["raw"]["rate"] for r in rounds])
    print(f"raw kafka-python consume: {raw_rate:,.0f} events/s (median; same topics, same fetch settings)")
    for mode in MODES:
        ratios = [r[mode]["ratio"] for r in rounds]
        rate = _median([r[mode]["rate"] for r in rounds])
        peak = max(r[mode]["peak_mb"] for r in rounds)
        writers = max(r[mode]["writer_rss_mb"] for r in rounds)
        p50, p99, count = latency[mode]
        print(f"ingest, writer_mode = {mode}:")
        print(f"  rate:               {rate:,.0f} events/s ({rounds[0][mode]['files']} files)")
        print(
            f"  ratio ingest/raw:   {_median(ratios):.2f} median of {', '.join(f'{x:.2f}' for x in ratios)} "
            "(target >= 0.85)"
        )
        print(
            f"  peak memory:        {peak:.0f} MB (worst run, ingest process"
            + (f" + {writers:.0f} MB of writer processes" if writers else "")
            + f"; raw consumer {max(r['raw']['rss_mb'] for r in rounds):.0f} MB)"
        )
        print(
            f"  after the last poll:  {_median([r[mode]['drain_s'] for r in rounds]):.2f} s to write and commit "
            "the batches in flight and those the end cut short (median; in the rate)"
        )
        print(
            f"  after the last commit: {_median([r[mode]['shutdown_s'] for r in rounds]):.2f} s to stop the "
            "writers and leave the group (median; not in the rate)"
        )
        print(
            f"  garbage collections: {_median([r[mode]['gc_collections'] for r in rounds]):.0f} "
            f"(raw consumer {_median([r['raw']['gc_collections'] for r in rounds]):.0f}; medians)"
        )
        print(
            f"  produce-to-durable: p50 {p50:.0f} ms, p99 {p99:.0f} ms over {count} events "
            f"at 2000 events/s, batch_max_age_s = 1"
        )


def _worker_main(argv: list[str]) -> None:
    from flywheel import config as cfg

    kind, config_path, n = argv[0], argv[1], int(argv[2])
    config = cfg.load(config_path, env={})
    result = _worker_raw(config, n) if kind == "raw" else _worker_ingest(config, n, kind)
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
