"""Configuration of the trace-based gate."""

from __future__ import annotations

import dataclasses

from flywheel.config import setting


@dataclasses.dataclass(frozen=True)
class EvalsConfig:
    """How a candidate is judged against the champion."""

    seed: int = setting(0, "seed for sampling and bootstrap resampling")
