"""KTO's class balance, the one rule curation and training share.

The KTO paper (eq. 8) and TRL advise ``desirable_weight * n_desirable / (undesirable_weight *
n_undesirable)`` in [1, 4/3]. Curation writes the weights into the snapshot's manifest (or
downsamples the larger class instead); training applies them, and derives them again with the
same rule when it had to leave rows out to give every batch both labels.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

RATIO_LOW = Fraction(1)
RATIO_HIGH = Fraction(4, 3)
# Aim for the middle of the band, so rounding the weights never leaves it.
RATIO_TARGET = Fraction(7, 6)


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

    def weights(self) -> dict[str, float]:
        """The weights as TRL's KTOConfig names them."""
        return {"desirable_weight": self.desirable_weight, "undesirable_weight": self.undesirable_weight}


def balance(n_up: int, n_down: int, mode: str = "weights") -> Balance:
    """Class weights (one fixed at 1) or downsampled counts that put the KTO ratio in [1, 4/3].

    With a single class present nothing balances it: weights stay 1 (curation's data-quality
    check ``both_classes_in_train`` reports it, and training refuses a batch without both labels).
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
