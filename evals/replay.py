"""Replay: both models answer the held-out prompts, several times each; a judge compares the answers
pair by pair; drift and health are measured on the answers themselves.

Power comes from three choices. Every distinct held-out prompt is used (up to
``replay_prompts``; the metrics say how many there were and how many were used). Each model answers
each prompt ``replay_samples`` times, with its own random stream (two copies of one model then tie
on average instead of always). The j-th answers of the two models form a pair, and every interval
resamples prompts, so the answers to one prompt count as one cluster, not as independent evidence.

Win rate is the mean judgement (1 win, 0.5 tie, 0 loss). The length-controlled win rate corrects
for a judge whose taste for length is not the users' (see :func:`_length_control`): it regresses
the judgement on tanh(length difference / its standard deviation) and reports the win rate at zero
difference (AlpacaEval 2 LC), so a candidate cannot win by writing more than users want. Each estimate carries the
smallest effect the run could detect (its standard error times z_(1-alpha/2) + z_power).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pandas as pd

from evals import health, stats
from evals.config import EvalsConfig
from evals.data import render_prompt, tag_slices, tags
from evals.generate import Answer, sample
from evals.judges import Judge, PointwiseJudge, compare
from evals.scoring import Loaded, encode, token_logprobs


@dataclasses.dataclass
class Replay:
    prompts: list[str]  # per pair: the prompt as stored in the snapshot
    candidate: list[str]  # per pair: the candidate's answer
    champion: list[str]  # per pair: the champion's answer
    clusters: np.ndarray  # per pair: the prompt it answers (every interval resamples prompts)
    tags: list[dict[str, str]]  # per pair: the trace tags of its prompt's held-out row
    kl_per_token: np.ndarray  # per candidate answer
    judgement: np.ndarray | None  # None without a judge
    margin: np.ndarray | None
    prompt_formats: list[str] = dataclasses.field(default_factory=list)
    prompts_available: int = 0  # distinct held-out prompts there were
    samples: int = 1  # answers per prompt and model
    degenerate: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # by model role
    unsupported: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    support_cut: float = float("nan")  # the champion's 5th percentile of per-token log-prob
    answer_clusters: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # per answer (kl, degenerate, unsupported): the prompt it answers; pairs may be more (a pointwise
    # judge compares each candidate answer with several champion answers to the same prompt)

    @property
    def prompts_used(self) -> int:
        return len(np.unique(self.clusters))


POINTWISE_PAIRS = 4  # champion answers each candidate answer is compared with, by a pointwise judge


def pick_prompts(frame: pd.DataFrame, count: int, seed: int) -> tuple[pd.DataFrame, int]:
    """Distinct held-out prompts (the first row of each carries its tags), a seeded sample of at
    most ``count``, and how many distinct prompts there were."""
    distinct = frame.drop_duplicates("prompt")
    available = len(distinct)
    if count and available > count:
        distinct = distinct.sample(n=count, random_state=seed)
    return distinct.reset_index(drop=True), available


def _sample(m: Loaded, rendered: list[str], cfg: EvalsConfig, seed: int) -> list[Answer]:
    return sample(
        m,
        rendered,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        batch_size=cfg.batch_size,
        seed=seed,
        max_prompt_tokens=cfg.max_length,
    )


def run_replay(
    frame: pd.DataFrame,
    cand: Loaded,
    champ: Loaded,
    judge: Judge | None,
    cfg: EvalsConfig,
) -> Replay:
    chosen, available = pick_prompts(frame, cfg.replay_prompts, cfg.seed)
    k = cfg.replay_draws()
    # Each prompt k times in a row: the j-th answers of the two models to a prompt form a pair.
    index = np.repeat(np.arange(len(chosen)), k)
    prompts = [str(chosen["prompt"].iloc[i]) for i in index]
    formats = [str(chosen["prompt_format"].iloc[i]) for i in index]
    rendered = {
        m.name: [render_prompt(p, f, m.tokenizer) for p, f in zip(prompts, formats, strict=True)]
        for m in (cand, champ)
    }
    # Independent random streams: the same seed for both would make a copy of the champion tie on
    # every pair, and any two similar models agree far more often than chance.
    sampled = {
        m.name: _sample(m, rendered[m.name], cfg, cfg.seed * 2 + role) for role, m in enumerate((cand, champ))
    }
    answers = {name: [a.text for a in got] for name, got in sampled.items()}
    same_vocab = cand.tokenizer.get_vocab() == champ.tokenizer.get_vocab()
    if same_vocab:
        # The very tokens each model sampled (text tokenized again may split differently).
        own = {name: [(a.prompt_ids, a.answer_ids) for a in got] for name, got in sampled.items()}
        on_cand = {cand.name: own[cand.name], champ.name: own[cand.name]}
        champ_own = own[champ.name]
    else:  # each model reads the candidate's text in its own tokens
        on_cand = {
            m.name: encode(m.tokenizer, rendered[m.name], answers[cand.name], cfg.append_eos)
            for m in (cand, champ)
        }
        champ_own = encode(champ.tokenizer, rendered[champ.name], answers[champ.name], cfg.append_eos)
    lc = token_logprobs(cand, on_cand[cand.name], cfg.batch_size, cfg.max_length)
    lh = token_logprobs(champ, on_cand[champ.name], cfg.batch_size, cfg.max_length)
    lh_own = token_logprobs(champ, champ_own, cfg.batch_size, cfg.max_length)
    kl = health.k3_kl(lc, lh)

    def per_token(values: list[np.ndarray]) -> np.ndarray:
        return np.array([float(v.mean()) if len(v) else 0.0 for v in values])

    unsupported_cand, unsupported_champ, cut = health.unsupported(per_token(lh), per_token(lh_own))
    degenerate = {
        m.name: health.degenerate(
            answers[m.name],
            [a.answer_ids for a in sampled[m.name]],
            m.tokenizer.eos_token_id,
            cfg.max_new_tokens,
            cfg.repetition_threshold,
        )
        for m in (cand, champ)
    }
    # Pairs: the j-th answers of the two models; a pointwise judge scores each answer once, so each
    # candidate answer can meet several champion answers to its prompt at no extra cost.
    judgement: np.ndarray | None = None
    margin: np.ndarray | None = None
    if k > 1 and isinstance(judge, PointwiseJudge):
        s_c, s_h = judge.score(prompts, answers[cand.name]), judge.score(prompts, answers[champ.name])
        # Each candidate answer meets POINTWISE_PAIRS champion answers (j, j+1, ... mod k): most of
        # the power of all k*k pairs, in a quarter of the rows at k = 16.
        m = min(k, POINTWISE_PAIRS)
        j, r = np.divmod(np.arange(k * m), m)
        left = (np.arange(len(chosen))[:, None] * k + j).ravel()
        right = (np.arange(len(chosen))[:, None] * k + (j + r) % k).ravel()
        judgement, margin = compare(s_c[left], s_h[right])
    else:
        left = right = np.arange(len(prompts))
        if judge is not None:
            judgement, margin = judge(prompts, answers[cand.name], answers[champ.name])
    row_tags = tags(chosen)
    return Replay(
        prompts=[prompts[i] for i in left],
        candidate=[answers[cand.name][i] for i in left],
        champion=[answers[champ.name][i] for i in right],
        clusters=index[left],
        tags=[row_tags[i] for i in index[left]],
        kl_per_token=kl,
        judgement=judgement,
        margin=margin,
        prompt_formats=[formats[i] for i in left],
        prompts_available=available,
        samples=k,
        degenerate={"candidate": degenerate[cand.name], "champion": degenerate[champ.name]},
        unsupported={"candidate": unsupported_cand, "champion": unsupported_champ},
        support_cut=cut,
        answer_clusters=index,
    )


def slice_metrics(r: Replay, cfg: EvalsConfig) -> list[dict[str, Any]]:
    """Win rate per tag value for the configured tag keys (as the agreement slices), with an
    interval clustered by prompt; slices with fewer than ``min_slice_prompts`` prompts are marked
    not judged. Empty without a judge."""
    if r.judgement is None:
        return []
    result = []
    for key, value, mask in tag_slices(r.tags, cfg.slice_tag_keys):
        judged = r.judgement[mask]
        win_rate = stats.estimate(
            stats.weighted_mean(judged), r.clusters[mask], cfg.bootstrap_samples, cfg.ci_level, cfg.seed
        )
        prompts = len(np.unique(r.clusters[mask]))
        entry: dict[str, Any] = {
            "key": key,
            "value": value,
            "prompts": prompts,
            "pairs": int(mask.sum()),
            "wins": int((judged > 0.5).sum()),
            "ties": int((judged == 0.5).sum()),
            "losses": int((judged < 0.5).sum()),
            "judged": bool(prompts >= cfg.min_slice_prompts),
            "win_rate": win_rate.to_dict(),
        }
        result.append(entry)
    return result


def _rate(texts: list[str], test: Any) -> float:
    return float(np.mean([bool(test(t)) for t in texts])) if texts else 0.0


def _with_power(est: stats.Estimate, cfg: EvalsConfig) -> dict[str, Any]:
    return {**est.to_dict(), "detectable": stats.detectable_effect(est.se, cfg.ci_level, cfg.power)}


def users_length_preference(frame: pd.DataFrame, clusters: np.ndarray, cfg: EvalsConfig) -> stats.Estimate:
    """The AUC of completion length for held-out thumbs-up against thumbs-down: above 0.5 when
    users approve longer answers, below when shorter."""
    lengths = frame["completion"].str.len().to_numpy(dtype=np.float64)
    up = frame["label"].to_numpy(dtype=bool)
    return stats.estimate(
        stats.weighted_auc(lengths, up), clusters, cfg.bootstrap_samples, cfg.ci_level, cfg.seed + 7
    )


def _length_control(
    r: Replay, diff: np.ndarray, users: stats.Estimate | None, cfg: EvalsConfig
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The length-controlled win rate and why it was or was not controlled.

    The judge's taste for length (the slope of its verdicts on the length difference) is compared
    with the users' (the length AUC of their held-out thumbs). Where both lean the same way (or
    neither leans), the judge's length preference is the users' own and the win needs no
    correction: it is the raw win rate. Where they differ (the classic case: a judge that prefers
    longer answers, users who do not), no length difference earns credit: AlpacaEval 2's
    regression, read at zero difference.
    """
    assert r.judgement is not None
    b, level, seed = cfg.bootstrap_samples, cfg.ci_level, cfg.seed
    slope = stats.estimate(stats.length_slope(r.judgement, diff), r.clusters, b, level, seed + 8)
    judge_dir = stats.direction(slope, 0.0)
    users_dir = stats.direction(users, 0.5) if users is not None else 0
    controlled = judge_dir != users_dir
    names = {1: "longer", -1: "shorter", 0: "neither"}
    preference = {
        "judge_slope": slope.to_dict(),
        "judge_prefers": names[judge_dir],
        "users_length_auc": users.to_dict() if users is not None else None,
        "users_prefer": names[users_dir],
        "controlled": controlled,
    }
    stat = stats.lc_win_rate(r.judgement, diff) if controlled else stats.weighted_mean(r.judgement)
    return _with_power(stats.estimate(stat, r.clusters, b, level, seed), cfg), preference


