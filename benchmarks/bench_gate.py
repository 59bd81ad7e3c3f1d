"""The gate's throughput on CPU with the tiny world's model, against same-run baselines.

1. Agreement: held-out traces scored per second (both models), length-sorted batches vs one at a time.
2. Replay: responses generated and judged per second, batched generation vs one prompt at a time.
3. The whole gate (evals.run.run) against the training time of the candidate it judges, when the
   trainer (training.run) is present; otherwise the gate's own time only.

Defaults: the tiny world (~1 M parameters). For a GPU, a 0.5-1 B model from a config (random
weights are fine for throughput) can be measured with ``BENCH_GATE_MODEL=/path/to/model``
(a folder with config.json and a tokenizer) and ``BENCH_GATE_DEVICE=cuda``; not run here.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS = 512
REPLAY = 64


def _config(root: Path, **overrides: Any) -> Any:
    from flywheel import config as cfgmod

    cache = Path(__file__).resolve().parents[1] / ".cache" / "flywheel"
    base = {
        "paths.cache": str(cache),
        "paths.registry": str(root / "registry"),
        "paths.lake": str(root / "lake"),
        "paths.runs": str(root / "runs"),  # training checkpoints: a fresh run each time, no resume
        "evals.judge": "rubric",
        "evals.rubric": "flywheel.dev.world:World.rubric",
        "evals.max_new_tokens": 32,
        "evals.device": os.environ.get("BENCH_GATE_DEVICE", "cpu"),
    }
    return cfgmod.load(None, env={}, overrides={**base, **overrides})


def _traces(n: int, seed: int = 0) -> list[tuple[str, str, bool]]:
    from flywheel.dev.world import World

    world, rng = World(seed=0), random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = rng.choice(world.prompts("held_out"))
        completion = rng.choice(world.all_answers(prompt)[world.draw_style(rng)])
        rows.append((prompt, completion, world.approves(prompt, completion)))
    return rows


def _perturbed(base: Path, out: Path) -> Path:
    """A candidate with the champion's shape: throughput does not depend on the weights' quality."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def _rate(count: int, fn: Any, repeats: int = 2) -> float:
    """Items per second, best of ``repeats``: other work on a shared machine only slows a run down."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    import torch

    from evals.generate import generate
    from evals.judges import rubric_judge
    from evals.scoring import encode, load, logprobs

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = _config(root)
        cfg = config.evals
        if os.environ.get("BENCH_GATE_MODEL"):
            base = Path(os.environ["BENCH_GATE_MODEL"])
        else:
            from flywheel.dev.tiny_world import build

            base = build(config)
        device = torch.device(cfg.device)
        champ = load("champion", base, device)
        cand = load("candidate", _perturbed(base, root / "cand"), device)
        traces = _traces(ROWS)
        prompts, completions = [t[0] for t in traces], [t[1] for t in traces]

        def score(batch: int, rows: int) -> None:
            for m in (cand, champ):
                pairs = encode(m.tokenizer, prompts[:rows], completions[:rows], True)
                logprobs(m, pairs, batch, cfg.max_length)

        score(cfg.batch_size, 32)  # warm-up
        batched = _rate(ROWS, lambda: score(cfg.batch_size, ROWS))
        single = _rate(ROWS // 4, lambda: score(1, ROWS // 4))
        print(
            f"agreement: {batched:.0f} traces/s batched (batch {cfg.batch_size}, length-sorted), "
            f"{single:.0f} traces/s one at a time; ratio {batched / single:.1f}x"
        )

        judge = rubric_judge(cfg.rubric)
        replay_prompts = prompts[:REPLAY]

        def replay(batch: int, n: int) -> None:
            answers = {}
            for m in (cand, champ):
                answers[m.name] = generate(
                    m,
                    replay_prompts[:n],
                    max_new_tokens=cfg.max_new_tokens,
                    temperature=1.0,
                    top_p=1.0,
                    batch_size=batch,
                    seed=0,
                )
            judge(replay_prompts[:n], answers["candidate"], answers["champion"])

        gen_batch = 32
        fast = _rate(2 * REPLAY, lambda: replay(gen_batch, REPLAY))
        slow = _rate(2 * (REPLAY // 4), lambda: replay(1, REPLAY // 4))
        print(
            f"replay: {fast:.1f} responses/s generated and judged batched (batch {gen_batch}), "
            f"{slow:.1f} responses/s one prompt at a time; ratio {fast / slow:.1f}x"
        )

        _whole_gate(config, root, base)


def _whole_gate(config: Any, root: Path, base: Path) -> None:
    from core.registry import Registry
    from evals.run import run

    registry = Registry.from_config(config)
    registry.register(base, champion=True, version="champion")
    train_s = None
    train: Any = None
    with contextlib.suppress(ImportError):
        from training.run import run as train  # the trainer, when present
    snapshot = _snapshot(root / "lake" / "curated" / "bench")
    if train is not None:
        start = time.perf_counter()
        candidate = train(config, snapshot=str(snapshot))
        train_s = time.perf_counter() - start
    else:
        registry.register(_perturbed(base, root / "cand2"), version="candidate")
        candidate = "candidate"
    start = time.perf_counter()
    decision = run(config, candidate=candidate, snapshot=snapshot)
    gate_s = time.perf_counter() - start
    print(
        f"gate: {gate_s:.1f}s for {decision.metrics['agreement']['rows']} traces and "
        f"{decision.metrics['replay']['prompts']} replay prompts ({'promote' if decision.promote else 'reject'})"
    )
    if train_s is not None:
        print(f"training of the judged candidate: {train_s:.1f}s; gate/training ratio {gate_s / train_s:.2f}")
    else:
        print("training time: not available (training.run absent); gate time only")


def _snapshot(folder: Path) -> Path:
    """A snapshot in the contract's shape: train.parquet and eval.parquet from the tiny world."""
    import json
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", 1024, 1), ("eval", ROWS, 0)):
        rows = _traces(n, seed)
        pq.write_table(
            pa.table(
                {
                    "prompt": [r[0] for r in rows],
                    "prompt_format": ["text"] * n,
                    "completion": [r[1] for r in rows],
                    "label": [r[2] for r in rows],
                    "trace_id": [f"{split}-{i}" for i in range(n)],
                    "model_version": ["champion"] * n,
                    "event_time": [datetime(2026, 1, 1, tzinfo=UTC)] * n,
                    "source": ["thumb"] * n,
                    "session_id": [f"s{i // 4}" for i in range(n)],
                    "user_id": [f"u{i // 12}" for i in range(n)],
                    "tags": ["{}"] * n,
                }
            ),
            folder / f"{split}.parquet",
        )
    ups = sum(r[2] for r in _traces(1024, 1))
    downs = 1024 - ups
    # Curation's rule: weight the smaller class so that weighted counts are about equal.
    kto = {"desirable_weight": max(1.0, downs / ups), "undesirable_weight": max(1.0, ups / downs)}
    manifest = {
        "snapshot_id": folder.name,
        "class_counts": {"train": {"desirable": ups, "undesirable": downs}},
        "kto": kto,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


if __name__ == "__main__":
    main()
