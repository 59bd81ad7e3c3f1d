"""Configuration of the nightly curation job."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from core.registry import RegistrySettings
from core.settings import Sectioned, setting
from curation.pii import check_regions

CONFLICT_POLICIES = ("majority", "drop", "keep")
TIE_POLICIES = ("drop", "keep")
BALANCE_MODES = ("weights", "downsample")
SPLIT_KEYS = ("session", "prompt", "component")
SNAPSHOT_CODECS = ("snappy", "zstd", "lz4_raw")
DATA_DOCS = ("after", "inline", "off")
# Data-quality expectations that may be made critical (stop the round) or left as warnings.
DQ_CHECKS = (
    "raw_required_not_null",
    "raw_allowed_labels",
    "raw_timestamps_in_range",
    "raw_duplicate_rate",
    "orphan_rate",
    "aged_out_share",
    "curated_required_not_null",
    "curated_lengths",
    "class_ratio",
    "both_classes_in_train",
    "min_train_rows",
    "eval_share",
    "known_model_versions",
)


@dataclasses.dataclass(frozen=True)
class CurationConfig:
    """How raw feedback becomes a KTO snapshot."""

    max_age_days: int = setting(30, "feedback older than this many days (before --as-of) is aged out")
    trace_lookback_days: int = setting(
        7, "traces served up to this many days before the oldest feedback kept are read for the join"
    )
    grace_hours: float = setting(
        6.0, "feedback whose trace has not arrived after this many hours is orphaned (before: pending)"
    )
    keep_last_champions: int = setting(
        3, "feedback on model versions older than the last K champions is aged out (0 keeps every version)"
    )
    conflict_policy: str = setting(
        "majority",
        "users disagreeing on one prompt+completion: majority (minority dropped), drop (all), keep (all)",
    )
    tie_policy: str = setting("drop", "with conflict_policy=majority, an even split is dropped or kept")
    min_prompt_chars: int = setting(1, "shorter prompts (after trimming) are dropped as empty")
    max_prompt_chars: int = setting(8000, "longer prompts are dropped as over-long")
    min_completion_chars: int = setting(1, "shorter completions (after trimming) are dropped as empty")
    max_completion_chars: int = setting(8000, "longer completions are dropped as over-long")
    redact_pii: bool = setting(
        True,
        "replace emails, card numbers, IP addresses, phone numbers, US SSNs, IBANs and secrets "
        "(API keys, JWTs, private keys)",
    )
    pii_phone_regions: tuple[str, ...] = setting(
        ("US", "GB", "DE", "FR", "IN"),
        "regions (ISO 3166 codes) whose national phone formats are redacted; numbers written with +"
        " are redacted whatever their country",
    )
    rating_desirable_at: float = setting(
        0.75,
        "a rating whose score is at least this far up its scale (0 = min, 1 = max) is desirable "
        "(4 of 1-5 stars is 0.75)",
    )
    rating_undesirable_at: float = setting(
        0.25,
        "a rating whose score is at most this far up its scale is undesirable; ratings in between are "
        "not trained on (counted as ratings_between)",
    )
    desirable_categories: tuple[str, ...] = setting(
        ("helpful", "correct", "good"),
        "categorical ratings (kind rating with a label) trained on as desirable",
    )
    undesirable_categories: tuple[str, ...] = setting(
        ("unhelpful", "incorrect", "bad", "harmful", "hallucination"),
        "categorical ratings trained on as undesirable; a category in neither list is not trained on "
        "(counted as ratings_unmapped)",
    )
    max_per_prompt: int = setting(50, "at most this many rows per distinct prompt (0: no cap)")
    max_per_user: int = setting(1000, "at most this many rows per user (0: no cap)")
    pairs: bool = setting(
        True, "mine preference pairs (edits, opposite thumbs) into pairs.parquet / pairs_eval.parquet"
    )
    pairs_window_hours: float = setting(
        24.0, "opposite thumbs on one prompt and model version pair up only this many hours apart"
    )
    pairs_per_prompt: int = setting(4, "at most this many pairs per distinct prompt (0: no cap)")
    pairs_per_user: int = setting(200, "at most this many pairs per user of the chosen side (0: no cap)")
    balance: str = setting(
        "weights", "weights: KTO class weights with the ratio in [1, 4/3]; downsample: drop majority rows"
    )
    eval_fraction: float = setting(0.1, "share of sessions (else traces) held out for evaluation")
    split_by: str = setting(
        "session",
        "what the held-out split hashes: session (else trace) ids, or prompts (when prompts repeat "
        "across sessions, which keeps them in train and shrinks the eval split: see eval_share), "
        "or component: groups of sessions that share prompts, which holds eval near eval_fraction "
        "with no prompt and no session on both sides",
    )
    seed: int = setting(0, "salts the split, caps and downsampling: same seed, same snapshot")
    threads: int = setting(2, "DuckDB worker threads")
    memory_limit: str = setting("2.5GB", "DuckDB memory limit (spills to disk beyond it)")
    snapshot_compression: str = setting(
        "snappy", "Parquet codec of train/eval: snappy (fastest to write), zstd (smallest) or lz4_raw"
    )
    critical_checks: tuple[str, ...] = setting(
        (
            "raw_required_not_null",
            "raw_allowed_labels",
            "curated_required_not_null",
            "curated_lengths",
            "both_classes_in_train",
            "min_train_rows",
        ),
        "data-quality checks that stop the round when they fail; the others are warnings",
    )
    data_docs: str = setting(
        "after",
        "when the Great Expectations Data Docs are rendered (the checks are decided without GX either "
        "way): after (a process of its own once the snapshot is published; quality/gx.status says "
        "where it stands), inline (before curate returns) or off (`flywheel report SNAPSHOT` renders them)",
    )
    max_duplicate_rate: float = setting(
        0.2, "raw_duplicate_rate fails above this share of duplicate event_ids"
    )
    max_orphan_rate: float = setting(0.1, "orphan_rate fails above this share of feedback without a trace")
    max_aged_out_share: float = setting(0.8, "aged_out_share fails above this share of feedback aged out")
    min_desirable_share: float = setting(0.05, "class_ratio fails when train has a smaller desirable share")
    max_desirable_share: float = setting(0.95, "class_ratio fails when train has a larger desirable share")
    max_future_skew_minutes: float = setting(
        10.0, "raw_timestamps_in_range fails for event times this far after their ingestion"
    )
    min_train_rows: int = setting(2, "min_train_rows fails with fewer training rows")
    min_eval_share_of_fraction: float = setting(
        0.5,
        "eval_share fails when the eval split's share of rows is below this times eval_fraction "
        "(prompts repeated across sessions stay in train, which shrinks the eval split; "
        "split_by = prompt avoids it)",
    )

    def validate(self) -> list[str]:
        problems = []
        if self.conflict_policy not in CONFLICT_POLICIES:
            problems.append(
                f"conflict_policy must be one of {CONFLICT_POLICIES}, got {self.conflict_policy!r}"
            )
        if self.tie_policy not in TIE_POLICIES:
            problems.append(f"tie_policy must be one of {TIE_POLICIES}, got {self.tie_policy!r}")
        if self.balance not in BALANCE_MODES:
            problems.append(f"balance must be one of {BALANCE_MODES}, got {self.balance!r}")
        if self.snapshot_compression not in SNAPSHOT_CODECS:
            problems.append(
                f"snapshot_compression must be one of {SNAPSHOT_CODECS}, got {self.snapshot_compression!r}"
            )
        if self.pairs_window_hours < 0 or self.pairs_per_prompt < 0 or self.pairs_per_user < 0:
            problems.append("pairs_window_hours, pairs_per_prompt and pairs_per_user must be >= 0")
        if not 0.0 <= self.eval_fraction < 1.0:
            problems.append(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.data_docs not in DATA_DOCS:
            problems.append(f"data_docs must be one of {DATA_DOCS}, got {self.data_docs!r}")
        if self.split_by not in SPLIT_KEYS:
            problems.append(f"split_by must be one of {SPLIT_KEYS}, got {self.split_by!r}")
        if not 0.0 <= self.min_eval_share_of_fraction <= 1.0:
            problems.append(
                f"min_eval_share_of_fraction must be in [0, 1], got {self.min_eval_share_of_fraction}"
            )
        for name in ("max_age_days", "trace_lookback_days", "keep_last_champions", "max_per_prompt"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_per_user < 0 or self.grace_hours < 0 or self.threads < 1:
            problems.append("max_per_user and grace_hours must be >= 0 and threads >= 1")
        if not 0.0 <= self.rating_undesirable_at < self.rating_desirable_at <= 1.0:
            problems.append(
                "need 0 <= rating_undesirable_at < rating_desirable_at <= 1, got "
                f"{self.rating_undesirable_at} and {self.rating_desirable_at}"
            )
        both = set(self.desirable_categories) & set(self.undesirable_categories)
        if both:
            problems.append(
                f"categories both desirable and undesirable: {sorted(both)}; keep each in one list"
            )
        if self.min_prompt_chars > self.max_prompt_chars:
            problems.append("min_prompt_chars must be <= max_prompt_chars")
        if self.min_completion_chars > self.max_completion_chars:
            problems.append("min_completion_chars must be <= max_completion_chars")
        try:
            check_regions(self.pii_phone_regions)
        except ValueError as e:
            problems.append(f"pii_phone_regions: {e}")
        unknown = [c for c in self.critical_checks if c not in DQ_CHECKS]
        if unknown:
            problems.append(f"critical_checks has unknown checks {unknown}; known: {list(DQ_CHECKS)}")
        if not 0.0 <= self.min_desirable_share <= self.max_desirable_share <= 1.0:
            problems.append("need 0 <= min_desirable_share <= max_desirable_share <= 1")
        return problems


class CurationSettings(RegistrySettings, Sectioned, Protocol):
    """What curation reads: ``[paths]``, ``[registry]`` and ``[curation]`` (``flywheel.config.Config`` has them all)."""

    @property
    def curation(self) -> CurationConfig: ...
