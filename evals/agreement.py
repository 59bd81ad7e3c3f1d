"""Agreement with users, no judge needed: does the candidate move towards what users liked?

For each held-out (prompt, completion, thumb) the implicit reward is
log π_candidate(y|x) − log π_champion(y|x) (per token when
``reward_normalization = "mean"``, so a long completion does not weigh more
than a short one). A candidate that learned from users gives thumbs-up
completions a higher reward than thumbs-down ones: AUC above 0.5, a positive
margin. The same log-probabilities give the chosen-probability guard (the
mean change on thumbs-up completions, which KTO and DPO can push down) and the
per-slice AUCs over trace tags.
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
        "auc": auc.to_dict(),
        "margin": margin.to_dict(),
        "chosen_logp_change": chosen.to_dict(),
        "rejected_logp_change": rejected.to_dict(),
        "rows": len(labels),
        "thumbs_up": int(up.sum()),
        "thumbs_down": int((~up).sum()),
        "clusters": len(np.unique(clusters)),
    }


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
