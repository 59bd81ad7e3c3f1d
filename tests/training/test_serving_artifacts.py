"""What a candidate hands to serving: the LoRA adapter beside the merged weights (listed in the
registry's manifest) and a model card with Hugging Face metadata."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from huggingface_hub import ModelCard
from peft import PeftModel
from transformers import AutoModelForCausalLM

from core.registry import Registry
from flywheel import cli
from tests.fixtures_model import snapshot_rows, write_snapshot


def test_a_lora_candidate_carries_its_adapter_and_a_hub_model_card(
    tmp_path: Path, tiny_config, tiny_world, world, capfd
) -> None:
    flags = [
        f"--set=paths.{k}={getattr(tiny_config.paths, k)}" for k in ("lake", "registry", "runs", "cache")
    ]
    assert cli.main(["register", str(tiny_world), "--champion", "--version", "tiny-base", *flags]) == 0
    write_snapshot(
        tmp_path / "lake" / "curated" / "snap-s",
        snapshot_rows(world, 64, seed=1),
        snapshot_rows(world, 20, seed=2, split="held_out"),
    )
    capfd.readouterr()
    code = cli.main(["train", *flags, "--set=training.max_steps=2", "--set=training.save_steps=2"])
    out = capfd.readouterr().out
    assert code == 0
    version = out.strip().splitlines()[-1]

    registry = Registry.from_config(tiny_config)
    folder = registry.path(version)
    listed = registry.manifest(version)["files"]
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json"} <= set(listed)
    assert registry.verify(version) == []
    # The adapter loads onto the base and gives the merged weights' logits.
    base = AutoModelForCausalLM.from_pretrained(tiny_world)
    adapted = PeftModel.from_pretrained(base, folder / "adapter").merge_and_unload()
    merged = AutoModelForCausalLM.from_pretrained(folder)
    tokens = torch.tensor([[1, 5, 9, 13, 17]])
    with torch.no_grad():
        assert torch.allclose(adapted(tokens).logits, merged(tokens).logits, atol=1e-4)

    card = ModelCard.load(folder / "model_card.md")
    data = card.data.to_dict()
    assert data["datasets"] == ["snap-s"]
    assert data["library_name"] == "transformers"
    assert {"peft", "lora", "kto"} <= set(data["tags"])
    assert "loss" in data["metrics"]
    assert data["base_model"] == "tiny-base"  # a local base: its registry version
    assert data["flywheel"]["adapter"] == "adapter/" and data["flywheel"]["snapshot_id"] == "snap-s"
    assert "snap-s" in card.text and "## Training metrics" in card.text
    assert json.loads((folder / "metrics.json").read_text())["steps"] == 2
