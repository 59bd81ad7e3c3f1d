"""`flywheel train` on the tiny world: the files it writes, what it learns, and resuming."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerCallback

from core.registry import Registry
from flywheel import cli
from flywheel import config as cfg
from tests.fixtures_model import snapshot_rows, write_snapshot
from training.run import run

CANDIDATE_FILES = {
    "MANIFEST.json",
    "adapter",
    "chat_template.jinja",
    "config.json",
    "config.toml",
    "curves.json",
    "curves.png",
    "generation_config.json",
    "metrics.json",
    "model.safetensors",
    "model_card.md",
    "tokenizer.json",
    "tokenizer_config.json",
}


class LoraWatch(TrainerCallback):
    """Records the LoRA B matrices (zero at initialisation) before and after training."""

    def __init__(self) -> None:
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}

    @staticmethod
    def _lora(model: Any) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        self.before = self._lora(model)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        self.after = self._lora(model)


class Crash(TrainerCallback):
    """Raises at a given step, as a node dying mid-run would (after a checkpoint was saved)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step == self.at:
            raise KeyboardInterrupt(f"simulated crash at step {self.at}")


def _snapshot(tmp: Path, world: Any, n: int, name: str = "snap-a", prefer: str | None = None) -> Path:
    rows = snapshot_rows(world, n, prefer=prefer, seed=1)
    return write_snapshot(
        tmp / "lake" / "curated" / name, rows, snapshot_rows(world, 40, seed=2, split="held_out")
    )


