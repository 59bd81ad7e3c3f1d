"""Configuration of the KTO training job."""

from __future__ import annotations

import dataclasses

from flywheel.config import setting


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How a candidate is trained from a snapshot."""

    beta: float = setting(0.1, "KTO beta: how far the policy may move from the reference")
