"""Fixtures of the curation tests: hand-built lakes and configs pointing at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flywheel.config import Config, defaults
from tests.curation import scenario


def make_config(root: Path, **overrides: Any) -> Config:
    """A config for a lake under ``root``. Data Docs are off unless a test asks for them (each
    rendering is a Great Expectations process of several CPU-seconds)."""
    return defaults().replace(
        **{
            "paths.lake": str(root / "lake"),
            "paths.registry": str(root / "registry"),
            "curation.data_docs": "off",
            **overrides,
        }
    )


@pytest.fixture(scope="session")
def scenario_snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    """The scenario curated once, its Data Docs rendered before it returns (GX is slow to start;
    the tests that only read it share it)."""
    from curation.run import run

    root = tmp_path_factory.mktemp("scenario")
    scenario.build().write(root / "lake")
    scenario.write_history(root / "registry", ["v0", "v1", "v2"])
    config = make_config(root, **{**scenario.OVERRIDES, "curation.data_docs": "inline"})
    return config, run(config, as_of=scenario.AS_OF)
