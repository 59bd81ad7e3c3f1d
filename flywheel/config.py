"""The project's configuration: one typed root of every section; defaults < file < environment < flags.

:class:`Config` is a frozen dataclass with one typed field per section, so ``config.training.lora_r``
is checked by mypy and ``config.trainng`` is a type error, not an ``Any``. The machinery (loading,
coercion, TOML, ``flywheel config``'s explanation) is :mod:`core.settings`; each section belongs
to the floor that reads it:

- ``paths``, ``kafka``: :mod:`core.sections` (every stage and the dev tools)
- ``registry``: :mod:`core.registry`
- ``ingest``, ``curation``, ``training``, ``evals``: each stage's own ``config`` module
- ``serving``, ``nightly``, ``scheduler``: :mod:`flywheel.settings` (the roof)
- ``simulate``, ``demo``: :mod:`flywheel.dev.settings` (development and the demo)

A stage never imports this module: its entry points take a protocol of the sections they read
(e.g. ``curation.run.CurationSettings``), which this class satisfies.

The whole configuration is one TOML file with a table per section::

    [paths]
    lake = "/data/lake"

    [kafka]
    bootstrap_servers = "kafka-0:9092,kafka-1:9092"

The environment overrides the file with ``FLYWHEEL_<SECTION>__<KEY>``, and command-line flags
override both (:func:`core.settings.load`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from core.registry import RegistryConfig
from core.sections import KafkaConfig, PathsConfig
from core.settings import Settings, explain, explain_text, path_keys, setting, to_toml, write_resolved
from core.settings import load as _load
from curation.config import CurationConfig
from evals.config import EvalsConfig
from flywheel.dev.settings import DemoConfig, SimulateConfig
from flywheel.settings import NightlyConfig, SchedulerConfig, ServingConfig
from ingest.config import IngestConfig
from training.config import TrainingConfig

__all__ = [
    "PATH_KEYS",
    "Config",
    "defaults",
    "explain",
    "explain_text",
    "load",
    "setting",
    "to_toml",
    "write_resolved",
]


@dataclasses.dataclass(frozen=True)
class Config(Settings):
    """The resolved configuration: one typed attribute per section, in the order of the TOML file.
    Made by :func:`load` or :func:`defaults`, which give every section."""

    paths: PathsConfig
    kafka: KafkaConfig
    ingest: IngestConfig
    simulate: SimulateConfig
    curation: CurationConfig
    training: TrainingConfig
    evals: EvalsConfig
    registry: RegistryConfig
    serving: ServingConfig
    nightly: NightlyConfig
    scheduler: SchedulerConfig
    demo: DemoConfig


# Keys holding a file or folder (``setting(..., path=True)``): relative to the config file's folder.
PATH_KEYS = path_keys(Config)


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: Config | None = None,
) -> Config:
    """Resolve the configuration: defaults < ``path`` < ``env`` < ``overrides``.

    ``overrides`` maps ``"section.key"`` to a value (command-line flags). ``env`` defaults to
    ``os.environ``; pass ``{}`` to ignore it. Every problem is reported at once
    (:class:`core.errors.ConfigError`).
    """
    return _load(Config, path, env=env, overrides=overrides, base=base)


def defaults() -> Config:
    """The embedded defaults, ignoring the environment."""
    return load(None, env={})
