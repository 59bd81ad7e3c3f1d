"""The gate's statistics in memory: AUC, margins, cluster bootstrap, length-controlled win rate."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evals import stats


def brute_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = scores[positive], scores[~positive]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return float(wins / (len(pos) * len(neg)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-3, 3), st.booleans(), st.integers(1, 3)), min_size=2, max_size=25).filter(
        lambda rows: {r[1] for r in rows} == {True, False}
    )
)
def test_weighted_auc_matches_pairwise_count_with_repeated_rows(rows: list[tuple[int, bool, int]]) -> None:
    scores = np.array([r[0] for r in rows], dtype=float)
    positive = np.array([r[1] for r in rows])
    weights = np.array([r[2] for r in rows], dtype=float)
    # A weight of k must equal the row repeated k times (that is what a bootstrap draw means).
    expanded = np.repeat(np.arange(len(rows)), weights.astype(int))
    expected = brute_auc(scores[expanded], positive[expanded])
    got = stats.weighted_auc(scores, positive)(weights[None, :])[0]
    assert abs(got - expected) < 1e-9


def test_margin_and_mean_are_weighted() -> None:
    s = np.array([1.0, 3.0, -1.0, 0.0])
    lab = np.array([True, True, False, False])
    assert stats.weighted_margin(s, lab)(np.ones((1, 4)))[0] == 2.5
    assert stats.weighted_margin(s, lab)(np.array([[2.0, 0.0, 1.0, 0.0]]))[0] == 2.0
    assert stats.weighted_mean(s)(np.array([[1.0, 1.0, 0.0, 0.0]]))[0] == 2.0


def test_cluster_bootstrap_is_wider_than_row_bootstrap_for_clustered_data() -> None:
    # 20 sessions of 25 rows; within a session every row has the same value: 20 facts, not 500.
    rng = np.random.default_rng(0)
    session_value = rng.normal(size=20)
    values = np.repeat(session_value, 25)
    sessions = np.repeat(np.arange(20), 25)
    _, lo_c, hi_c, _ = stats.bootstrap(stats.weighted_mean(values), sessions, 1000, 0.95, 1)
    _, lo_r, hi_r, _ = stats.bootstrap(stats.weighted_mean(values), np.arange(500), 1000, 0.95, 1)
    assert (hi_c - lo_c) > 3 * (hi_r - lo_r)
    assert lo_c < session_value.mean() < hi_c


def test_cluster_weights_keep_clusters_whole() -> None:
    clusters = np.array(["a", "a", "b", "c", "c", "c"])
    w = stats.cluster_weights(clusters, 200, seed=3)
    assert w.shape == (200, 6)
    assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 3] == w[:, 5])
    # Three clusters drawn three times: cluster multiplicities sum to 3.
    assert np.all(w[:, 0] + w[:, 2] + w[:, 3] == 3)


def test_lc_win_rate_removes_a_pure_length_advantage() -> None:
    rng = np.random.default_rng(0)
    diff = rng.normal(0, 50, size=400)
    # The judge prefers whatever is longer, and nothing else.
    p = 1 / (1 + np.exp(-3 * np.tanh(diff / diff.std())))
    judgement = (rng.random(400) < p).astype(float)
    lengthy = diff + 40  # the candidate is usually longer, so it "wins"
    p2 = 1 / (1 + np.exp(-3 * np.tanh(lengthy / lengthy.std())))
    judgement2 = (rng.random(400) < p2).astype(float)
    raw = judgement2.mean()
    lc = stats.lc_win_rate(judgement2, lengthy)(np.ones((1, 400)))[0]
    assert raw > 0.65
    assert abs(lc - 0.5) < abs(raw - 0.5) / 2
    # Without a length difference the regression gives the plain win rate back.
    flat = stats.lc_win_rate(judgement, np.zeros(400))(np.ones((1, 400)))[0]
    assert abs(flat - judgement.mean()) < 1e-3


def test_ties_count_half_in_lc_win_rate() -> None:
    j = np.full(50, 0.5)
    assert abs(stats.lc_win_rate(j, np.arange(50.0))(np.ones((1, 50)))[0] - 0.5) < 1e-6


def test_estimate_interval_contains_value() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=300)
    labels = scores + rng.normal(size=300) > 0
    est = stats.estimate(stats.weighted_auc(scores, labels), np.arange(300) // 3, 500, 0.9, 0)
    assert est.low < est.value < est.high
    assert est.value > 0.7 and est.n == 300
