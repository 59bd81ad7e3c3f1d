"""A tiny local model world for tests and the demo: a word-level tokenizer and a 0.26 M parameter
Llama, pretrained in about a minute on one CPU core on the corpus of :mod:`flywheel.dev.world`.

The base model answers each prompt in the styles of :data:`flywheel.dev.world.STYLE_MIX`, so sampling
from it shows every style and :meth:`World.rubric` approves about 40% of its answers. Nothing is
downloaded: the tokenizer is trained with ``tokenizers`` and the weights start random.

``build(config)`` caches the result under ``<paths.cache>/tiny-world/<version>-seed<seed>/``, a folder
that ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load (the
tokenizer has a chat template), with ``world.json`` describing how it was built and the style mix
measured by sampling it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.dev.world import N_OPERANDS, STYLE_MIX, STYLES, World

if TYPE_CHECKING:
    from flywheel.config import Config

__all__ = ["STYLES", "STYLE_MIX", "World", "build", "load"]

log = logging.getLogger(__name__)

# Bump when the corpus, the tokenizer or the architecture changes: the cache key includes it.
WORLD_VERSION = "v2"
SPECIAL = ("<pad>", "<unk>", "<eos>", "<user>", "<assistant>", "<system>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<{{ message['role'] }}> {{ message['content'] }} "
    "{% if message['role'] == 'assistant' %}<eos> {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)
MODEL_SHAPE: dict[str, Any] = {
    "hidden_size": 96,
    "intermediate_size": 288,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128,
}
PRETRAIN: dict[str, Any] = {"steps": 400, "batch_size": 64, "lr": 3e-3, "warmup": 40, "corpus": 25_600}


def _corpus(world: World, size: int, rng: random.Random) -> list[tuple[str, str]]:
    """(context, answer) pairs: prompts in plain and chat form, answers drawn from the style mix."""
    prompts = world.prompts("all")
    rows = []
    for _ in range(size):
        prompt = rng.choice(prompts)
        options = world.all_answers(prompt)[world.draw_style(rng)]
        answer = rng.choice(options)
        context = prompt if rng.random() < 0.5 else f"<user> {prompt} <assistant>"
        rows.append((context, answer))
    return rows


def _train_tokenizer(corpus: list[tuple[str, str]]) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    # Split words and every punctuation mark on its own, so "?7" and "? 7" tokenize alike: callers
    # concatenate prompt and completion without caring about the space between them.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    numbers = [str(n) for n in range(N_OPERANDS + 3)]  # every answer, right or wrong, is one token
    texts = [f"{c} {a}" for c, a in corpus] + [" ".join(numbers)]
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL), min_frequency=1)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<eos>",
        additional_special_tokens=["<user>", "<assistant>", "<system>"],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,  # "7 ." must decode as it was written
        model_max_length=MODEL_SHAPE["max_position_embeddings"],
    )


def _tensors(tokenizer: Any, corpus: list[tuple[str, str]]) -> tuple[Any, Any, Any]:
    import torch

    ctx = tokenizer([c for c, _ in corpus], add_special_tokens=False)["input_ids"]
    ans = tokenizer([f"{a} <eos>" for _, a in corpus], add_special_tokens=False)["input_ids"]
    width = max(len(c) + len(a) for c, a in zip(ctx, ans, strict=True))
    ids = torch.full((len(corpus), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(corpus), width), -100, dtype=torch.long)
    mask = torch.zeros((len(corpus), width), dtype=torch.long)
    for i, (c, a) in enumerate(zip(ctx, ans, strict=True)):
        ids[i, : len(c) + len(a)] = torch.tensor(c + a)
        # Loss on the answer only: the prompts are uniform noise; the answers are what the world teaches.
        labels[i, len(c) : len(c) + len(a)] = torch.tensor(a)
        mask[i, : len(c) + len(a)] = 1
    return ids, labels, mask


def _pretrain(tokenizer: Any, corpus: list[tuple[str, str]], seed: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        # Untied: with tied embeddings the number -> successor lookup took 3x the steps to learn.
        tie_word_embeddings=False,
        **MODEL_SHAPE,
    )
    model = LlamaForCausalLM(config)
    ids, labels, mask = _tensors(tokenizer, corpus)
    opt = torch.optim.AdamW(model.parameters(), lr=PRETRAIN["lr"], weight_decay=0.01)
    steps, bs, warmup = PRETRAIN["steps"], PRETRAIN["batch_size"], PRETRAIN["warmup"]

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(corpus), (bs,), generator=gen)
        width = int(mask[idx].sum(1).max())
        loss = model(
            input_ids=ids[idx, :width], attention_mask=mask[idx, :width], labels=labels[idx, :width]
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 200 == 0 or step == steps - 1:
            log.info("tiny world pretraining step %d/%d loss %.3f", step, steps, loss.item())
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def style_mix(
    model: Any, tokenizer: Any, world: World, prompts: list[str], seed: int = 0
) -> dict[str, float]:
    """Share of each style (and ``other``) among completions sampled at temperature 1."""
    from flywheel.dev.sampling import generate

    completions = generate(model, tokenizer, prompts, seed=seed)
    counts = dict.fromkeys((*STYLES, "other"), 0)
    for prompt, completion in zip(prompts, completions, strict=True):
        counts[world.style_of(prompt, completion)] += 1
    return {k: v / len(prompts) for k, v in counts.items()}


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    # Several test processes may ask for the world at once: one builds, the others wait and reuse.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def world_dir(config: Config, seed: int = 0) -> Path:
    return Path(config.paths.cache) / "tiny-world" / f"{WORLD_VERSION}-seed{seed}"


def build(config: Config, force: bool = False, seed: int = 0) -> Path:
    """Build (or reuse) the tiny world's tokenizer and model; returns the model folder."""
    import torch

    target = world_dir(config, seed)
    with _lock(target.parent / f".{target.name}.lock"):
        if (target / "world.json").is_file() and not force:
            return target
        started = time.perf_counter()
        threads = torch.get_num_threads()
        # One thread: on a shared 2-core machine two spinning OpenMP threads ran 6x slower, and the
        # model is too small to gain from more.
        torch.set_num_threads(1)
        try:
            return _build(target, seed, started)
        finally:
            torch.set_num_threads(threads)


def _build(target: Path, seed: int, started: float) -> Path:
    world = World(seed)
    rng = random.Random(seed)
    corpus = _corpus(world, PRETRAIN["corpus"], rng)
    tokenizer = _train_tokenizer(corpus)
    model = _pretrain(tokenizer, corpus, seed)
    held_out = world.sample_prompts(400, "held_out", random.Random(seed + 1))
    measured = style_mix(model, tokenizer, world, held_out, seed=seed)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    meta = {
        "version": WORLD_VERSION,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "shape": MODEL_SHAPE,
        "pretrain": PRETRAIN,
        "taught_mix": STYLE_MIX,
        "sampled_mix_held_out": measured,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    # world.json is written last: its presence marks a complete build.
    (tmp / "world.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    log.info("tiny world built in %.1fs at %s: %s", meta["build_seconds"], target, measured)
    return target


def load(path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """(model, tokenizer) from a tiny-world or registry folder, on CPU, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)
    model.eval()
    return model, tokenizer
