"""Run the collector under uvicorn: settings from flags and the environment, Kafka from [kafka].

uvicorn handles SIGTERM and SIGINT: it stops accepting connections, lets the requests in flight
finish (up to ``graceful_s``), then the app's shutdown flushes and closes the producer, so every
event answered 202 was acknowledged and none accepted is lost.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from collect.app import Settings, build_app, parse_keys
from core.errors import ConfigError
from core.sections import KafkaConfig

KEYS_ENV = "COLLECT_API_KEYS"


def load_keys(keys_file: str | None, environ: Any = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    text = environ.get(KEYS_ENV, "")
    if keys_file:
        text += "\n" + Path(keys_file).read_text(encoding="utf-8")
    try:
        keys = parse_keys(text)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    if not keys:
        raise ConfigError(
            [
                f"the collector has no API keys: set {KEYS_ENV}=name=sha256:<hex of the key> "
                "(or name=key), or pass --api-keys-file FILE"
            ]
        )
    return keys


class CollectSettings(Protocol):
    """What the collector reads: ``[kafka]`` (``flywheel.config.Config`` has it)."""

    @property
    def kafka(self) -> KafkaConfig: ...


def serve(
    config: CollectSettings, host: str, port: int, settings: Settings, graceful_s: float = 10.0
) -> None:
    import uvicorn

    from flywheel_events.producer import EventProducer

    app = build_app(settings, config.kafka, lambda: EventProducer(config.kafka))
    uvicorn.run(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=int(graceful_s),
        log_level="info",
        server_header=False,
    )
