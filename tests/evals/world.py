"""The gate's test world: the tiny world's base model as champion, held-out traces as a snapshot,
and candidates made better or worse on purpose by short fine-tunes.

The held-out traces are what the champion serves in the tiny world: answers drawn from its style
mix, thumbed by the world's rubric (up only for concise and right). Candidates are fine-tuned on
(prompt, answer) pairs from the *training* prompts, never the held-out ones:

- ``better``: on the answers users approved (learning from the feedback),
- ``flipped``: on the answers users disapproved (the labels flipped),
- ``padded``: on verbose answers (pushed towards padding),
- ``random``: the same architecture with fresh random weights.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

WORKLOADS = {"what is": "question", "add": "imperative", "+": "symbolic", "compute": "formal"}


def workload(prompt: str) -> str:
    return next(v for k, v in WORKLOADS.items() if k in prompt)


def write_snapshot(folder: Path, rows: int = 320, seed: int = 0, sessions_of: int = 4) -> Path:
    """A curated snapshot folder with eval.parquet of held-out tiny-world traces (contract columns)."""
    from flywheel.dev.world import World

    world = World(seed=0)
    rng = random.Random(seed)
    prompts = world.prompts("held_out")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records: dict[str, list[Any]] = {
        k: [] for k in ("prompt", "completion", "label", "trace_id", "session_id")
    }
    extra: dict[str, list[Any]] = {
        k: [] for k in ("user_id", "tags", "event_time", "source", "model_version")
    }
    for i in range(rows):
        prompt = rng.choice(prompts)
        completion = rng.choice(world.all_answers(prompt)[world.draw_style(rng)])
        records["prompt"].append(prompt)
        records["completion"].append(completion)
        records["label"].append(world.approves(prompt, completion))
        records["trace_id"].append(f"t{i:05d}")
        records["session_id"].append(f"s{i // sessions_of:04d}")
        extra["user_id"].append(f"u{i // (sessions_of * 3):03d}")
        extra["tags"].append(json.dumps({"workload": workload(prompt)}))
        extra["event_time"].append(start + timedelta(minutes=i))
        extra["source"].append("thumb")
        extra["model_version"].append("champion")
    table = pa.table({**records, **extra, "prompt_format": ["text"] * rows})
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "eval.parquet")
    (folder / "manifest.json").write_text(json.dumps({"snapshot_id": folder.name}), encoding="utf-8")
    return folder


def feedback_pairs(kind: str, n: int = 512, seed: int = 1) -> list[tuple[str, str]]:
    """(prompt, answer) pairs from the training prompts for a deliberately good or bad candidate."""
    from flywheel.dev.world import World

    world = World(seed=0)
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    while len(out) < n:
        prompt = rng.choice(world.prompts("train"))
        answer = rng.choice(world.all_answers(prompt)[world.draw_style(rng)])
        liked = world.approves(prompt, answer)
        if (kind == "better" and liked) or (kind == "flipped" and not liked):
            out.append((prompt, answer))
        elif kind == "padded":
            out.append((prompt, rng.choice(world.all_answers(prompt)["verbose"])))
    return out


def finetune(base: Path, out: Path, pairs: list[tuple[str, str]], steps: int = 30, lr: float = 1e-3) -> Path:
    """A short supervised fine-tune of ``base`` on ``pairs`` (loss on the answer and <eos>)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    prompts = tok([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    answers = tok([f"{a} {tok.eos_token}" for _, a in pairs], add_special_tokens=False)["input_ids"]
    width = max(len(p) + len(a) for p, a in zip(prompts, answers, strict=True))
    ids = torch.full((len(pairs), width), tok.pad_token_id)
    labels = torch.full((len(pairs), width), -100)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        ids[i, : len(p) + len(a)] = torch.tensor(p + a)
        labels[i, len(p) : len(p) + len(a)] = torch.tensor(a)
        mask[i, : len(p) + len(a)] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(pairs), (32,), generator=gen)
        loss = model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels[idx]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def random_weights(base: Path, out: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(123)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out
