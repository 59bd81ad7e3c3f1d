"""Configuration of the training job: KTO on thumbs, or a paired method (DPO, IPO, SimPO, ORPO) on pairs.

The defaults are tuned so that one nightly round on the tiny world (a few hundred to a couple of
thousand rows) finishes in about a minute on two CPU cores and moves the style preference
measurably. For a real 1-8 B model, lower ``learning_rate`` (1e-5 to 5e-5 with LoRA, 5e-7 to
5e-6 full) and raise ``max_length``; ``bf16`` and ``gradient_checkpointing`` switch on by
themselves on a GPU.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from core.registry import RegistrySettings
from core.settings import Sectioned, setting

MODES = ("lora", "full")
# kto trains on the unpaired rows of train.parquet; the others on pairs.parquet (curation.pairs).
PAIRED_METHODS = ("dpo", "ipo", "simpo", "orpo")
METHODS = ("kto", *PAIRED_METHODS, "auto")
# Methods whose loss compares the policy to a reference model (KTO too); SimPO and ORPO have none.
WITH_REFERENCE = ("kto", "dpo", "ipo")
AUTO_FLAGS = ("auto", "on", "off")
# training.report_to: experiment trackers transformers reports to, and the package each needs
TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How a candidate is trained from a snapshot."""

    method: str = setting(
        "kto",
        "kto (thumbs), dpo, ipo, simpo, orpo (pairs.parquet), or auto (dpo when pairs are plentiful, "
        "see auto_min_pairs and auto_min_pair_share, else kto)",
    )
    beta: float = setting(
        0.1,
        "how far the policy may move from the reference (kto, dpo; ipo's tau), simpo's reward scale, "
        "orpo's odds-ratio weight (lambda)",
    )
    rpo_alpha: float = setting(
        0.0,
        "dpo/ipo: weight of an SFT term on the chosen answer (RPO), against the chosen-probability drop; 0 off",
    )
    simpo_gamma: float = setting(0.5, "simpo: target reward margin")
    auto_min_pairs: int = setting(64, "auto picks dpo only with at least this many train pairs")
    auto_min_pair_share: float = setting(
        0.25, "auto picks dpo only when train pairs are at least this share of the train rows"
    )
    learning_rate: float = setting(5e-4, "peak AdamW learning rate (tiny-world default; see the module doc)")
    epochs: float = setting(1.0, "passes over the snapshot's train split (ignored when max_steps > 0)")
    max_steps: int = setting(0, "stop after this many optimizer steps (0: use epochs)")
    per_device_batch_size: int = setting(
        16, "rows per device and step; >= 4 so each batch estimates KTO's KL term from both labels"
    )
    gradient_accumulation_steps: int = setting(1, "micro-batches summed into one optimizer step")
    warmup_ratio: float = setting(0.1, "share of the steps spent warming the learning rate up")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    max_grad_norm: float = setting(1.0, "gradient clipping norm")
    max_length: int = setting(
        512, "prompt + completion tokens kept per row (longer rows are cut on the right)"
    )
    max_prompt_length: int = setting(
        384, "rows whose rendered prompt has more tokens than this are left out (counted in metrics)"
    )
    max_completion_length: int = setting(
        256, "rows whose completion has more tokens than this are left out (counted in metrics)"
    )
    mode: str = setting("lora", "lora (reference = base with adapters off) or full (reference = champion)")
    lora_r: int = setting(16, "LoRA rank")
    lora_alpha: int = setting(32, "LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = setting(0.0, "dropout on the LoRA branch")
    lora_target_modules: tuple[str, ...] = setting(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        "module names that get LoRA adapters (Llama/Qwen/Mistral names; 'all-linear' also works)",
    )
    precompute_ref_log_probs: str = setting(
        "auto", "auto (on in full mode: no second model in memory), on or off"
    )
    bf16: str = setting("auto", "auto (on when a CUDA GPU supports it), on or off")
    gradient_checkpointing: str = setting("auto", "auto (on with a GPU), on or off")
    use_class_weights: bool = setting(True, "take desirable/undesirable weights from the manifest's kto")
    seed: int = setting(0, "seed of the shuffle, the adapters' initialisation and the trainer")
    work_dir: str = setting(
        "",
        "checkpoints of runs in progress (default: <paths.runs>/training); keyed by snapshot and base",
        path=True,
    )
    save_steps: int = setting(50, "checkpoint every this many steps, so a crashed run resumes")
    save_total_limit: int = setting(2, "checkpoints kept per run")
    resume: bool = setting(True, "continue from the newest checkpoint of the same snapshot, base and config")
    logging_steps: int = setting(5, "record the training curves every this many steps")
    device: str = setting("auto", "auto (CUDA when present), cpu or cuda")
    report_to: tuple[str, ...] = setting(
        ("none",),
        "experiment trackers that receive the trainer's metrics: none, or any of tensorboard, mlflow, "
        "wandb (each needs its package installed; configured by its own environment variables)",
    )

    def validate(self) -> list[str]:
        problems = []
        if self.per_device_batch_size < 4:
            problems.append(
                f"per_device_batch_size is {self.per_device_batch_size}; KTO needs >= 4 rows per batch "
                "to estimate its KL term from both labels"
            )
        if self.method not in METHODS:
            problems.append(f"method is {self.method!r}; use one of {', '.join(METHODS)}")
        if self.rpo_alpha < 0:
            problems.append(f"rpo_alpha is {self.rpo_alpha}; it must be >= 0 (0 turns the SFT term off)")
        if self.rpo_alpha > 0 and self.method not in ("dpo", "ipo", "auto"):
            problems.append(
                f"rpo_alpha applies to dpo and ipo only, not to method {self.method!r}; set it to 0"
            )
        if self.auto_min_pairs < 1 or not 0 <= self.auto_min_pair_share <= 1:
            problems.append("auto_min_pairs must be >= 1 and auto_min_pair_share in [0, 1]")
        if self.mode not in MODES:
            problems.append(f"mode is {self.mode!r}; use one of {', '.join(MODES)}")
        for name in ("precompute_ref_log_probs", "bf16", "gradient_checkpointing"):
            if getattr(self, name) not in AUTO_FLAGS:
                problems.append(f"{name} is {getattr(self, name)!r}; use one of {', '.join(AUTO_FLAGS)}")
        bad = [t for t in self.report_to if t not in ("none", *TRACKERS)]
        if bad or ("none" in self.report_to and len(self.report_to) > 1):
            problems.append(
                f"report_to is {list(self.report_to)}; use ['none'] or any of {', '.join(TRACKERS)}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device is {self.device!r}; use auto, cpu or cuda")
        if self.beta <= 0:
            problems.append(f"beta is {self.beta}; it must be > 0 (0.1 is a good start)")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate is {self.learning_rate}; it must be > 0")
        if self.epochs <= 0 and self.max_steps <= 0:
            problems.append("set epochs > 0 or max_steps > 0")
        if self.max_prompt_length >= self.max_length:
            problems.append(
                f"max_prompt_length ({self.max_prompt_length}) must be below max_length ({self.max_length})"
            )
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio is {self.warmup_ratio}; use a share in [0, 1)")
        if self.gradient_accumulation_steps < 1 or self.save_steps < 1 or self.logging_steps < 1:
            problems.append("gradient_accumulation_steps, save_steps and logging_steps must be >= 1")
        return problems


def report_targets(training: TrainingConfig) -> list[str]:
    """``training.report_to`` as TrainingArguments' ``report_to``; a tracker whose package is not
    installed is refused here, before torch is imported, with the command that installs it."""
    import importlib.util

    from core.errors import ConfigError

    targets = [t for t in training.report_to if t != "none"]
    missing = [t for t in targets if importlib.util.find_spec(TRACKERS[t]) is None]
    if missing:
        raise ConfigError(
            [
                f"training.report_to names {', '.join(missing)}, but its package is not installed: "
                f"pip install {' '.join(TRACKERS[t] for t in missing)} (or set training.report_to = "
                '["none"])'
            ]
        )
    return targets


class TrainingSettings(RegistrySettings, Sectioned, Protocol):
    """What training reads: ``[paths]``, ``[registry]`` and ``[training]`` (``flywheel.config.Config`` has them all)."""

    @property
    def training(self) -> TrainingConfig: ...
