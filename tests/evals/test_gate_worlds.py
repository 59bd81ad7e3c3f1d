"""The gate in a family of tiny worlds (tests/evals/worlds.py), at every default: real KTO candidates
that raise a world's approval are promoted, at a small nightly step and at three epochs, with and
without a judge; a candidate that lowers it and the five bad kinds are rejected; and a candidate
that only got longer, judged by a length-biased judge, is rejected by the length check.

Minutes on two cores (each case trains a real candidate), so behind ``slow``: ``make test-slow``.
``python -m tests.evals.worlds OUT`` prints the same outcomes over three rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.evals import worlds

pytestmark = pytest.mark.slow

WORLDS = ("demo", "elaborate", "biased_judge")


@pytest.mark.parametrize("judged", [True, False], ids=["judge", "no-judge"])
@pytest.mark.parametrize("budget", list(worlds.BUDGETS))
@pytest.mark.parametrize("world", WORLDS)
def test_kto_that_serves_the_worlds_users_is_promoted(
    tiny_world: Path, tiny_config: Any, world: str, budget: str, judged: bool
) -> None:
    (row,) = worlds.run_rounds(tiny_config, world, budget, judged, 1, tiny_world)
    gain = row["candidate_approval"] - row["champion_approval"]
    assert gain > 0.05, f"the candidate did not raise approval ({gain:+.2f}); nothing to test"
    assert row["promote"], f"{world}/{budget}/{judged}: {row['vetoes']} vetoed a gain of {gain:+.2f}"
    assert row["deciding"].startswith("primary:")


@pytest.mark.parametrize("judged", [True, False], ids=["judge", "no-judge"])
@pytest.mark.parametrize("world", WORLDS)
def test_bad_candidates_are_rejected(tiny_world: Path, tiny_config: Any, world: str, judged: bool) -> None:
    kinds = (*worlds.BAD_KINDS, "padded") if world == "biased_judge" else worlds.BAD_KINDS
    results = worlds.run_bad_kinds(tiny_config, world, judged, tiny_world, kinds)
    promoted = {k: r["vetoes"] for k, r in results.items() if r["promote"]}
    assert not promoted, f"promoted in {world} ({'judge' if judged else 'no judge'}): {promoted}"
    # KTO on flipped thumbs does lower approval: the world's users would be worse served.
    base = worlds.approval(world, tiny_world)
    assert results["flipped"]["approval"] < base
    if world == "biased_judge" and judged:
        padded = results["padded"]
        assert padded["metrics"]["replay"]["win_rate"]["low"] > 0.5  # the judge alone would promote it
        assert padded["deciding"] == "length_control"
