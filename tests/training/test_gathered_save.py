"""The save path of sharded training (FSDP, DeepSpeed ZeRO-3): every process calls
``Trainer.save_model`` (the collective gather), the main process builds the candidate from the
gathered folder. Here in one process, where ``save_model`` writes the same files: the candidate
must match the one staged from the in-memory model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import training.run as train_run
from core.registry import Registry
from tests.fixtures_model import snapshot_rows, write_snapshot


def _candidate(config: Any, snap: Path, tiny_world: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    version = train_run.run(config, snapshot=snap, base_model=tiny_world)
    folder = Registry.from_config(config).path(version)
    return folder, load_file(folder / "model.safetensors")


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_gathered_weights_give_the_same_candidate(
    tmp_path: Path, tiny_config: Any, tiny_world: Path, world: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    snap = write_snapshot(
        tmp_path / "lake" / "curated" / "snap-a",
        snapshot_rows(world, 32, seed=1),
        snapshot_rows(world, 16, seed=2, split="held_out"),
    )
    settings = {"training.max_steps": 2, "training.mode": mode}
    direct_cfg = tiny_config.replace(
        **settings,
        **{"paths.registry": str(tmp_path / "reg-direct"), "paths.runs": str(tmp_path / "runs-direct")},
    )
    direct, direct_weights = _candidate(direct_cfg, snap, tiny_world)

    calls: list[Path] = []
    real_gather = train_run.gather_weights

    def gather(trainer: Any, work: Path) -> Path:
        calls.append(work)
        return real_gather(trainer, work)

    monkeypatch.setattr(train_run, "sharded", lambda trainer: True)
    monkeypatch.setattr(train_run, "gather_weights", gather)
    gathered_cfg = tiny_config.replace(
        **settings,
        **{"paths.registry": str(tmp_path / "reg-gathered"), "paths.runs": str(tmp_path / "runs-gathered")},
    )
    folder, weights = _candidate(gathered_cfg, snap, tiny_world)

    assert len(calls) == 1 and (calls[0] / "final").is_dir()
    assert weights.keys() == direct_weights.keys()
    for key, value in direct_weights.items():
        torch.testing.assert_close(weights[key], value, msg=key)
    names = {p.name for p in folder.iterdir()}
    assert names == {p.name for p in direct.iterdir()}
    if mode == "lora":
        assert (folder / "adapter" / "adapter_model.safetensors").is_file()


def test_fsdp_with_a_sharded_state_dict_is_refused(tmp_path: Path) -> None:
    """save_model writes nothing under FSDP's SHARDED_STATE_DICT: say what to set instead."""
    from types import SimpleNamespace

    from training.errors import BaseModelError

    plugin = SimpleNamespace(state_dict_type="StateDictType.SHARDED_STATE_DICT")
    trainer = SimpleNamespace(
        is_fsdp_enabled=True, accelerator=SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin))
    )
    assert train_run.sharded(trainer)
    with pytest.raises(BaseModelError, match="FULL_STATE_DICT"):
        train_run.gather_weights(trainer, tmp_path)
    assert not (tmp_path / "final").exists()
