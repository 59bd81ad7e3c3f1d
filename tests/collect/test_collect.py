"""The collector end to end: real HTTP on loopback (uvicorn) into the embedded broker, then ingest
into the lake."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from collect.app import Settings, TokenBucket, build_app, digest, parse_keys
from ingest import service
from ingest.producer import EventProducer
from tests.ingest.lakeutil import read

pytestmark = pytest.mark.broker
KEY = "k-test-secret"
ORIGIN = "https://app.example"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    def __init__(self, config: Any, **settings: Any) -> None:
        self.port = _free_port()
        opts = {"api_keys": {"app": digest(KEY)}, "allowed_origins": (ORIGIN,), **settings}
        app = build_app(Settings(**opts), config.kafka, lambda: EventProducer(config.kafka))
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the collector did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()


AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


@pytest.fixture
def collector(broker_config: Any) -> Iterator[Running]:
    with Running(broker_config) as running:
        yield running


def test_a_browser_thumb_and_a_batch_reach_the_lake(collector: Running, broker_config: Any):
    # the browser's CORS preflight, then the request with its Origin
    status, headers, _ = collector.call(
        "OPTIONS",
        "/v1/feedback",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in headers["access-control-allow-headers"].lower()
    trace = {"trace_id": "tr-1", "model_version": "v1", "prompt": "hi", "completion": "hello"}
    status, _, body = collector.call("POST", "/v1/traces", trace, AUTH)
    assert (status, json.loads(body)) == (202, {"ids": ["tr-1"]})
    thumb = {"trace_id": "tr-1", "label": "up", "user_id": "u1"}
    status, headers, body = collector.call("POST", "/v1/feedback", thumb, {**AUTH, "Origin": ORIGIN})
    assert status == 202 and headers["access-control-allow-origin"] == ORIGIN
    (thumb_id,) = json.loads(body)["ids"]
    batch = [
        {"event_id": "r1", "trace_id": "tr-1", "kind": "rating", "score": 4, "scale": {"min": 1, "max": 5}},
        {"event_id": "r2", "trace_id": "tr-1", "kind": "rating", "label": "helpful"},
    ]
    status, _, body = collector.call("POST", "/v1/feedback", batch, AUTH)
    assert (status, json.loads(body)) == (202, {"ids": ["r1", "r2"]})

    service.run(broker_config.replace(**{"ingest.idle_timeout_s": 3.0}))
    lake = Path(broker_config.paths.lake)
    traces, feedback = read(lake, "raw", "traces"), read(lake, "raw", "feedback")
    assert traces is not None and traces.column("trace_id").to_pylist() == ["tr-1"]
    assert feedback is not None
    rows = {r["event_id"]: r for r in feedback.to_pylist()}
    assert set(rows) == {thumb_id, "r1", "r2"}
    assert (rows["r1"]["score"], rows["r1"]["scale_max"], rows["r2"]["label"]) == (4.0, 5.0, "helpful")
    assert read(lake, "dlq", "feedback") is None

    status, _, body = collector.call("GET", "/metrics")
    assert status == 200
    assert b'flywheel_collect_events_total{outcome="accepted",stream="feedback"} 3.0' in body
    status, _, body = collector.call("GET", "/healthz")
    assert (status, json.loads(body)) == (200, {"kafka": True})


def test_bad_events_get_400_with_the_reasons_per_event_and_nothing_is_sent(collector: Running):
    batch = [
        {"event_id": "ok", "trace_id": "t", "label": "up"},
        {"event_id": "e2", "trace_id": "t", "kind": "star", "label": "up"},
        {"event_id": "e3", "trace_id": "t", "kind": "rating", "score": 6, "scale": {"min": 1, "max": 5}},
        "not an object",
    ]
    status, _, body = collector.call("POST", "/v1/feedback", batch, AUTH)
    answer = json.loads(body)
    assert status == 400 and [e["index"] for e in answer["errors"]] == [1, 2, 3]
    assert answer["errors"][0]["reasons"] == [
        {"field": "kind", "message": "'star' is not one of thumb, edit, rating"}
    ]
    assert answer["errors"][1]["reasons"][0]["field"] == "score"
    assert collector.call("POST", "/v1/feedback", b'{"x": NaN}', AUTH)[0] == 400
    assert collector.call("POST", "/v1/feedback", b"[]", AUTH)[0] == 400


def test_keys_size_and_rate_are_enforced(broker_config: Any):
    with Running(broker_config, max_body_bytes=2000, rate_per_s=1.0, burst=3.0) as running:
        thumb = {"trace_id": "t", "label": "down"}
        assert running.call("POST", "/v1/feedback", thumb)[0] == 401
        assert running.call("POST", "/v1/feedback", thumb, {"X-API-Key": "wrong"})[0] == 401
        big = [{"trace_id": "t", "label": "down", "comment": "x" * 500}] * 5
        assert running.call("POST", "/v1/feedback", big, AUTH)[0] == 413
        assert running.call("POST", "/v1/feedback", [thumb] * 3, {"X-API-Key": KEY})[0] == 202
        status, headers, body = running.call("POST", "/v1/feedback", thumb, AUTH)
        assert status == 429 and int(headers["retry-after"]) >= 1 and b"rate limit" in body


def test_token_bucket_and_key_parsing():
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=4.0, clock=lambda: now[0])
    assert bucket.take(4) == 0.0 and bucket.take(1) == pytest.approx(0.5)
    now[0] = 1.0
    assert bucket.take(2) == 0.0
    assert parse_keys(f"a=secret, b=sha256:{'0' * 64}\n# comment") == {"a": digest("secret"), "b": "0" * 64}
    with pytest.raises(ValueError, match="name=key"):
        parse_keys("just-a-key")
