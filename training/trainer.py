"""Build TRL's trainers from our configuration: device, precision, LoRA or full, checkpoints.

KTO uses ``KTOTrainer``; DPO and IPO (with the optional RPO term) ``DPOTrainer``; SimPO
``CPOTrainer`` (``loss_type="simpo"``, ``cpo_alpha=0``) and ORPO ``ORPOTrainer``, both from
``trl.experimental``. With LoRA the reference of KTO, DPO and IPO is the base with adapters off;
in full mode it is the base itself, its log-probs precomputed by default.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from training.config import TrainingConfig, TrainingSettings, report_targets
from training.data import Prepared, prepare
from training.errors import BaseModelError
from training.paired import PreparedPairs, prepare_pairs

log = logging.getLogger(__name__)

# Below this many parameters a model trains on CPU with one thread: on a shared two-core machine
# two spinning OpenMP threads ran the tiny world 6x slower than one.
TINY_PARAMS = 10_000_000


class LogLastStep(TrainerCallback):
    """Makes the trainer log the last step too, so short runs still leave their curves."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= state.max_steps:
            control.should_log = True
        return control


class LogProgress(TrainerCallback):
    """The trainer's metrics and progress through the logger, never on stdout: one log line per
    logging step (``train step 5/20``, the metrics as ``metrics``) and, when the logs are text on a
    terminal, a bar on stderr. Replaces transformers' PrinterCallback, which print()s the dicts."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from core.logs import progress_bars

        if state.is_world_process_zero and progress_bars():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc="train", unit="step", file=sys.stderr
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        extra = {"step": state.global_step, "max_steps": state.max_steps, "metrics": dict(logs)}
        log.info("train step %d/%d", state.global_step, state.max_steps, extra=extra)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _quiet_printer(trainer: Any) -> Any:
    """The trainer with LogProgress in place of the callbacks that print to stdout."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(LogProgress())
    return trainer


