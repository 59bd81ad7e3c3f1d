"""Replay: both models answer held-out prompts; a judge compares each pair; drift is measured on the answers.

Win rate is the mean judgement (1 win, 0.5 tie, 0 loss). The length-controlled
win rate regresses the judgement on tanh(length difference / its standard
deviation) and reports the win rate at zero difference (AlpacaEval 2 LC), so a
candidate cannot win by writing more. KL(candidate || champion) is estimated on
the candidate's own sampled answers: the mean of log p_cand(y) − log p_champ(y),
per token.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pandas as pd

from evals import stats
from evals.config import EvalsConfig
from evals.data import render_prompt, tag_slices, tags
from evals.generate import sample
from evals.judges import Judge
from evals.scoring import Loaded, encode, logprobs


@dataclasses.dataclass
class Replay:
    prompts: list[str]  # as stored in the snapshot
    candidate: list[str]
    champion: list[str]
    clusters: np.ndarray
    tags: list[dict[str, str]]  # the trace tags of each prompt's held-out row
    kl_per_token: np.ndarray  # per candidate answer
    judgement: np.ndarray | None  # None without a judge
    margin: np.ndarray | None


def pick_prompts(frame: pd.DataFrame, clusters: np.ndarray, count: int, seed: int) -> pd.DataFrame:
    """Distinct held-out prompts, a seeded sample of at most ``count``."""
    distinct = frame.assign(_cluster=clusters).drop_duplicates("prompt")
    if len(distinct) > count:
        distinct = distinct.sample(n=count, random_state=seed)
    return distinct.reset_index(drop=True)


def run_replay(
    frame: pd.DataFrame,
    clusters: np.ndarray,
    cand: Loaded,
    champ: Loaded,
    judge: Judge | None,
    cfg: EvalsConfig,
) -> Replay:
    chosen = pick_prompts(frame, clusters, cfg.replay_prompts, cfg.seed)
    sampled = {}
    rendered: dict[str, list[str]] = {}
    for m in (cand, champ):
        rendered[m.name] = [
            render_prompt(p, f, m.tokenizer)
            for p, f in zip(chosen["prompt"], chosen["prompt_format"], strict=True)
        ]
        sampled[m.name] = sample(
            m,
            rendered[m.name],
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            max_prompt_tokens=cfg.max_length,
        )
    answers = {name: [a.text for a in got] for name, got in sampled.items()}
    if cand.tokenizer.get_vocab() == champ.tokenizer.get_vocab():
        # The very tokens the candidate sampled: the estimate is over the samples themselves (text
        # tokenized again may split differently from how it was generated).
        same = [(a.prompt_ids, a.answer_ids) for a in sampled[cand.name]]
        pairs = {cand.name: same, champ.name: same}
    else:  # each model reads the candidate's text in its own tokens
        pairs = {
            m.name: encode(m.tokenizer, rendered[cand.name], answers[cand.name], cfg.append_eos)
            for m in (cand, champ)
        }
    lc, n = logprobs(cand, pairs[cand.name], cfg.batch_size, cfg.max_length)
    lh, _ = logprobs(champ, pairs[champ.name], cfg.batch_size, cfg.max_length)
    kl = (lc - lh) / np.maximum(n, 1)
    prompts = list(chosen["prompt"])
    judgement, margin = judge(prompts, answers[cand.name], answers[champ.name]) if judge else (None, None)
    clusters_chosen = chosen["_cluster"].to_numpy()
    return Replay(
        prompts, answers[cand.name], answers[champ.name], clusters_chosen, tags(chosen), kl, judgement, margin
    )


def slice_metrics(r: Replay, cfg: EvalsConfig) -> list[dict[str, Any]]:
    """Win rate per tag value for the configured tag keys (as the agreement slices), with a
    cluster-bootstrap interval; slices with fewer than ``min_slice_prompts`` prompts are marked
    not judged. Empty without a judge."""
    if r.judgement is None:
        return []
    result = []
    for key, value, mask in tag_slices(r.tags, cfg.slice_tag_keys):
        judged = r.judgement[mask]
        win_rate = stats.estimate(
            stats.weighted_mean(judged), r.clusters[mask], cfg.bootstrap_samples, cfg.ci_level, cfg.seed
        )
        entry: dict[str, Any] = {
            "key": key,
            "value": value,
            "prompts": int(mask.sum()),
            "wins": int((judged > 0.5).sum()),
            "ties": int((judged == 0.5).sum()),
            "losses": int((judged < 0.5).sum()),
            "judged": bool(mask.sum() >= cfg.min_slice_prompts),
            "win_rate": win_rate.to_dict(),
        }
        result.append(entry)
    return result


def _rate(texts: list[str], test: Any) -> float:
    return float(np.mean([bool(test(t)) for t in texts])) if texts else 0.0


def replay_metrics(r: Replay, cfg: EvalsConfig) -> dict[str, Any]:
    b, level, seed = cfg.bootstrap_samples, cfg.ci_level, cfg.seed
    len_cand = np.array([len(t) for t in r.candidate], dtype=np.float64)
    len_champ = np.array([len(t) for t in r.champion], dtype=np.float64)
    out: dict[str, Any] = {
        "prompts": len(r.prompts),
        "mean_length_candidate": float(len_cand.mean()) if len(len_cand) else 0.0,
        "mean_length_champion": float(len_champ.mean()) if len(len_champ) else 0.0,
        "length_ratio": float(len_cand.mean() / max(len_champ.mean(), 1.0)) if len(len_cand) else 1.0,
        "kl_per_token": stats.estimate(
            stats.weighted_mean(r.kl_per_token), r.clusters, b, level, seed
        ).to_dict(),
    }
    if r.judgement is not None and len(r.judgement):
        diff = len_cand - len_champ
        out["win_rate"] = stats.estimate(
            stats.weighted_mean(r.judgement), r.clusters, b, level, seed
        ).to_dict()
        out["lc_win_rate"] = stats.estimate(
            stats.lc_win_rate(r.judgement, diff), r.clusters, b, level, seed
        ).to_dict()
        out["wins"] = int((r.judgement > 0.5).sum())
        out["ties"] = int((r.judgement == 0.5).sum())
        out["losses"] = int((r.judgement < 0.5).sum())
    if cfg.format_regex:
        pattern = re.compile(cfg.format_regex)
        out["format_rate_candidate"] = _rate(r.candidate, pattern.search)
        out["format_rate_champion"] = _rate(r.champion, pattern.search)
    if cfg.refusal_patterns:
        lowered = [p.lower() for p in cfg.refusal_patterns]

        def refuses(text: str) -> bool:
            return any(p in text.lower() for p in lowered)

        out["refusal_rate_candidate"] = _rate(r.candidate, refuses)
        out["refusal_rate_champion"] = _rate(r.champion, refuses)
    return out
