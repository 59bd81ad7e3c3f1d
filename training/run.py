"""`flywheel train`: one round (KTO, or a paired method) from a curated snapshot to a candidate.

Steps, each safe to repeat:

1. Resolve the snapshot (default: the newest), the base (default: the champion) and the method
   (``training.method``; ``auto`` picks KTO or DPO by the snapshot's pairs, training.paired), and
   name the candidate from method + snapshot id + base version + config hash. If the registry has
   it, return it.
2. KTO: load the train split, render chat prompts, order rows so every batch holds both labels.
   Paired methods: load ``pairs.parquet``, render the prompts, shuffle by the seed.
3. Train with TRL's trainer of the method (KTOTrainer, DPOTrainer for dpo/ipo, CPOTrainer for
   simpo, ORPOTrainer): LoRA by default (the reference, where the method has one, is the base
   with adapters off), or full fine-tuning (the reference is the base, its log-probs
   precomputed). Checkpoints go to ``<work_dir>/<version>/``; a rerun of the same round resumes
   from the newest one.
4. Save the LoRA adapter (``adapter/``), merge it, and stage the candidate: safetensors weights,
   tokenizer, a Hugging Face model card with metadata, resolved config, metrics and curves. The registry renames it into place only when complete.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from core import snapshot as snapshots
from core.settings import to_toml, write_resolved
from training import artifacts, resolve
from training.config import TrainingConfig, TrainingSettings
from training.data import balanced_weights, batches_have_both_labels, read_rows
from training.errors import BaseModelError, SnapshotError
from training.paired import Choice, choose, read_pairs
from training.trainer import build_paired_trainer, build_trainer, last_checkpoint, load_base

log = logging.getLogger(__name__)


def class_weights(manifest: dict[str, Any], training: TrainingConfig) -> dict[str, float]:
    kto = manifest.get("kto") or {}
    if not training.use_class_weights or not kto:
        return {"desirable_weight": 1.0, "undesirable_weight": 1.0}
    return {
        "desirable_weight": float(kto.get("desirable_weight", 1.0)),
        "undesirable_weight": float(kto.get("undesirable_weight", 1.0)),
    }


def _train(
    config: TrainingSettings,
    base_path: Path,
    snap: Path,
    work: Path,
    weights: dict[str, float],
    callbacks: list[Any] | None,
) -> tuple[Any, Any, Any, Any, str | None, float]:
    training = config.training
    started = time.perf_counter()
    trainer, tokenizer, prepared = build_trainer(config, base_path, read_rows(snap), work, weights, callbacks)
    if prepared.dropped_for_batching > 1 and training.use_class_weights:
        # Rows of the larger class were left out, so curation's weights no longer fit the counts.
        weights.update(balanced_weights(prepared.n_desirable, prepared.n_undesirable))
        trainer.desirable_weight = weights["desirable_weight"]
        trainer.undesirable_weight = weights["undesirable_weight"]
    final = trainer.train_dataset["label"]
    if not batches_have_both_labels(list(final), training.per_device_batch_size):
        # TRL filters rows after our ordering; a filtered row would shift every later batch.
        raise SnapshotError(
            f"snapshot {snap.name}: after TRL's preprocessing some batch holds a single label",
            hint="lower training.max_prompt_length below training.max_length",
        )
    result, resume = _fit(trainer, work, training.resume)
    return trainer, tokenizer, prepared, result, resume, time.perf_counter() - started


def _fit(trainer: Any, work: Path, resume: bool) -> tuple[Any, str | None]:
    """Train, from the run's last checkpoint when there is one and ``training.resume`` is on."""
    checkpoint = last_checkpoint(work) if resume else None
    if checkpoint:
        log.info("resuming %s from %s", work.name, checkpoint)
    return trainer.train(resume_from_checkpoint=checkpoint), checkpoint


def _train_paired(
    config: TrainingSettings,
    base_path: Path,
    snap: Path,
    work: Path,
    method: str,
    callbacks: list[Any] | None,
) -> tuple[Any, Any, Any, Any, str | None, float]:
    started = time.perf_counter()
    trainer, tokenizer, prepared = build_paired_trainer(
        config, base_path, read_pairs(snap), work, method, callbacks
    )
    result, resume = _fit(trainer, work, config.training.resume)
    return trainer, tokenizer, prepared, result, resume, time.perf_counter() - started