def _flag(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "on"


def use_cuda(training: TrainingConfig) -> bool:
    import torch

    if training.device == "cpu":
        return False
    if training.device == "cuda" and not torch.cuda.is_available():
        raise BaseModelError(
            "training.device is cuda but no CUDA GPU is visible", hint="set training.device=auto"
        )
    return torch.cuda.is_available()


def last_checkpoint(work: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(work)) if work.is_dir() else None


def load_base(path: Path, bf16: bool) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.bfloat16 if bf16 else torch.float32, use_safetensors=True
        )
    except (OSError, ValueError) as exc:
        raise BaseModelError(
            f"cannot load the base model at {path}: {exc}",
            hint="the folder needs config.json, safetensors weights and a tokenizer (save_pretrained)",
        ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _common(config: TrainingSettings, work: Path, cuda: bool) -> dict[str, Any]:
    """The arguments every method's TRL config takes the same way."""
    import torch

    t = config.training
    return dict(
        output_dir=str(work),
        beta=t.beta,
        learning_rate=t.learning_rate,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        per_device_train_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of the steps
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        lr_scheduler_type="cosine",
        max_length=t.max_length,
        bf16=cuda and _flag(t.bf16, torch.cuda.is_bf16_supported()),
        gradient_checkpointing=_flag(t.gradient_checkpointing, cuda),
        use_cpu=not cuda,
        seed=t.seed,
        data_seed=t.seed,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        report_to=report_targets(t),
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def kto_args(config: TrainingSettings, work: Path, weights: dict[str, float], cuda: bool) -> Any:
    from trl import KTOConfig

    t = config.training
    return KTOConfig(
        **_common(config, work, cuda),
        desirable_weight=weights["desirable_weight"],
        undesirable_weight=weights["undesirable_weight"],
        precompute_ref_log_probs=_flag(t.precompute_ref_log_probs, t.mode == "full"),
    )


def paired_args(config: TrainingSettings, work: Path, cuda: bool, method: str) -> Any:
    """TRL's config for a paired ``method`` (dpo, ipo, simpo, orpo)."""
    t = config.training
    common = _common(config, work, cuda)
    if method in ("dpo", "ipo"):
        from trl import DPOConfig

        loss = "sigmoid" if method == "dpo" else "ipo"
        # RPO: TRL's "sft" loss (NLL of the chosen answer) beside the preference loss, weighted rpo_alpha.
        losses, weights = ([loss, "sft"], [1.0, t.rpo_alpha]) if t.rpo_alpha > 0 else ([loss], None)
        return DPOConfig(
            **common,
            loss_type=losses,
            loss_weights=weights,
            precompute_ref_log_probs=_flag(t.precompute_ref_log_probs, t.mode == "full"),
        )
    with _quiet_experimental():
        if method == "simpo":
            from trl.experimental.cpo import CPOConfig

            # SimPO is CPO's loss_type "simpo" without CPO's behaviour-cloning term (cpo_alpha = 0).
            return CPOConfig(
                **common,
                loss_type="simpo",
                cpo_alpha=0.0,
                simpo_gamma=t.simpo_gamma,
                max_completion_length=t.max_completion_length,
            )
        if method == "orpo":
            from trl.experimental.orpo import ORPOConfig

            return ORPOConfig(**common, max_completion_length=t.max_completion_length)
    raise ValueError(f"no paired method {method!r}")


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """SimPO and ORPO live in ``trl.experimental``, which warns on import; the pinned TRL is tested."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*trl.experimental.*")
        yield


def _peft(t: TrainingConfig) -> Any:
    from peft import LoraConfig

    if t.mode != "lora":
        return None
    targets: Any = (
        "all-linear" if tuple(t.lora_target_modules) == ("all-linear",) else list(t.lora_target_modules)
    )
    return LoraConfig(
        r=t.lora_r,
        lora_alpha=t.lora_alpha,
        lora_dropout=t.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def build_trainer(
    config: TrainingSettings,
    base_path: Path,
    rows: list[dict[str, Any]],
    work: Path,
    weights: dict[str, float],
    callbacks: list[Any] | None = None,
) -> tuple[Any, Any, Prepared]:
    """(KTO trainer, tokenizer, prepared data) ready for ``trainer.train``."""
    from trl import KTOTrainer

    t = config.training
    cuda = use_cuda(t)
    args = kto_args(config, work, weights, cuda)
    model, tokenizer = _load_seeded(t, base_path, args, cuda)
    prepared = prepare(rows, tokenizer, t)
    trainer = KTOTrainer(**_trainer_kwargs(t, model, args, prepared.dataset, tokenizer, callbacks))
    return _quiet_printer(trainer), tokenizer, prepared


def _load_seeded(t: TrainingConfig, base_path: Path, args: Any, cuda: bool) -> tuple[Any, Any]:
    """The base model and tokenizer, after seeding the adapters' initialisation; a tiny model on
    the CPU trains on one thread (more only add contention)."""
    import torch
    from transformers import set_seed

    set_seed(t.seed)
    model, tokenizer = load_base(base_path, args.bf16)
    if not cuda and model.num_parameters() < TINY_PARAMS:
        torch.set_num_threads(1)
    return model, tokenizer


def _trainer_kwargs(
    t: TrainingConfig, model: Any, args: Any, dataset: Any, tokenizer: Any, callbacks: list[Any] | None
) -> dict[str, Any]:
    """What every TRL trainer here is given: the LoRA adapters, and our last-step logging first."""
    return dict(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=_peft(t),
        callbacks=[LogLastStep(), *(callbacks or [])],
    )


def build_paired_trainer(
    config: TrainingSettings,
    base_path: Path,
    pairs: list[dict[str, Any]],
    work: Path,
    method: str,
    callbacks: list[Any] | None = None,
) -> tuple[Any, Any, PreparedPairs]:
    """(trainer of a paired ``method``, tokenizer, prepared pairs) ready for ``trainer.train``."""
    t = config.training
    cuda = use_cuda(t)
    args = paired_args(config, work, cuda, method)
    model, tokenizer = _load_seeded(t, base_path, args, cuda)
    prepared = prepare_pairs(pairs, tokenizer, t)
    kwargs = _trainer_kwargs(t, model, args, prepared.dataset, tokenizer, callbacks)
    if method in ("dpo", "ipo"):
        from trl import DPOTrainer

        # No ref_model: with LoRA TRL disables the adapters for the reference; in full mode it
        # precomputes the base's log-probs (or, with precompute off, loads the base a second time).
        return _quiet_printer(DPOTrainer(**kwargs)), tokenizer, prepared
    with _quiet_experimental():
        if method == "simpo":
            from trl.experimental.cpo import CPOTrainer

            return _quiet_printer(CPOTrainer(**kwargs)), tokenizer, prepared
        from trl.experimental.orpo import ORPOTrainer

        return _quiet_printer(ORPOTrainer(**kwargs)), tokenizer, prepared
