"""Helpers for ingest tests: read what the service left in the lake and in the group."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from core import lake as lake_layout


def files(lake: Path, kind: str = "raw", stream: str = "*") -> list[Path]:
    return sorted(lake.glob(f"{kind}/{stream}/dt=*/*.parquet"))


def temps(lake: Path) -> list[Path]:
    return sorted(p for p in lake.rglob("*") if p.name.endswith(lake_layout.TMP_SUFFIX))


def read(lake: Path, kind: str, stream: str) -> pa.Table | None:
    found = files(lake, kind, stream)
    if not found:
        return None
    return pa.concat_tables([pq.read_table(p) for p in found])


def ids(lake: Path, stream: str, column: str) -> list[str]:
    table = read(lake, "raw", stream)
    return [] if table is None else table.column(column).to_pylist()


def offsets_on_disk(lake: Path) -> dict[tuple[str, int], list[int]]:
    """(topic, partition) -> every offset found in raw and dlq files, sorted."""
    out: dict[tuple[str, int], list[int]] = defaultdict(list)
    for kind in ("raw", "dlq"):
        for path in files(lake, kind):
            t = pq.read_table(path, columns=["_topic", "_partition", "_offset"])
            for topic, part, off in zip(*(t.column(i).to_pylist() for i in range(3)), strict=True):
                out[(topic, part)].append(off)
    return {k: sorted(v) for k, v in out.items()}


def committed(config: Any, partitions: int = 4) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(
        bootstrap_servers=config.kafka.bootstrap_servers,
        group_id=config.ingest.group_id,
        enable_auto_commit=False,
    )
    try:
        out = {}
        for topic in (config.kafka.traces_topic, config.kafka.feedback_topic):
            for p in range(partitions):
                off = consumer.committed(TopicPartition(topic, p))
                out[(topic, p)] = off or 0
        return out
    finally:
        consumer.close(autocommit=False)


def wait_for(cond: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def scrape(port: int, name: str) -> float:
    """Sum of a Prometheus metric's samples (0 when the endpoint is not up yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except (OSError, ConnectionError):
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def trace_event(i: int, **extra: Any) -> bytes:
    doc = {
        "trace_id": f"tr-{i}",
        "event_time": "2025-03-01T10:00:00+01:00",
        "model_version": "v1",
        "prompt": f"question {i}",
        "completion": f"answer {i}",
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def feedback_event(i: int, **extra: Any) -> bytes:
    doc = {
        "event_id": f"fb-{i}",
        "trace_id": f"tr-{i}",
        "event_time": "2025-03-01T10:05:00Z",
        "label": "down",
    }
    doc.update(extra)
    return json.dumps(doc).encode()
