"""The collector: an ASGI app (Starlette, served by uvicorn) that takes events as JSON over HTTP,
validates them with ingest's own validator (ingest/schema.py), produces them with ``acks=all`` and
answers only once Kafka has acknowledged them.

    POST /v1/traces     one trace object, or an array of them
    POST /v1/feedback   one feedback object, or an array of them
    GET  /healthz       200 when the producer is connected to a broker, else 503
    GET  /metrics       Prometheus text

A request is all or nothing: 202 ``{"ids": [...]}`` (trace ids, or event ids) once every event is
acknowledged; 400 ``{"errors": [{"index": i, "reasons": [{"field", "message"}]}]}`` naming every
problem of every refused event, and nothing sent. Missing ``event_id`` (feedback) and
``event_time`` are filled in; a client that retries should send its own ``event_id`` so that the
action counts once. Keys: ``Authorization: Bearer <key>`` or ``X-API-Key``, compared as SHA-256
digests in constant time; each key has a token bucket of events per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.sections import KafkaConfig
from flywheel_events.producer import now_rfc3339
from flywheel_events.schema import MAX_INT_DIGITS, InvalidRecord, decode

STREAM_ID = {"traces": "trace_id", "feedback": "event_id"}
_COMPACT = (",", ":")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_keys(text: str) -> dict[str, str]:
    """``name=key`` or ``name=sha256:<hex>`` entries, separated by commas or newlines -> name: digest.

    Store digests (``sha256:``) in files and environments where you can: the collector never needs
    the key itself."""
    keys: dict[str, str] = {}
    for entry in text.replace("\n", ",").split(","):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        name, sep, secret = entry.partition("=")
        name, secret = name.strip(), secret.strip()
        if not sep or not name or not secret:
            raise ValueError(f"API key entry {entry[:20]!r}... is not name=key or name=sha256:<hex>")
        if secret.startswith("sha256:"):
            hexdigest = secret[7:].lower()
            if len(hexdigest) != 64 or any(ch not in "0123456789abcdef" for ch in hexdigest):
                raise ValueError(f"API key {name!r}: sha256: must be followed by 64 hex digits")
            keys[name] = hexdigest
        else:
            keys[name] = digest(secret)
    return keys


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the collector admits requests (the Kafka side comes from the [kafka] config section)."""

    api_keys: dict[str, str]  # name -> SHA-256 hex digest of the key
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1 << 20
    max_events: int = 500  # per request
    rate_per_s: float = 200.0  # events per second per key (token bucket refill)
    burst: float = 1000.0  # bucket size
    ack_timeout_s: float = 30.0
    max_record_bytes: int = 1 << 20  # the ingest limit (ingest.max_record_bytes)


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.stamp = burst, clock()

    def take(self, n: float) -> float:
        """Take ``n`` tokens; 0.0 on success, else the seconds until there would be enough."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        return (min(n, self.burst) - self.tokens) / self.rate


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flywheel_collect_requests_total", "HTTP requests by outcome", ["code"], registry=self.registry
        )
        self.events = Counter(
            "flywheel_collect_events_total",
            "events by stream and outcome (accepted, refused)",
            ["stream", "outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "flywheel_collect_request_seconds",
            "time to answer a POST, Kafka acknowledgement included",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.in_flight = Gauge(
            "flywheel_collect_in_flight_requests", "POSTs being answered", registry=self.registry
        )


def _strict_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _strict_int(literal: str) -> int:
    if len(literal) - literal.startswith("-") > MAX_INT_DIGITS:
        raise ValueError(f"an integer of more than {MAX_INT_DIGITS} digits; send it as a string")
    return int(literal)


def _error(code: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=code, headers=headers or None)


class Collector:
    """The state behind the routes: the producer, the keys' buckets, the metrics."""

    def __init__(self, settings: Settings, kafka_config: KafkaConfig, producer: Any) -> None:
        self.settings = settings
        self.topics = {"traces": kafka_config.traces_topic, "feedback": kafka_config.feedback_topic}
        self.producer = producer  # an ingest.producer.EventProducer
        self.metrics = Metrics()
        self.buckets: dict[str, TokenBucket] = {}

    def key_name(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        if not key:
            return None
        presented = digest(key)
        found = None
        for name, stored in self.settings.api_keys.items():  # every key compared: no timing by position
            if hmac.compare_digest(presented, stored):
                found = name
        return found

    async def body(self, request: Request) -> bytes | None:
        """The body, or None once it passes max_body_bytes (whatever Content-Length says)."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def validate(self, stream: str, events: list[Any]) -> tuple[list[tuple[str, bytes, str]], list[Any]]:
        """Each event filled in, serialized and judged by ingest's validator."""
        ready, errors = [], []
        for index, event in enumerate(events):
            if type(event) is not dict:
                errors.append(
                    {"index": index, "reasons": [{"field": None, "message": "expected a JSON object"}]}
                )
                continue
            if stream == "feedback" and event.get("event_id") is None:
                event["event_id"] = uuid.uuid4().hex
            if event.get("event_time") is None:
                event["event_time"] = now_rfc3339()
            value = json.dumps(event, separators=_COMPACT, ensure_ascii=False).encode(
                "utf-8", "surrogatepass"
            )
            try:
                decode(stream, value, self.settings.max_record_bytes)
            except InvalidRecord as exc:
                reasons = [{"field": field, "message": message} for field, message in exc.problems]
                errors.append({"index": index, "reasons": reasons})
                continue
            ready.append((event[STREAM_ID[stream]], value, event["trace_id"]))
        return ready, errors

    async def send(self, stream: str, ready: list[tuple[str, bytes, str]]) -> None:
        loop = asyncio.get_running_loop()
        waits = []
        for _, value, key in ready:
            done: asyncio.Future[Any] = loop.create_future()

            def settle(result: Any, done: asyncio.Future[Any] = done, failed: bool = False) -> None:
                def apply() -> None:
                    if done.done():
                        return
                    if failed:
                        done.set_exception(
                            result if isinstance(result, BaseException) else RuntimeError(result)
                        )
                    else:
                        done.set_result(result)

                loop.call_soon_threadsafe(apply)

            future = self.producer.send_raw(self.topics[stream], value, key.encode("utf-8"))
            future.add_callback(settle)
            future.add_errback(lambda exc, settle=settle: settle(exc, failed=True))
            waits.append(done)
        await asyncio.wait_for(asyncio.gather(*waits), self.settings.ack_timeout_s)

    async def post(self, request: Request, stream: str) -> Response:
        m = self.metrics
        start = time.perf_counter()
        m.in_flight.inc()
        try:
            response = await self._post(request, stream)
        finally:
            m.in_flight.dec()
        m.seconds.observe(time.perf_counter() - start)
        m.requests.labels(str(response.status_code)).inc()
        return response

    async def _post(self, request: Request, stream: str) -> Response:
        name = self.key_name(request)
        if name is None:
            return _error(401, "missing or unknown API key: send Authorization: Bearer <key> (or X-API-Key)")
        raw = await self.body(request)
        if raw is None:
            return _error(
                413, f"request body over {self.settings.max_body_bytes} bytes; send smaller batches"
            )
        try:
            doc = json.loads(raw.decode("utf-8"), parse_constant=_strict_constant, parse_int=_strict_int)
        except (ValueError, RecursionError) as exc:
            return _error(400, f"the body is not strict JSON in UTF-8: {exc}")
        events = doc if type(doc) is list else [doc]
        if not events or len(events) > self.settings.max_events:
            return _error(400, f"send 1 to {self.settings.max_events} events per request, got {len(events)}")
        bucket = self.buckets.get(name)
        if bucket is None:
            bucket = self.buckets[name] = TokenBucket(self.settings.rate_per_s, self.settings.burst)
        wait = bucket.take(len(events))
        if wait:
            return _error(
                429,
                f"over the rate limit of {self.settings.rate_per_s:g} events/s for this key; retry later",
                **{"Retry-After": str(max(1, round(wait + 0.5)))},
            )
        ready, errors = self.validate(stream, events)
        if errors:
            self.metrics.events.labels(stream, "refused").inc(len(errors))
            return JSONResponse({"errors": errors, "accepted": 0}, status_code=400)
        try:
            await self.send(stream, ready)
        except Exception as exc:
            return _error(
                503,
                f"Kafka did not acknowledge the events ({exc!r}); retry with the same ids",
                **{"Retry-After": "1"},
            )
        self.metrics.events.labels(stream, "accepted").inc(len(ready))
        return JSONResponse({"ids": [i for i, _, _ in ready]}, status_code=202)

    def healthz(self, request: Request) -> Response:
        # kafka-python keeps the brokers it learned from the cluster's metadata; none: not connected
        connected = bool(self.producer._producer._metadata.brokers())
        return JSONResponse({"kafka": connected}, status_code=200 if connected else 503)

    def metrics_page(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def build_app(
    settings: Settings, kafka_config: KafkaConfig, producer_factory: Callable[[], Any]
) -> Starlette:
    """The ASGI app; ``producer_factory`` makes the EventProducer at startup, closed (flushed) at shutdown."""
    holder: dict[str, Collector] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        producer = producer_factory()
        holder["c"] = Collector(settings, kafka_config, producer)
        app.state.collector = holder["c"]
        try:
            yield
        finally:
            await asyncio.to_thread(producer.close)

    async def traces(request: Request) -> Response:
        return await holder["c"].post(request, "traces")

    async def feedback(request: Request) -> Response:
        return await holder["c"].post(request, "feedback")

    routes = [
        Route("/v1/traces", traces, methods=["POST"]),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/healthz", lambda r: holder["c"].healthz(r), methods=["GET"]),
        Route("/metrics", lambda r: holder["c"].metrics_page(r), methods=["GET"]),
    ]
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_methods=["POST"],
            allow_headers=["authorization", "content-type", "x-api-key"],
            max_age=600,
        )
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
