"""Configuration of the nightly curation job."""

from __future__ import annotations

import dataclasses

from flywheel.config import setting


@dataclasses.dataclass(frozen=True)
class CurationConfig:
    """How raw feedback becomes a KTO snapshot."""

    max_age_days: int = setting(30, "feedback older than this many days (before --as-of) is aged out")
