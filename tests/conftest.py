"""Shared test setup. Fixtures live in the plugin modules named below, one per owner."""

from __future__ import annotations

import os

# Nothing is downloaded at test time; models are built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = [
    "tests.fixtures_broker",
    "tests.fixtures_model",
]


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    """Wait for the Data Docs renderers the tests' curations started (curation.data_docs =
    "after" runs one per snapshot in a process of its own), so the suite leaves none running
    in folders it is about to leave behind."""
    import pytest

    factory = getattr(getattr(session, "config", None), "_tmp_path_factory", None)
    if not isinstance(factory, pytest.TempPathFactory):
        return
    try:
        base = factory.getbasetemp()
    except (OSError, ValueError):
        return
    from curation import docs

    for marker in base.rglob("quality/gx.status"):
        docs.wait(marker.parent.parent, timeout=60)
