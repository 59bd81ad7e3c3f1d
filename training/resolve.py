"""Which snapshot, which base model, and the deterministic name of the candidate they make."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

from training.config import TrainingConfig, TrainingSettings
from training.errors import BaseModelError


@dataclasses.dataclass(frozen=True)
class Base:
    path: Path
    version: str  # the registry version, or the folder's name for a model outside the registry


def base_model(config: TrainingSettings, base: str | Path | None) -> Base:
    """``base`` as a folder or a registry version; the registry's champion when None."""
    from core.registry import Registry, RegistryError

    registry = Registry.from_config(config)
    if base is None:
        version = registry.champion()
        if version is None:
            raise BaseModelError(
                f"no --base-model given and the registry at {registry.root} has no champion",
                hint="`flywheel register PATH --champion` adds your base or SFT model first",
            )
        return Base(registry.path(version), version)
    path = Path(base)
    if (path / "config.json").is_file():
        inside = path.resolve().parent == registry.models.resolve()
        return Base(path, path.name if inside else f"ext-{path.name}")
    try:
        return Base(registry.path(str(base)), str(base))
    except RegistryError:
        raise BaseModelError(
            f"--base-model {base} is neither a model folder (with config.json) nor a registry version",
            hint="`flywheel status` lists the versions",
        ) from None


# Settings added with the paired methods: left out of the hash while at their defaults, so a KTO
# round keeps the name it had before they existed (a retried round still finds its candidate).
_HASHED_WHEN_SET = ("method", "rpo_alpha", "simpo_gamma", "auto_min_pairs", "auto_min_pair_share")


def config_hash(training: TrainingConfig) -> str:
    """Hash of the settings that change the trained weights (not where checkpoints go)."""
    fields = dataclasses.asdict(training)
    for key in ("work_dir", "save_steps", "save_total_limit", "resume", "logging_steps", "report_to"):
        fields.pop(key, None)
    defaults = {f.name: f.default for f in dataclasses.fields(training)}
    for key in _HASHED_WHEN_SET:
        if key in fields and fields[key] == defaults.get(key):
            fields.pop(key)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:8]


def candidate_version(
    snapshot_id: str, base_version: str, training: TrainingConfig, method: str = "kto"
) -> str:
    """``<method>-<snapshot>-b<base hash>-c<config hash>``: a retried round finds its candidate.

    ``method`` is the one trained (``auto`` resolved), e.g. ``kto`` or ``dpo``.

    The base enters as a hash so names keep one length round after round (a base name would
    nest the previous candidate's name); the manifest and model card name the base in full.
    """
    snap = re.sub(r"[^A-Za-z0-9]+", "", snapshot_id.removeprefix("snap-"))[:16] or "x"
    base = hashlib.sha256(base_version.encode()).hexdigest()[:8]
    return f"{method}-{snap}-b{base}-c{config_hash(training)}"
