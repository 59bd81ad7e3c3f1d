"""Configuration of the trace-based gate."""

from __future__ import annotations

import dataclasses
import re
from typing import Protocol

from core.registry import RegistrySettings
from core.settings import Sectioned, setting

PRIMARY_METRICS = ("auto", "auc", "margin", "win_rate", "lc_win_rate")
NO_IMPROVEMENT = {"auc": 0.5, "margin": 0.0, "win_rate": 0.5, "lc_win_rate": 0.5}
SEVERITIES = ("veto", "warning")
JUDGE_KINDS = ("rubric", "reward_model", "endpoint", "none")
CLUSTERS = ("session_id", "user_id", "trace_id")


@dataclasses.dataclass(frozen=True)
class EvalsConfig:
    """How a candidate is judged against the champion."""

    seed: int = setting(0, "seed for sampling and bootstrap resampling")
    primary_metric: str = setting(
        "auto",
        "metric whose confidence interval must exclude no improvement: auto (lc_win_rate with a judge, "
        "else auc) | auc | margin | win_rate | lc_win_rate",
    )
    power: float = setting(0.8, "power at which the report states the smallest effect the run could detect")
    bootstrap_samples: int = setting(1000, "bootstrap resamples for every confidence interval")
    ci_level: float = setting(0.95, "confidence level of the intervals (two-sided)")
    cluster_by: str = setting(
        "session_id",
        "resample by this column's clusters: session_id | user_id | trace_id (null ids fall back)",
    )
    reward_normalization: str = setting(
        "mean", "implicit reward per completion: mean (per token, length-aware) | sum (whole sequence)"
    )
    append_eos: bool = setting(
        True, "score the end-of-sequence token after each completion (stopping counts)"
    )
    batch_size: int = setting(16, "sequences per forward pass when scoring and generating")
    max_eval_rows: int = setting(2000, "score at most this many held-out rows (a seeded sample beyond)")
    max_length: int = setting(1024, "prompt + completion tokens scored at most (longer prompts are cut left)")
    device: str = setting("auto", "auto | cpu | cuda | cuda:N")
    # Replay
    replay_prompts: int = setting(
        512,
        "distinct held-out prompts both models answer at most (all of them when fewer; the report says "
        "how many were used and how many there were); 0 skips replay",
    )
    replay_samples: int = setting(
        16,
        "answers per prompt and model (independent samples; an endpoint judge compares the j-th "
        "answers, a rubric or reward model each candidate answer with 4 champion answers to the "
        "prompt; the analysis is clustered by prompt); 1 when temperature is 0",
    )
    max_new_tokens: int = setting(64, "tokens generated per replay answer at most")
    temperature: float = setting(1.0, "sampling temperature of replay answers (0 = greedy)")
    top_p: float = setting(1.0, "nucleus sampling of replay answers")
    judge: str = setting(
        "none", "who compares replay pairs: rubric | reward_model | endpoint | none (guards only)"
    )
    rubric: str = setting(
        "",
        'python judge "module:function" taking (prompt, completion) and returning a score (higher is better)',
    )
    reward_model: str = setting("", "path to a Hugging Face sequence-classification reward model")
    judge_url: str = setting(
        "", "OpenAI-compatible chat completions URL, e.g. http://host:8000/v1/chat/completions"
    )
    judge_model: str = setting("", "model name sent to the judge endpoint")
    judge_api_key_env: str = setting(
        "OPENAI_API_KEY", "environment variable holding the judge endpoint's key"
    )
    judge_timeout_s: float = setting(60.0, "timeout of one judge request")
    judge_max_tokens: int = setting(
        16, "max_tokens of a judge reply (raise it for a reasoning judge; the last A or B counts)"
    )
    judge_prompt: str = setting(
        "",
        "judge prompt template with {prompt}, {a} and {b} (empty: the built-in one); the reply's "
        "last standalone A or B is the verdict",
    )
    judge_concurrency: int = setting(4, "judge requests in flight at once")
    judge_retries: int = setting(
        6, "retries of a judge request on 429, 5xx, timeouts and dropped connections"
    )
    judge_backoff_s: float = setting(
        1.0, "first wait before a retry (doubling, with jitter; a Retry-After header wins)"
    )
    judge_max_backoff_s: float = setting(60.0, "longest wait between two retries")
    # Evidence: an interval from a handful of rows or sessions is not evidence, however narrow.
    min_eval_rows_per_class: int = setting(
        20, "check min_evidence: held-out thumbs-up rows and thumbs-down rows each at least this"
    )
    min_eval_clusters: int = setting(
        30, "check min_evidence: distinct clusters (cluster_by) the bootstrap resamples at least this"
    )
    min_replay_pairs: int = setting(
        30, "check min_evidence: judged replay pairs at least this when the primary metric is a win rate"
    )
    # Guards. Each tests one failure of preference training on evidence; "warning" marks what a
    # significant judged win (the judge read the very answers) turns from a veto into a warning.
    min_length_ratio: float = setting(
        0.1,
        "runaway bound: candidate/champion mean replay answer length at least (a night that cuts "
        "answers tenfold is a collapse, whatever users like)",
    )
    max_length_ratio: float = setting(
        4.0,
        "runaway bound: candidate/champion mean replay answer length at most (serving cost and "
        "latency; users' taste for length is judged by length_control, not here)",
    )
    length_bins: int = setting(
        8, "length control without a judge: held-out rows are compared within this many length bins"
    )
    min_length_matched_pairs: int = setting(
        200,
        "length control without a judge: (thumbs-up, thumbs-down) pairs of like length needed to "
        "test the agreement at equal length; fewer and the check only warns",
    )
    max_approved_mass_drop: float = setting(
        0.1,
        "chosen-probability guard: the probability the candidate gives, per prompt, to all the "
        "completions users approved may fall by at most this (nats per token), with evidence",
    )
    max_kl: float = setting(
        1.0,
        "drift guard: KL(candidate || champion) per token on the candidate's answers at most (a "
        "warning when the judged win is significant)",
    )
    max_unsupported_increase: float = setting(
        0.3,
        "support guard: share of the candidate's answers less likely under the champion than 95% of "
        "the champion's own, above the champion's 5%, at most this (a warning with a judged win)",
    )
    max_degenerate_increase: float = setting(
        0.1, "health guard: rise in empty, unfinished (no end of sequence) or repetitive answers"
    )
    repetition_threshold: float = setting(
        0.3, "an answer is repetitive when this share of its word bigrams are repeats"
    )
    slice_tag_keys: tuple[str, ...] = setting(("workload",), "trace tags whose values define slices")
    min_slice_rows: int = setting(
        20, "slices with fewer held-out rows (or without both labels) are not judged"
    )
    max_slice_auc_drop: float = setting(
        0.1,
        "slice guard: a slice fails when its AUC is below 0.5 minus this and its interval lies below 0.5",
    )
    min_slice_prompts: int = setting(
        20, "replay slices (same tag keys) with fewer judged prompts are not judged"
    )
    max_slice_win_drop: float = setting(
        0.1,
        "slice guard: a replay slice fails when its win rate is below 0.5 minus this and its interval "
        "lies below 0.5",
    )
    format_regex: str = setting("", "guard (optional): answers should match this regex (empty disables)")
    max_format_drop: float = setting(0.1, "guard: format match rate may drop by at most this")
    refusal_patterns: tuple[str, ...] = setting(
        ("I can't", "I cannot", "I'm sorry", "As an AI"),
        "guard (optional): substrings that mark a refusal (empty disables)",
    )
    max_refusal_increase: float = setting(0.05, "guard: refusal rate may rise by at most this")
    examples: int = setting(5, "biggest wins and losses shown side by side in the report")

    def validate(self) -> list[str]:
        problems = []
        if self.primary_metric not in PRIMARY_METRICS:
            problems.append(
                f"primary_metric {self.primary_metric!r} is not one of {', '.join(PRIMARY_METRICS)}"
            )
        if self.judge not in JUDGE_KINDS:
            problems.append(f"judge {self.judge!r} is not one of {', '.join(JUDGE_KINDS)}")
        if self.cluster_by not in CLUSTERS:
            problems.append(f"cluster_by {self.cluster_by!r} is not one of {', '.join(CLUSTERS)}")
        if self.reward_normalization not in ("mean", "sum"):
            problems.append("reward_normalization must be mean or sum")
        if not 0.5 < self.ci_level < 1:
            problems.append(f"ci_level {self.ci_level} must be between 0.5 and 1")
        if self.bootstrap_samples < 100:
            problems.append(
                f"bootstrap_samples {self.bootstrap_samples} is too few for an interval (use >= 100)"
            )
        if self.batch_size < 1 or self.max_new_tokens < 1 or self.replay_prompts < 0:
            problems.append("batch_size and max_new_tokens must be >= 1, replay_prompts >= 0")
        if self.replay_samples < 1:
            problems.append(f"replay_samples {self.replay_samples} must be >= 1 (4 gives the win rate power)")
        if not 0.5 <= self.power < 1:
            problems.append(f"power {self.power} must be in [0.5, 1)")
        if self.judge_concurrency < 1 or self.judge_retries < 0 or self.judge_max_tokens < 1:
            problems.append("judge_concurrency and judge_max_tokens must be >= 1, judge_retries >= 0")
        if self.judge_prompt and not all(f"{{{k}}}" in self.judge_prompt for k in ("prompt", "a", "b")):
            problems.append("judge_prompt must contain {prompt}, {a} and {b}")
        if self.length_bins < 1 or self.min_length_matched_pairs < 1:
            problems.append("length_bins and min_length_matched_pairs must be >= 1")
        if min(self.max_approved_mass_drop, self.max_kl, self.max_unsupported_increase) < 0:
            problems.append("max_approved_mass_drop, max_kl and max_unsupported_increase must be >= 0")
        if not 0 < self.repetition_threshold <= 1:
            problems.append("repetition_threshold must be in (0, 1]")
        if min(self.min_eval_rows_per_class, self.min_eval_clusters, self.min_replay_pairs) < 1:
            problems.append(
                "min_eval_rows_per_class, min_eval_clusters and min_replay_pairs must be >= 1 "
                "(the gate never promotes without held-out evidence)"
            )
        if self.min_slice_rows < 1 or self.min_slice_prompts < 1:
            problems.append("min_slice_rows and min_slice_prompts must be >= 1")
        if not 0 <= self.max_slice_auc_drop <= 0.5 or not 0 <= self.max_slice_win_drop <= 0.5:
            problems.append("max_slice_auc_drop and max_slice_win_drop must be in [0, 0.5]")
        if self.min_length_ratio > self.max_length_ratio:
            problems.append("min_length_ratio must not exceed max_length_ratio")
        if self.min_length_ratio <= 0:
            problems.append("min_length_ratio must be > 0")
        if self.primary_metric in ("win_rate", "lc_win_rate") and (
            self.judge == "none" or not self.replay_prompts
        ):
            problems.append(
                f"primary_metric {self.primary_metric} needs replay: set judge and replay_prompts > 0"
            )
        if self.judge == "rubric" and ":" not in self.rubric:
            problems.append(f'rubric {self.rubric!r} must be "module:function"')
        if self.judge == "endpoint" and not (self.judge_url and self.judge_model):
            problems.append("judge = endpoint needs judge_url and judge_model")
        if self.judge == "reward_model" and not self.reward_model:
            problems.append("judge = reward_model needs reward_model (a path)")
        if self.format_regex:
            try:
                re.compile(self.format_regex)
            except re.error as exc:
                problems.append(f"format_regex {self.format_regex!r} is not a regular expression: {exc}")
        return problems

    def primary(self) -> str:
        """The metric that decides: ``auto`` is the length-controlled win rate when a judge replays
        answers, else the agreement AUC with held-out thumbs."""
        if self.primary_metric != "auto":
            return self.primary_metric
        return "lc_win_rate" if self.judge != "none" and self.replay_prompts else "auc"

    def replay_draws(self) -> int:
        """Answers per prompt and model: one when sampling is greedy (more would be copies)."""
        return 1 if self.temperature == 0 else self.replay_samples


class EvalsSettings(RegistrySettings, Sectioned, Protocol):
    """What the gate reads: ``[paths]``, ``[registry]`` and ``[evals]`` (``flywheel.config.Config`` has them all)."""

    @property
    def evals(self) -> EvalsConfig: ...
