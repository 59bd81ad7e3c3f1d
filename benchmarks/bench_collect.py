"""The collector under load: `flywheel collect` (a separate process, uvicorn) on the embedded broker,
driven by concurrent keep-alive HTTP clients, against producing the same events directly with
kafka-python (EventProducer, acks=all) in the same run. Prints events/s, p50 and p99 latency (a
request until its 202, which waits for Kafka's acknowledgement; for the direct producer, a send
until its acknowledgement) and the ratio of the two rates."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

CLIENTS = 16
SINGLE = 4000  # events sent one per request (browser thumbs)
BATCH = 50
BATCHED = 40_000  # events sent BATCH per request (an app's backend)
KEY = "bench-key"


def _event(i: int) -> dict[str, Any]:
    return {
        "event_id": f"e-{i}-{uuid.uuid4().hex[:8]}",
        "trace_id": f"tr-{i}",
        "event_time": "2026-03-01T10:00:00Z",
        "label": "up" if i % 3 else "down",
        "user_id": f"u{i % 97}",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


def _load(port: int, total: int, batch: int) -> tuple[float, list[float]]:
    bodies = [
        json.dumps([_event(i) for i in range(start, start + batch)] if batch > 1 else _event(start)).encode()
        for start in range(0, total, batch)
    ]
    latencies: list[float] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def client(mine: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        local = []
        for body in mine:
            t0 = time.perf_counter()
            conn.request("POST", "/v1/feedback", body, headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 202, (response.status, response.reason)
            local.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=client, args=(bodies[k::CLIENTS],)) for k in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return total / (time.perf_counter() - start), latencies


def _direct(config: Any, total: int) -> tuple[float, list[float]]:
    from ingest.producer import EventProducer

    payloads = [
        (json.dumps(_event(i), separators=(",", ":")).encode(), f"tr-{i}".encode()) for i in range(total)
    ]
    latencies: list[float] = []
    with EventProducer(config.kafka) as producer:
        start = time.perf_counter()
        for value, key in payloads:
            t0 = time.perf_counter()
            future = producer.send_raw(config.kafka.feedback_topic, value, key)
            future.add_callback(lambda _, t0=t0: latencies.append(time.perf_counter() - t0))
        producer.flush()
        rate = total / (time.perf_counter() - start)
    return rate, latencies


def main() -> None:
    from flywheel import config as cfg
    from flywheel.dev.broker import EmbeddedBroker

    with EmbeddedBroker(topics=("bench.traces", "bench.feedback")) as broker:
        config = cfg.load(
            None,
            env={},
            overrides={
                "kafka.bootstrap_servers": broker.bootstrap,
                "kafka.traces_topic": "bench.traces",
                "kafka.feedback_topic": "bench.feedback",
            },
        )
        port = _free_port()
        env = {**os.environ, "COLLECT_API_KEYS": f"bench={KEY}"}
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "flywheel.cli", "collect"),
                *("--port", str(port), "--bootstrap-servers", broker.bootstrap),
                *("--set", "kafka.traces_topic=bench.traces", "--set", "kafka.feedback_topic=bench.feedback"),
                *("--rate", "1e9", "--burst", "1e9", "--log-level", "WARNING"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    assert time.monotonic() < deadline and server.poll() is None, "collector did not start"
                    time.sleep(0.2)
            _load(port, 200, 1)  # warm up
            direct_rate, direct_lat = _direct(config, BATCHED)
            d50, d99 = _percentiles(direct_lat)
            print(
                f"  direct kafka-python (acks=all): {direct_rate:>8,.0f} events/s, ack p50 {d50:.1f} ms, p99 {d99:.1f} ms"
            )
            for label, total, batch in (
                ("single events", SINGLE, 1),
                (f"batches of {BATCH}", BATCHED, BATCH),
            ):
                rate, lat = _load(port, total, batch)
                p50, p99 = _percentiles(lat)
                print(
                    f"  collector, {label}, {CLIENTS} clients: {rate:>8,.0f} events/s, request p50 {p50:.1f} ms,"
                    f" p99 {p99:.1f} ms, ratio to direct {rate / direct_rate:.2f}",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