def replay_metrics(r: Replay, cfg: EvalsConfig, users: stats.Estimate | None = None) -> dict[str, Any]:
    b, level, seed = cfg.bootstrap_samples, cfg.ci_level, cfg.seed
    len_cand = np.array([len(t) for t in r.candidate], dtype=np.float64)
    len_champ = np.array([len(t) for t in r.champion], dtype=np.float64)

    answer_clusters = r.answer_clusters if len(r.answer_clusters) == len(r.kl_per_token) else r.clusters

    def paired(role_values: dict[str, np.ndarray], offset: int) -> dict[str, Any]:
        diff = role_values["candidate"] - role_values["champion"]
        est = stats.estimate(stats.weighted_mean(diff), answer_clusters, b, level, seed + offset)
        return {
            "candidate": float(role_values["candidate"].mean()) if len(diff) else 0.0,
            "champion": float(role_values["champion"].mean()) if len(diff) else 0.0,
            "increase": est.to_dict(),
        }

    out: dict[str, Any] = {
        "prompts": r.prompts_used,
        "prompts_available": r.prompts_available,
        "samples_per_prompt": r.samples,
        "pairs": len(r.prompts),
        "mean_length_candidate": float(len_cand.mean()) if len(len_cand) else 0.0,
        "mean_length_champion": float(len_champ.mean()) if len(len_champ) else 0.0,
        "length_ratio": float(len_cand.mean() / max(len_champ.mean(), 1.0)) if len(len_cand) else 1.0,
        "kl_per_token": stats.estimate(
            stats.weighted_mean(r.kl_per_token), answer_clusters, b, level, seed
        ).to_dict(),
    }
    if r.degenerate:
        out["degenerate"] = paired(r.degenerate, 3)
    if r.unsupported:
        out["unsupported"] = {**paired(r.unsupported, 4), "cut_logp_per_token": r.support_cut}
    if r.judgement is not None and len(r.judgement):
        diff = len_cand - len_champ
        out["win_rate"] = _with_power(
            stats.estimate(stats.weighted_mean(r.judgement), r.clusters, b, level, seed), cfg
        )
        out["lc_win_rate"], out["length_preference"] = _length_control(r, diff, users, cfg)
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
