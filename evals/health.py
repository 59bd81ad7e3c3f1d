"""What the candidate's own answers show without a judge: are they healthy text, and are they text
the champion (whose answers users rated) could have written?

- **Degenerate**: empty, unfinished (no end-of-sequence token within ``max_new_tokens``) or
  repetitive (``repetition_threshold`` of the answer's word bigrams are repeats, the seq-rep-2
  measure of neural text degeneration). A model collapsing into loops or filler shows it here
  whatever the users' taste.
- **Unsupported**: an answer whose per-token log-probability under the champion is below the 5th
  percentile of the champion's own answers. About 5% of the champion's answers are so by
  construction; a candidate that writes what the champion never would (another register, rude or
  random text) has most of its answers there. Held-out thumbs say nothing about such text, so
  without a judge there is no evidence for it.

Every rate is compared pair by pair (the candidate's j-th answer to a prompt against the
champion's j-th), so the difference's interval is clustered by prompt like the win rate.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

SUPPORT_QUANTILE = 0.05


def repetition(text: str) -> float:
    """Share of the answer's word bigrams that repeat an earlier one (0 for fewer than 4 bigrams)."""
    words = text.split()
    bigrams = list(itertools.pairwise(words))
    if len(bigrams) < 4:
        return 0.0
    return 1.0 - len(set(bigrams)) / len(bigrams)


def degenerate(
    texts: Sequence[str],
    answer_ids: Sequence[Sequence[int]],
    eos_id: int | None,
    max_new_tokens: int,
    threshold: float,
) -> np.ndarray:
    """1.0 per answer that is empty, unfinished or repetitive, else 0.0."""
    out = np.zeros(len(texts))
    for i, (text, ids) in enumerate(zip(texts, answer_ids, strict=True)):
        unfinished = eos_id is not None and eos_id not in ids and len(ids) >= max_new_tokens
        out[i] = float(not text.strip() or unfinished or repetition(text) >= threshold)
    return out


def unsupported(
    per_token_candidate: np.ndarray, per_token_champion: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Flags (1.0/0.0) for the candidate's and the champion's answers below the champion's own
    ``SUPPORT_QUANTILE`` of per-token log-probability (both scored by the champion), and that cut."""
    if not len(per_token_champion):
        return np.zeros(len(per_token_candidate)), np.zeros(0), float("nan")
    cut = float(np.quantile(per_token_champion, SUPPORT_QUANTILE))
    return (
        (per_token_candidate < cut).astype(np.float64),
        (per_token_champion < cut).astype(np.float64),
        cut,
    )


def k3_kl(candidate: Sequence[np.ndarray], champion: Sequence[np.ndarray]) -> np.ndarray:
    """Per-answer KL(candidate || champion) per token, from the candidate's own samples.

    ``candidate[i]`` and ``champion[i]`` are the log-probabilities the two models give the tokens of
    answer i: each token adds r - 1 - log r with r = p_champion / p_candidate (Schulman's k3, unbiased
    and never negative, unlike the plain log-ratio whose sample mean can be). When the two models
    tokenize apart (different vocabularies), pass one-element arrays of sequence sums and the
    count of tokens is one.
    """
    out = np.zeros(len(candidate))
    for i, (c, h) in enumerate(zip(candidate, champion, strict=True)):
        if len(c) != len(h):
            c, h = np.array([c.sum()]), np.array([h.sum()])
        log_r = np.clip(h - c, -30.0, 30.0)
        out[i] = float(np.mean(np.expm1(log_r) - log_r)) if len(c) else 0.0
    return out
