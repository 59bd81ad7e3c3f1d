"""Agreement with users, no judge needed: does the candidate move towards what users liked?

For each held-out (prompt, completion, thumb) the implicit reward is
log π_candidate(y|x) − log π_champion(y|x) (per token when
``reward_normalization = "mean"``, so a long completion does not weigh more
than a short one). A candidate that learned from users gives thumbs-up
completions a higher reward than thumbs-down ones: AUC above 0.5, a positive
margin. The same log-probabilities give the chosen-probability guard and the
per-slice AUCs over trace tags.

Two measures answer questions the AUC alone cannot:

- **Length-matched AUC**: the AUC over (thumbs-up, thumbs-down) pairs of like length only (rows
  binned by completion tokens). If the candidate's agreement with users is only a taste for
  longer or shorter text, it vanishes here. When users' thumbs and length are so entangled that
  few pairs of like length exist, the test cannot be made, and the metrics say so.
- **Approved mass**: per held-out prompt, the probability the model gives to the whole set of
  distinct completions users approved (log-sum-exp of their sequence log-probabilities), candidate
  minus champion, in nats per token. Mass that leaves what users approved for what nobody
  approved lowers it; mass that moves among approved answers towards the one users like most
  does not (the set's total stays), and a few flipped votes add completions whose mass is small
  beside the approved ones. The mean change on thumbs-up rows (``chosen_logp_change``), which
  falls in both cases, is kept as a metric.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from evals import stats
from evals.config import EvalsConfig
from evals.data import render_prompt, tag_slices, tags
from evals.scoring import Loaded, encode, logprobs


@dataclasses.dataclass
class TraceScores:
    reward: np.ndarray  # implicit reward per row (normalized as configured)
    per_token_change: np.ndarray  # (log p_cand - log p_champ) / tokens per row
    logp_candidate: np.ndarray
    logp_champion: np.ndarray
    tokens: np.ndarray


def score_traces(frame: pd.DataFrame, cand: Loaded, champ: Loaded, cfg: EvalsConfig) -> TraceScores:
    out = {}
    for m in (cand, champ):
        prompts = [
            render_prompt(p, f, m.tokenizer)
            for p, f in zip(frame["prompt"], frame["prompt_format"], strict=True)
        ]
        pairs = encode(m.tokenizer, prompts, list(frame["completion"]), cfg.append_eos)
        out[m.name] = logprobs(m, pairs, cfg.batch_size, cfg.max_length)
    (lc, n_c), (lh, _) = out[cand.name], out[champ.name]
    # Token counts come from the candidate's tokenizer; candidates are trained
    # from the champion, so the two share it.
    tokens = np.maximum(n_c, 1)
    change = (lc - lh) / tokens
    reward = change if cfg.reward_normalization == "mean" else lc - lh
    return TraceScores(reward, change, lc, lh, tokens)


def agreement_metrics(
    scores: TraceScores, labels: np.ndarray, clusters: np.ndarray, cfg: EvalsConfig
) -> dict[str, Any]:
    b, level, seed = cfg.bootstrap_samples, cfg.ci_level, cfg.seed
    up = labels.astype(bool)
    auc = stats.estimate(stats.weighted_auc(scores.reward, up), clusters, b, level, seed)
    margin = stats.estimate(stats.weighted_margin(scores.reward, up), clusters, b, level, seed)
    chosen = stats.estimate(
        stats.weighted_mean(scores.per_token_change[up]), clusters[up], b, level, seed + 1
    )
    rejected = stats.estimate(
        stats.weighted_mean(scores.per_token_change[~up]), clusters[~up], b, level, seed + 2
    )
    return {
        "auc": {**auc.to_dict(), "detectable": stats.detectable_effect(auc.se, level, cfg.power)},
        "margin": margin.to_dict(),
        "chosen_logp_change": chosen.to_dict(),
        "rejected_logp_change": rejected.to_dict(),
        "length_matched": length_matched(scores, labels, clusters, cfg),
        "rows": len(labels),
        "thumbs_up": int(up.sum()),
        "thumbs_down": int((~up).sum()),
        "clusters": len(np.unique(clusters)),
    }


def length_strata(tokens: np.ndarray, bins: int) -> np.ndarray:
    """Bin index per row from quantiles of the completion token counts (equal counts share a bin)."""
    if not len(tokens):
        return np.zeros(0, dtype=np.int64)
    edges = np.unique(np.quantile(tokens, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, tokens, side="right")


def length_matched(
    scores: TraceScores, labels: np.ndarray, clusters: np.ndarray, cfg: EvalsConfig
) -> dict[str, Any]:
    """AUC within completion-length bins, and how many (up, down) pairs of like length there were."""
    up = labels.astype(bool)
    strata = length_strata(scores.tokens, cfg.length_bins)
    pairs = sum(int(up[strata == s].sum()) * int((~up[strata == s]).sum()) for s in np.unique(strata))
    out: dict[str, Any] = {"pairs": pairs, "bins": len(np.unique(strata))}
    if pairs:
        out["auc"] = stats.estimate(
            stats.stratified_auc(scores.reward, up, strata),
            clusters,
            cfg.bootstrap_samples,
            cfg.ci_level,
            cfg.seed + 5,
        ).to_dict()
    return out


def approved_mass(frame: pd.DataFrame, scores: TraceScores, cfg: EvalsConfig) -> dict[str, Any]:
    """Change of the log-probability of each prompt's set of approved completions, per token."""
    up = frame["label"].to_numpy(dtype=bool)
    table = pd.DataFrame(
        {
            "prompt": frame["prompt"].to_numpy()[up],
            "completion": frame["completion"].to_numpy()[up],
            "candidate": scores.logp_candidate[up],
            "champion": scores.logp_champion[up],
            "tokens": scores.tokens[up],
        }
    ).drop_duplicates(["prompt", "completion"])
    if table.empty:
        return {"prompts": 0}
    changes = []
    for _, group in table.groupby("prompt", sort=True):
        lse_c = np.logaddexp.reduce(group["candidate"].to_numpy())
        lse_h = np.logaddexp.reduce(group["champion"].to_numpy())
        changes.append((lse_c - lse_h) / max(float(group["tokens"].mean()), 1.0))
    values = np.array(changes)
    est = stats.estimate(
        stats.weighted_mean(values), np.arange(len(values)), cfg.bootstrap_samples, cfg.ci_level, cfg.seed + 6
    )
    return {"prompts": len(values), "change_per_token": est.to_dict()}


def slice_metrics(
    frame: pd.DataFrame, scores: TraceScores, clusters: np.ndarray, cfg: EvalsConfig
) -> list[dict[str, Any]]:
    """AUC and margin per tag value for the configured tag keys; small or one-label slices are marked."""
    row_tags = tags(frame)
    up = frame["label"].to_numpy(dtype=bool)
    result = []
    for key, value, mask in tag_slices(row_tags, cfg.slice_tag_keys):
        n_up, n_down = int(up[mask].sum()), int((~up[mask]).sum())
        entry: dict[str, Any] = {"key": key, "value": value, "rows": int(mask.sum()), "up": n_up}
        entry["down"] = n_down
        entry["judged"] = bool(mask.sum() >= cfg.min_slice_rows and n_up and n_down)
        if n_up and n_down:
            r, lab, cl = scores.reward[mask], up[mask], clusters[mask]
            auc = stats.estimate(
                stats.weighted_auc(r, lab), cl, cfg.bootstrap_samples, cfg.ci_level, cfg.seed
            )
            entry["auc"] = auc.to_dict()
            entry["margin"] = float(stats.weighted_margin(r, lab)(np.ones((1, len(r))))[0])
        result.append(entry)
    return result
