"""Pure decisions: KTO balance and the on-policy model versions."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from core.registry import HistoryEvent
from curation.policy import balance, on_policy_versions


@given(st.integers(1, 10**7), st.integers(1, 10**7))
def test_weights_put_the_ratio_in_band_with_one_weight_fixed(n_up: int, n_down: int) -> None:
    b = balance(n_up, n_down, "weights")
    assert 1.0 in (b.desirable_weight, b.undesirable_weight)
    assert min(b.desirable_weight, b.undesirable_weight) == 1.0
    assert 1 <= b.ratio(n_up, n_down) <= 4 / 3
    assert (b.keep_desirable, b.keep_undesirable) == (n_up, n_down)


@given(st.integers(1, 10**7), st.integers(1, 10**7))
def test_downsampling_keeps_weights_at_one_and_the_ratio_in_band(n_up: int, n_down: int) -> None:
    b = balance(n_up, n_down, "downsample")
    assert (b.desirable_weight, b.undesirable_weight) == (1.0, 1.0)
    assert b.keep_desirable <= n_up and b.keep_undesirable <= n_down
    assert Fraction(1) <= Fraction(b.keep_desirable, b.keep_undesirable) <= Fraction(4, 3)


def _event(action: str, version: str) -> HistoryEvent:
    return HistoryEvent("2026-01-01T00:00:00Z", action, version, None, "", {})


def test_on_policy_versions_are_the_last_k_distinct_champions() -> None:
    history = [
        _event("promote", "v1"),
        _event("promote", "v2"),
        _event("reject", "v3"),
        _event("promote", "v4"),
        _event("rollback", "v2"),
    ]
    assert on_policy_versions(history, 2)[0] == ["v2", "v4"]
    assert on_policy_versions(history, 3)[0] == ["v2", "v4", "v1"]
    kept, note = on_policy_versions([], 2)
    assert kept is None and "no champion history" in note
    assert on_policy_versions(history, 0)[0] is None
