"""Ingest throughput against raw kafka-python on the same topics, in the same run.

    python -m benchmarks ingest            (BENCH_INGEST_EVENTS=200000 by default)

1. Start the embedded broker, produce N events (half traces, half feedback, ~350 bytes each).
2. Baseline: a bare KafkaConsumer (same fetch settings) reads all N and does nothing with them.
3. Ours: the ingest service reads the same N into the lake (validate, Arrow, zstd Parquet,
   fsync, rename, commit). Both run in fresh processes, alternating, three times each; rates
   count from the first record to the last one on disk (group joins are excluded from both).
   The ratio is the median of the three adjacent (raw, ingest) pairs, which cancels most of
   the drift when other work shares the machine.
4. Latency: with ingest running live (batch_max_age_s = 1), events produced at a steady rate;
   produce-to-durable = file mtime (written and fsynced) - the record's Kafka timestamp.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

N = int(os.environ.get("BENCH_INGEST_EVENTS", "200000"))
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
    when = f"2025-05-0{1 + i % 3}T{i % 24:02d}:{i % 60:02d}:00.{i % 999:03d}+00:00"
    if stream == "traces":
        doc: dict[str, Any] = {
            "trace_id": f"trace-{i:09d}",
            "event_time": when,
            "model_version": f"v{i % 3}",
            "prompt": f"Question number {i}: how do I configure the retention of a Kafka topic for a week?",
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
            stream = "traces" if i % 2 == 0 else "feedback"
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
    while seen < n:
        for records in consumer.poll(timeout_ms=500).values():
            if not first:
                first = time.monotonic()
            seen += len(records)
            nbytes += sum(len(r.value) for r in records)
    elapsed = time.monotonic() - first
    consumer.close(autocommit=False)
    return {"records": seen, "seconds": elapsed, "bytes": nbytes}


def _worker_ingest(config: Any, n: int) -> dict[str, Any]:
    from ingest.service import IngestService

    service = IngestService(config.replace(**{"ingest.max_messages": n}))
    stats = service.run()
    return {
        "records": stats.consumed,
        "seconds": stats.active_s,
        "written": stats.written,
        "files": stats.files,
    }


def _run_worker(kind: str, config_path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_ingest", kind, str(config_path), str(N)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _latency(broker: Any, tmp: Path) -> tuple[float, float, int]:
    import pyarrow.parquet as pq

    from ingest.service import run as ingest

    tag = uuid.uuid4().hex[:8]
    traces, feedback = f"lat{tag}.traces", f"lat{tag}.feedback"
    broker.create_topics([traces, feedback])
    lake = tmp / "latency-lake"
    config = _config(
        broker.bootstrap, traces, feedback, str(lake), f"lat{tag}", **{"ingest.batch_max_age_s": 1.0}
    )
    stop = threading.Event()
    worker = threading.Thread(target=ingest, args=(config, stop))
    worker.start()
    time.sleep(4)  # the group's first assignment
    _produce(config, 10_000, rate=2000.0)
    time.sleep(3)
    stop.set()
    worker.join()
    latencies = []
    for path in lake.glob("raw/*/dt=*/*.parquet"):
        durable_ms = path.stat().st_mtime * 1000
        for ts in pq.read_table(path, columns=["_kafka_timestamp"]).column(0).cast("int64").to_pylist():
            latencies.append(durable_ms - ts)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    return p50, p99, len(latencies)


def main() -> None:
    from flywheel.config import write_resolved
    from flywheel.dev.broker import EmbeddedBroker

    with (
        tempfile.TemporaryDirectory() as tmpdir,
        EmbeddedBroker(topics=("bench.traces", "bench.feedback")) as broker,
    ):
        tmp = Path(tmpdir)
        started = time.monotonic()
        base = _config(broker.bootstrap, "bench.traces", "bench.feedback", str(tmp / "lake"), "unused")
        _produce(base, N)
        print(f"produced {N} events in {time.monotonic() - started:.1f}s", flush=True)
        pairs: list[dict[str, dict[str, Any]]] = []
        for attempt in range(3):
            pair: dict[str, dict[str, Any]] = {}
            for kind in ("raw", "ingest"):
                lake = tmp / f"lake-{kind}-{attempt}"
                config = base.replace(
                    **{"paths.lake": str(lake), "ingest.group_id": f"bench-{kind}-{attempt}"}
                )
                result = _run_worker(kind, write_resolved(config, tmp / f"{kind}-{attempt}.toml"))
                result["rate"] = result["records"] / result["seconds"]
                pair[kind] = result
            assert pair["ingest"]["written"] == N, f"ingest wrote {pair['ingest']['written']} rows of {N}"
            ratio = pair["ingest"]["rate"] / pair["raw"]["rate"]
            print(
                f"  pair {attempt + 1}: raw {pair['raw']['rate']:>7,.0f}/s, ingest {pair['ingest']['rate']:>7,.0f}/s, "
                f"ratio {ratio:.2f}, ingest peak RSS {pair['ingest']['rss_mb']:.0f} MB",
                flush=True,
            )
            pairs.append(pair)
        pairs.sort(key=lambda p: p["ingest"]["rate"] / p["raw"]["rate"])
        raw, ours = pairs[1]["raw"], pairs[1]["ingest"]
        rss = max(p["ingest"]["rss_mb"] for p in pairs)
        p50, p99, count = _latency(broker, tmp)
    print(
        f"raw kafka-python consume: {raw['rate']:,.0f} events/s (baseline, same topics, same fetch settings)"
    )
    print(f"flywheel ingest:          {ours['rate']:,.0f} events/s ({ours['files']} files)")
    print(f"ratio ingest/raw:         {ours['rate'] / raw['rate']:.2f} (median of 3 pairs; target >= 0.85)")
    print(
        f"peak RSS of ingest:       {rss:.0f} MB (worst run; target <= 400; raw consumer {raw['rss_mb']:.0f} MB)"
    )
    print(
        f"produce-to-durable:       p50 {p50:.0f} ms, p99 {p99:.0f} ms over {count} events "
        f"at 2000 events/s, batch_max_age_s = 1"
    )


def _worker_main(argv: list[str]) -> None:
    from flywheel import config as cfg

    kind, config_path, n = argv[0], argv[1], int(argv[2])
    config = cfg.load(config_path, env={})
    result = _worker_raw(config, n) if kind == "raw" else _worker_ingest(config, n)
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
