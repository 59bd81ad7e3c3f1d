"""Configuration sections owned by the shared `flywheel` package."""

from __future__ import annotations

import dataclasses

from flywheel.config import setting


@dataclasses.dataclass(frozen=True)
class SimulateConfig:
    """Simulated production traffic (`flywheel simulate`)."""

    seed: int = setting(0, "random seed: the same seed sends the same traffic")


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
    """The model registry."""

    keep_history: bool = setting(True, "keep an append-only history of promotions and rollbacks")


@dataclasses.dataclass(frozen=True)
class NightlyConfig:
    """One round: curate, train, gate, promote."""

    min_train_rows: int = setting(64, "a snapshot with fewer training rows skips training")


@dataclasses.dataclass(frozen=True)
class SchedulerConfig:
    """The always-on scheduler (`flywheel schedule`)."""

    cron: str = setting("0 2 * * *", "when the nightly round runs (crontab syntax, UTC)")


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The whole loop on this machine (`flywheel demo`)."""

    rounds: int = setting(3, "nightly rounds to run in compressed time")
