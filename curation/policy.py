"""Pure decisions of the curation stage: which model versions are on-policy, and KTO balance."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

# TRL's KTO advice: desirable_weight * n_desirable / (undesirable_weight * n_undesirable) in [1, 4/3].
RATIO_LOW = Fraction(1)
RATIO_HIGH = Fraction(4, 3)
# Aim for the middle of the band, so rounding the weights never leaves it.
RATIO_TARGET = Fraction(7, 6)


def on_policy_versions(history: list[Any], keep_last: int) -> tuple[list[str] | None, str]:
    """The last ``keep_last`` distinct champions (promotions and rollbacks), newest first.

    ``None`` means "keep every version", with the reason: no champion history yet,
    or ``keep_last`` is 0.
    """
    if keep_last == 0:
        return None, "curation.keep_last_champions = 0: every model version kept"
    champions = [e.version for e in history if e.action in ("promote", "rollback")]
    if not champions:
        return None, "the registry has no champion history: every model version kept"
    kept: list[str] = []
    for version in reversed(champions):
        if version not in kept:
            kept.append(version)
        if len(kept) == keep_last:
            break
    return kept, f"versions of the last {keep_last} champion(s) kept: {', '.join(kept)}"


def with_aliases(versions: list[str] | None, aliases: dict[str, str]) -> list[str] | None:
    """``versions`` plus every served name (``registry.aliases``) that stands for one of them."""
    if versions is None:
        return None
    return versions + sorted(name for name, version in aliases.items() if version in versions)


@dataclasses.dataclass(frozen=True)
class Balance:
    desirable_weight: float
    undesirable_weight: float
    keep_desirable: int
    keep_undesirable: int

    def ratio(self, n_up: int, n_down: int) -> float:
        if n_down == 0:
            return math.inf
        return self.desirable_weight * n_up / (self.undesirable_weight * n_down)


def balance(n_up: int, n_down: int, mode: str) -> Balance:
    """Class weights (one fixed at 1) or downsampled counts that put the KTO ratio in [1, 4/3].

    With a single class present nothing balances it: weights stay 1 and the data-quality
    check ``both_classes_in_train`` reports it.
    """
    if n_up == 0 or n_down == 0:
        return Balance(1.0, 1.0, n_up, n_down)
    ratio = Fraction(n_up, n_down)
    if RATIO_LOW <= ratio <= RATIO_HIGH:
        return Balance(1.0, 1.0, n_up, n_down)
    if mode == "downsample":
        if ratio < RATIO_LOW:  # more undesirable rows: keep as many as desirable (ratio 1)
            return Balance(1.0, 1.0, n_up, n_up)
        return Balance(1.0, 1.0, n_down * 4 // 3, n_down)
    if ratio < RATIO_LOW:  # too few desirable rows: up-weight them, undesirable fixed at 1
        weight = round(float(RATIO_TARGET / ratio), 6)
        return Balance(weight, 1.0, n_up, n_down)
    weight = round(float(ratio / RATIO_TARGET), 6)
    return Balance(1.0, weight, n_up, n_down)
