"""Fixtures for the embedded Kafka-compatible broker (Tansu on loopback).

Use them from any test (they are registered in tests/conftest.py):

``broker`` (session scope)
    One :class:`flywheel.dev.broker.EmbeddedBroker` for the whole test session,
    started on a free port of 127.0.0.1. It is memory-only and shared, so never
    stop it and never reuse another test's topics.

``broker_config`` (function scope)
    A resolved :class:`flywheel.config.Config` whose ``kafka`` section points
    at the session broker and at two fresh, uniquely named topics (traces and
    feedback, 4 partitions each), whose ``ingest.group_id`` is unique, whose
    ``ingest.session_timeout_ms`` is 6000 (a group's first assignment waits half
    of it, so 3 s) and whose ``paths.lake`` is ``tmp_path / "lake"``. Derive
    more with ``broker_config.replace(**{"paths.registry": str(tmp_path / "reg")})``.

    Typical use::

        def test_round(broker_config):
            simulate.run(broker_config.replace(**{"simulate.count": 200}))
            ingest.service.run(broker_config.replace(**{"ingest.idle_timeout_s": 2.0}))
            # the lake under broker_config.paths.lake now holds the traffic

``fresh_topics(broker, config)``
    A plain function: the same as ``broker_config`` for a second set of topics
    within one test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flywheel import config as cfg
from flywheel.dev.broker import EmbeddedBroker

TEST_SESSION_TIMEOUT_MS = 6000


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(partitions=4) as running:
        yield running


def fresh_topics(broker: EmbeddedBroker, lake: Path, **overrides: Any) -> Any:
    """A config on fresh topics of ``broker`` with its lake at ``lake``; ``overrides`` are "section.key" values."""
    tag = uuid.uuid4().hex[:10]
    traces, feedback = f"t{tag}.traces", f"t{tag}.feedback"
    broker.create_topics([traces, feedback], partitions=4)
    values: dict[str, Any] = {
        "kafka.bootstrap_servers": broker.bootstrap,
        "kafka.traces_topic": traces,
        "kafka.feedback_topic": feedback,
        "ingest.group_id": f"g{tag}",
        "ingest.session_timeout_ms": TEST_SESSION_TIMEOUT_MS,
        "paths.lake": str(lake),
    }
    values.update(overrides)
    return cfg.load(None, env={}, overrides=values)


@pytest.fixture
def broker_config(broker: EmbeddedBroker, tmp_path: Path) -> Any:
    return fresh_topics(broker, tmp_path / "lake")
