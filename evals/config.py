"""Configuration of the trace-based gate."""

from __future__ import annotations

import dataclasses
import re

from flywheel.config import setting

PRIMARY_METRICS = ("auc", "margin", "win_rate", "lc_win_rate")
NO_IMPROVEMENT = {"auc": 0.5, "margin": 0.0, "win_rate": 0.5, "lc_win_rate": 0.5}
JUDGE_KINDS = ("rubric", "reward_model", "endpoint", "none")
CLUSTERS = ("session_id", "user_id", "trace_id")


@dataclasses.dataclass(frozen=True)
class EvalsConfig:
    """How a candidate is judged against the champion."""

    seed: int = setting(0, "seed for sampling and bootstrap resampling")
    primary_metric: str = setting(
        "auc",
        "metric whose confidence interval must exclude no improvement: auc | margin | win_rate | lc_win_rate",
    )
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
    replay_prompts: int = setting(64, "held-out prompts both models answer (0 skips replay)")
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
    # Guards
    min_length_ratio: float = setting(
        0.25, "guard: candidate/champion mean replay answer length at least (shorter is often better)"
    )
    max_length_ratio: float = setting(1.5, "guard: candidate/champion mean replay answer length at most")
    min_chosen_logp_change: float = setting(
        -0.5, "guard: mean change of per-token log-prob on thumbs-up completions at least (nats)"
    )
    max_kl: float = setting(
        0.5, "guard: KL(candidate || champion) per token on the candidate's answers at most"
    )
    slice_tag_keys: tuple[str, ...] = setting(("workload",), "trace tags whose values define slices")
    min_slice_rows: int = setting(
        20, "slices with fewer held-out rows (or without both labels) are not judged"
    )
    max_slice_auc_drop: float = setting(0.1, "guard: a slice fails when its AUC is below 0.5 minus this")
    min_slice_prompts: int = setting(
        20, "replay slices (same tag keys) with fewer judged prompts are not judged"
    )
    max_slice_win_drop: float = setting(
        0.1, "guard: a replay slice fails when its win rate is below 0.5 minus this"
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
