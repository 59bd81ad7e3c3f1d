"""Statistics of the gate: AUC, margins, win rates, and cluster-bootstrap intervals.

Every interval resamples *clusters* (sessions or users), not rows: answers in
one session share a user and a context, so resampling rows would pretend they
are independent and make the intervals too narrow. A resample is a vector of
per-cluster multiplicities; every statistic here takes per-row weights, so all
resamples are computed at once as a (resamples x rows) weight matrix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

Stat = Callable[[np.ndarray], np.ndarray]  # weights (B, n) -> statistic (B,)


@dataclasses.dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int
    se: float = float("nan")  # the bootstrap standard error

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n, "se": self.se}


def _normal_quantile(p: float) -> float:
    """The standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9)."""
    import math

    a = (
        -39.69683028665376,
        220.9460984245205,
        -275.9285104469687,
        138.3577518672690,
        -30.66479806614716,
        2.506628277459239,
    )
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572)
    c = (
        -0.007784894002430293,
        -0.3223964580411365,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    )
    d = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    if p > 1 - 0.02425:
        return -_normal_quantile(1 - p)
    q = p - 0.5
    r = q * q
    return (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )


def detectable_effect(se: float, level: float, power: float) -> float:
    """The smallest true effect a two-sided test at ``level`` detects with probability ``power``,
    given the estimate's standard error: (z_(1-alpha/2) + z_power) * se."""
    if not np.isfinite(se):
        return float("nan")
    return float((_normal_quantile(1 - (1 - level) / 2) + _normal_quantile(power)) * se)


def cluster_weights(clusters: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """(samples, n) row weights: each cluster drawn with replacement as often as it has members."""
    _, index = np.unique(clusters, return_inverse=True)
    k = int(index.max()) + 1 if len(index) else 0
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(k, np.full(k, 1.0 / k), size=samples) if k else np.zeros((samples, 0))
    return counts[:, index].astype(np.float64)


def bootstrap(
    stat: Stat, clusters: np.ndarray, samples: int, level: float, seed: int
) -> tuple[float, float, float, float]:
    """Point value, percentile interval and standard error of ``stat`` under cluster resampling."""
    n = len(clusters)
    point = float(stat(np.ones((1, n)))[0])
    weights = cluster_weights(clusters, samples, seed)
    # Resamples in chunks of about 2 M weights, so memory stays bounded however many rows there are
    # (the statistics build a few arrays of the chunk's shape).
    step = max(1, 2_000_000 // max(n, 1))
    values = np.concatenate([stat(weights[i : i + step]) for i in range(0, samples, step)])
    values = values[np.isfinite(values)]
    if not len(values):
        return point, float("nan"), float("nan"), float("nan")
    alpha = (1 - level) / 2
    low, high = float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))
    return point, low, high, float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def weighted_auc(scores: np.ndarray, positive: np.ndarray) -> Stat:
    """Probability that a positive row outscores a negative one (ties count half), per weight row."""
    uniq, group = np.unique(scores, return_inverse=True)
    onehot = np.zeros((len(scores), len(uniq)))
    onehot[np.arange(len(scores)), group] = 1.0
    pos = positive.astype(bool)

    def stat(w: np.ndarray) -> np.ndarray:
        pos_w = (w * pos) @ onehot  # (B, groups), groups in ascending score order
        neg_w = (w * ~pos) @ onehot
        below = np.cumsum(neg_w, axis=1) - neg_w
        wins = (pos_w * (below + 0.5 * neg_w)).sum(axis=1)
        total = pos_w.sum(axis=1) * neg_w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, wins / np.where(total > 0, total, 1), np.nan)

    return stat


def stratified_auc(scores: np.ndarray, positive: np.ndarray, strata: np.ndarray) -> Stat:
    """AUC over the (positive, negative) pairs of the same stratum only (e.g. a length bin): does
    the score tell the labels apart among rows alike in the stratifying variable? NaN without
    such pairs."""
    keys, group = np.unique(strata, return_inverse=True)
    parts = [(weighted_auc(scores[group == g], positive[group == g]), group == g) for g in range(len(keys))]
    pos = positive.astype(bool)

    def stat(w: np.ndarray) -> np.ndarray:
        wins = np.zeros(w.shape[0])
        total = np.zeros(w.shape[0])
        for auc, mask in parts:
            ww = w[:, mask]
            pairs = (ww * pos[mask]).sum(axis=1) * (ww * ~pos[mask]).sum(axis=1)
            value = np.nan_to_num(auc(ww))
            wins += value * pairs
            total += pairs
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, wins / np.where(total > 0, total, 1), np.nan)

    return stat


def weighted_margin(scores: np.ndarray, positive: np.ndarray) -> Stat:
    """Mean score of positive rows minus mean score of negative rows."""
    pos = positive.astype(bool)

    def stat(w: np.ndarray) -> np.ndarray:
        wp, wn = (w * pos), (w * ~pos)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (wp @ scores) / wp.sum(axis=1) - (wn @ scores) / wn.sum(axis=1)

    return stat


def weighted_mean(values: np.ndarray) -> Stat:
    def stat(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ values) / w.sum(axis=1)

    return stat


def length_feature(length_diff: np.ndarray) -> np.ndarray:
    """AlpacaEval 2 LC's length term: tanh of the length difference over its standard deviation."""
    scale = float(np.std(length_diff))
    return np.tanh(length_diff / scale) if scale > 0 else np.zeros_like(length_diff, dtype=np.float64)


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-3, iters: int = 50
) -> np.ndarray:
    """Intercept and slope of a weighted logistic regression, one fit per weight row (Newton's method).

    ``y`` may be fractional (a tie is 0.5); the log-loss handles it. A small
    ridge keeps a perfectly separated resample finite.
    """
    b = w.shape[0]
    theta = np.zeros((b, 2))
    design = np.stack([np.ones_like(x), x], axis=1)  # (n, 2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(theta @ design.T)))  # (B, n)
        grad = ((w * (p - y)) @ design) + l2 * theta
        h = (w * p * (1 - p)) @ (design[:, :, None] * design[:, None, :]).reshape(len(x), 4)
        hess = h.reshape(b, 2, 2) + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        theta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return theta


def lc_win_rate(judgement: np.ndarray, length_diff: np.ndarray) -> Stat:
    """Win rate at zero length difference: sigmoid of the intercept of judgement ~ tanh(len diff / sd)."""
    x = length_feature(length_diff.astype(np.float64))
    y = judgement.astype(np.float64)

    def stat(w: np.ndarray) -> np.ndarray:
        theta = _fit_logistic(x, y, w)
        return 1.0 / (1.0 + np.exp(-theta[:, 0]))

    return stat


def length_slope(judgement: np.ndarray, length_diff: np.ndarray) -> Stat:
    """The slope of judgement ~ tanh(len diff / sd): > 0 when the judge favours the longer answer."""
    x = length_feature(length_diff.astype(np.float64))
    y = judgement.astype(np.float64)

    def stat(w: np.ndarray) -> np.ndarray:
        return _fit_logistic(x, y, w)[:, 1]

    return stat


def direction(est: Estimate, null: float) -> int:
    """+1 when the interval lies above ``null``, -1 below, 0 when it does not exclude it."""
    return 1 if est.low > null else -1 if est.high < null else 0


def estimate(stat: Stat, clusters: np.ndarray, samples: int, level: float, seed: int) -> Estimate:
    value, low, high, se = bootstrap(stat, clusters, samples, level, seed)
    return Estimate(value, low, high, len(clusters), se)