def test_register_then_train_from_the_champion_writes_a_complete_candidate(
    tmp_path, tiny_config, tiny_world, world, capsys
) -> None:
    flags = [
        f"--set=paths.{k}={getattr(tiny_config.paths, k)}" for k in ("lake", "registry", "runs", "cache")
    ]
    assert cli.main(["register", str(tiny_world), "--champion", "--version", "tiny-base", *flags]) == 0
    registry = Registry.from_config(tiny_config)
    assert registry.champion() == "tiny-base"
    snap = _snapshot(tmp_path, world, 96)
    config = tiny_config.replace(**{"training.max_steps": 4, "training.save_steps": 2})
    watch = LoraWatch()

    version = run(config, callbacks=[watch])  # newest snapshot, champion as base

    folder = registry.path(version)
    assert {p.name for p in folder.iterdir()} == CANDIDATE_FILES
    assert registry.verify(version) == []
    manifest = registry.manifest(version)
    assert (manifest["kind"], manifest["snapshot_id"], manifest["base_version"]) == (
        "candidate",
        "snap-a",
        "tiny-base",
    )
    # The adapters moved from their zero initialisation, and the merge carried that into the weights.
    assert watch.before and all(float(b.abs().sum()) == 0.0 for b in watch.before.values())
    assert any(float(a.abs().sum()) > 0.0 for a in watch.after.values())
    base = AutoModelForCausalLM.from_pretrained(tiny_world).state_dict()
    merged = AutoModelForCausalLM.from_pretrained(folder).state_dict()
    assert merged.keys() == base.keys()
    assert any(not torch.equal(merged[k], base[k]) for k in base if "proj" in k)
    # The resolved configuration is saved and loads back to the same training section.
    assert cfg.load(folder / "config.toml", env={}).training == config.training
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["snapshot_id"] == "snap-a"
    curves = json.loads((folder / "curves.json").read_text())
    assert {"loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "kl"} <= curves.keys()
    card = (folder / "model_card.md").read_text()
    assert "snap-a" in card and "tiny-base" in card and "beta = 0.1" in card
    # A retried round finds its candidate instead of training twice; the CLI prints it.
    assert run(config, snapshot=snap, base_model="tiny-base") == version
    capsys.readouterr()
    train_flags = [*flags, "--set=training.max_steps=4", "--set=training.save_steps=2"]
    assert cli.main(["train", "--snapshot", str(snap), *train_flags]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == version
    assert [e.action for e in registry.history()].count("register") == 2


def test_trainer_batches_hold_both_labels(tmp_path, tiny_config, tiny_world, world) -> None:
    from training.data import read_rows
    from training.trainer import build_trainer

    snap = _snapshot(tmp_path, world, 150)
    weights = {"desirable_weight": 1.0, "undesirable_weight": 1.0}
    trainer, _, _ = build_trainer(tiny_config, tiny_world, read_rows(snap), tmp_path / "work", weights)
    batches = list(trainer.get_train_dataloader())
    assert len(batches) == -(-len(trainer.train_dataset) // tiny_config.training.per_device_batch_size)
    for batch in batches:
        labels = batch["label"].tolist() if hasattr(batch["label"], "tolist") else list(batch["label"])
        assert any(labels) and not all(labels), labels


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, tiny_config, tiny_world, world) -> None:
    snap = _snapshot(tmp_path, world, 160)
    config = tiny_config.replace(**{"training.max_steps": 6, "training.save_steps": 2})
    with pytest.raises(KeyboardInterrupt):
        run(config, snapshot=snap, base_model=tiny_world, callbacks=[Crash(at=3)])
    work = next((Path(config.paths.runs) / "training").iterdir())
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-2"]
    assert Registry.from_config(config).versions() == []

    version = run(config, snapshot=snap, base_model=tiny_world)

    metrics = json.loads((Registry.from_config(config).path(version) / "metrics.json").read_text())
    assert metrics["resumed_from"] == "checkpoint-2"
    assert metrics["steps"] == 6


def test_training_on_thumbs_moves_the_model_toward_the_liked_style(
    tmp_path, tiny_config, tiny_world, world
) -> None:
    from flywheel.dev.tiny_world import load, style_mix

    snap = _snapshot(tmp_path, world, 640)
    version = run(tiny_config, snapshot=snap, base_model=tiny_world)
    trained_path = Registry.from_config(tiny_config).path(version)
    base, tokenizer = load(tiny_world)
    trained, _ = load(trained_path)

    # Implicit reward log pi/pi_ref on held-out prompts: desirable above undesirable.
    prompts = world.prompts("held_out")[:40]
    good = [(p, world.answers(p)["concise"]) for p in prompts]
    bad = [(p, world.answers(p)[s]) for p in prompts for s in ("verbose", "wrong")]

    def reward(pairs: list[tuple[str, str]]) -> float:
        return sum(_logp(trained, tokenizer, p, c) - _logp(base, tokenizer, p, c) for p, c in pairs) / len(
            pairs
        )

    assert reward(good) > reward(bad) + 1.0
    held_out = world.sample_prompts(300, "held_out", random.Random(11))
    before = style_mix(base, tokenizer, world, held_out, seed=5)
    after = style_mix(trained, tokenizer, world, held_out, seed=5)
    assert after["concise"] > before["concise"] + 0.15, (before, after)


def _logp(model: Any, tokenizer: Any, prompt: str, completion: str) -> float:
    ids_p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids_c = tokenizer(completion + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ids_p + ids_c])
    with torch.no_grad():
        logits = model(ids).logits[0, :-1].log_softmax(-1)
    target = ids[0, 1:]
    token_logps = logits.gather(1, target[:, None])[:, 0]
    return float(token_logps[len(ids_p) - 1 :].sum())


def test_full_fine_tuning_uses_precomputed_reference_log_probs(
    tmp_path, tiny_config, tiny_world, world
) -> None:
    snap = _snapshot(tmp_path, world, 64)
    config = tiny_config.replace(**{"training.mode": "full", "training.max_steps": 3})
    version = run(config, snapshot=snap, base_model=tiny_world)
    folder = Registry.from_config(config).path(version)
    assert json.loads((folder / "metrics.json").read_text())["mode"] == "full"
    assert 'precompute_ref_log_probs = "auto"' in (folder / "config.toml").read_text()
    base = AutoModelForCausalLM.from_pretrained(tiny_world).state_dict()
    tuned = AutoModelForCausalLM.from_pretrained(folder).state_dict()
    # Full fine-tuning moves every trained matrix, embeddings included.
    assert not torch.equal(tuned["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    assert version != run(
        tiny_config.replace(**{"training.max_steps": 3}), snapshot=snap, base_model=tiny_world
    )


def test_bad_inputs_are_clear_errors(tmp_path, tiny_config, tiny_world) -> None:
    from core.errors import ConfigError
    from training.errors import BaseModelError, SnapshotError

    with pytest.raises(SnapshotError, match="flywheel curate"):
        run(tiny_config, base_model=tiny_world)
    with pytest.raises(SnapshotError, match=r"no manifest\.json"):
        run(tiny_config, snapshot=tmp_path, base_model=tiny_world)
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "manifest.json").write_text("{}")
    with pytest.raises(BaseModelError, match="register PATH --champion"):
        run(tiny_config, snapshot=tmp_path / "snap")
    with pytest.raises(BaseModelError, match="neither a model folder"):
        run(tiny_config, snapshot=tmp_path / "snap", base_model="no-such-version")
    with pytest.raises(ConfigError, match="per_device_batch_size"):
        tiny_config.replace(**{"training.per_device_batch_size": 2})
    with pytest.raises(ConfigError, match="mode"):
        tiny_config.replace(**{"training.mode": "qlora"})


@pytest.mark.slow
def test_three_on_policy_rounds_raise_approval(tmp_path, tiny_config, tiny_world, world) -> None:
    """The demo's loop in miniature: the champion answers, users thumb by the rubric, KTO, repeat."""
    from flywheel.dev.sampling import generate
    from flywheel.dev.tiny_world import load

    held_out = world.sample_prompts(300, "held_out", random.Random(21))

    def approval(path: Path) -> float:
        model, tokenizer = load(path)
        answers = generate(model, tokenizer, held_out, seed=3)
        return sum(world.approves(p, a) for p, a in zip(held_out, answers, strict=True)) / len(held_out)

    champion, history = Path(tiny_world), [approval(Path(tiny_world))]
    for round_no in range(3):
        model, tokenizer = load(champion)
        prompts = world.sample_prompts(640, "train", random.Random(100 + round_no))
        answers = generate(model, tokenizer, prompts, seed=round_no)
        rows = snapshot_rows(world, 640, seed=round_no)
        for row, prompt, answer in zip(rows, prompts, answers, strict=True):
            row.update(prompt=prompt, completion=answer, label=world.approves(prompt, answer))
        snap = write_snapshot(tmp_path / "lake" / "curated" / f"round-{round_no}", rows, rows[:20])
        version = run(tiny_config, snapshot=snap, base_model=champion)
        champion = Registry.from_config(tiny_config).path(version)
        history.append(approval(champion))
    print("approval by round:", [round(a, 3) for a in history])
    assert all(b > a for a, b in itertools.pairwise(history)), history
    assert history[-1] > history[0] + 0.3, history
