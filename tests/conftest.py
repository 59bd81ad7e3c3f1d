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