def run(
    config: TrainingSettings,
    snapshot: str | Path | None = None,
    base_model: str | Path | None = None,
    callbacks: list[Any] | None = None,
) -> str:
    """Train a candidate on ``snapshot`` from ``base_model``; returns its registry version.

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (tests use one to interrupt).
    """
    import torch

    from core.registry import Registry

    training = config.training
    snap = snapshots.resolve(config.paths.lake, snapshot)
    manifest = snapshots.load_manifest(snap)
    snapshot_id = str(manifest.get("snapshot_id") or snap.name)
    choice = choose(training, snap, manifest)
    method = choice.method
    base = resolve.base_model(config, base_model)
    version = resolve.candidate_version(snapshot_id, base.version, training, method)
    registry = Registry.from_config(config)
    if version in registry.versions():
        log.info("candidate %s already exists (snapshot %s, base %s)", version, snapshot_id, base.version)
        return version

    work = Path(training.work_dir or Path(config.paths.runs) / "training") / version
    weights = class_weights(manifest, training)
    threads = torch.get_num_threads()
    try:
        if method == "kto":
            trainer, tokenizer, prepared, result, resume, seconds = _train(
                config, base.path, snap, work, weights, callbacks
            )
        else:
            trainer, tokenizer, prepared, result, resume, seconds = _train_paired(
                config, base.path, snap, work, method, callbacks
            )
    finally:
        torch.set_num_threads(threads)  # the trainer may pin one thread for a tiny model

    from accelerate import PartialState

    state = PartialState()  # under `accelerate launch`: one of several processes, each on its shard
    # Under FSDP or DeepSpeed ZeRO-3 each process holds a shard of the weights: gathering the full
    # state dict is a collective, so every process takes part before the others wait.
    gathered = gather_weights(trainer, work) if sharded(trainer) else None
    if not state.is_main_process:
        # Only the main process writes registry artifacts; the others wait until it has staged
        # the candidate, so every process returns the same, complete version.
        state.wait_for_everyone()
        return version
    model = trainer.model if gathered is None else load_gathered(gathered, base.path, training.mode, trainer)
    curve_data = artifacts.curves(trainer.state.log_history)
    metrics = {
        "version": version,
        "snapshot_id": snapshot_id,
        "base_version": base.version,
        "mode": training.mode,
        "method": method,
        "method_choice": _choice(choice),
        **_data_metrics(method, prepared, weights),
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "train_runtime": result.metrics["train_runtime"],
        "train_seconds": round(seconds, 2),
        "resumed_from": Path(resume).name if resume else None,
        "curves": artifacts.summary(curve_data),
    }
    meta = {
        "kind": "candidate",
        "snapshot_id": snapshot_id,
        "base_version": base.version,
        "mode": training.mode,
        "method": method,
    }
    with registry.stage(version, metadata=meta) as folder:
        if training.mode == "lora":
            # The adapter alone first (PEFT's adapter_model.safetensors + adapter_config.json, for
            # vLLM --lora-modules or PeftModel), then the merged weights a server loads directly.
            model.save_pretrained(folder / "adapter", safe_serialization=True)
            model = model.merge_and_unload()
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        write_resolved(config, folder / "config.toml")
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        (folder / "curves.json").write_text(json.dumps(curve_data), encoding="utf-8")
        artifacts.plot(curve_data, folder / "curves.png")
        card = artifacts.model_card(
            version, meta, metrics, to_toml(config, only=("training",)), artifacts.hub_id(base.path)
        )
        (folder / "model_card.md").write_text(card, encoding="utf-8")
    state.wait_for_everyone()  # the other processes return once the candidate is in place
    log.info("candidate %s: method %s (%s)", version, method, choice.reason)
    for warning in metrics["curves"]["warnings"]:
        log.warning("candidate %s: %s", version, warning)
    log.info("candidate %s trained in %.1fs (%d steps)", version, seconds, trainer.state.global_step)
    return version


def sharded(trainer: Any) -> bool:
    """Whether the trained weights are split across processes (FSDP, DeepSpeed)."""
    return bool(getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False))


def gather_weights(trainer: Any, work: Path) -> Path:
    """Gather the full weights into ``<work>/final``; every process must call it.

    ``Trainer.save_model`` is the collective: each process contributes its shard to the full state
    dict and the main process writes it (the adapter alone for LoRA). A process that skips it
    leaves the others waiting in the gather.
    """
    if getattr(trainer, "is_fsdp_enabled", False):
        kind = str(trainer.accelerator.state.fsdp_plugin.state_dict_type)
        if "FULL_STATE_DICT" not in kind:
            # save_model writes nothing for a sharded state dict: the candidate would have no weights.
            raise BaseModelError(
                f"FSDP saves with state_dict_type {kind}: the candidate needs the full weights",
                hint="set fsdp_state_dict_type: FULL_STATE_DICT in the accelerate config "
                "(infra/accelerate/fsdp.yaml does)",
            )
    out = work / "final"
    trainer.save_model(str(out))
    return out


def load_gathered(folder: Path, base_path: Path, mode: str, trainer: Any) -> Any:
    """The trained model from ``gather_weights``' folder (main process, CPU): base + adapter for LoRA."""
    bf16 = bool(trainer.args.bf16)
    if mode != "lora":
        return load_base(folder, bf16)[0]
    from peft import PeftModel

    base, _ = load_base(base_path, bf16)
    return PeftModel.from_pretrained(base, folder)


def _choice(choice: Choice) -> dict[str, Any]:
    return {
        "configured": choice.configured,
        "reason": choice.reason,
        "train_pairs": choice.train_pairs,
        "train_rows": choice.train_rows,
    }


def _data_metrics(method: str, prepared: Any, weights: dict[str, float]) -> dict[str, Any]:
    if method == "kto":
        return {
            "rows": {
                "desirable": prepared.n_desirable,
                "undesirable": prepared.n_undesirable,
                "dropped_too_long": prepared.dropped_too_long,
                "dropped_for_batching": prepared.dropped_for_batching,
            },
            "class_weights": weights,
        }
    return {"pairs": {"trained": prepared.n_pairs, "dropped_too_long": prepared.dropped_too_long}}
