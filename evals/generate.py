"""Replay generation: a model answers prompts in left-padded batches, seeded per batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from evals.scoring import Loaded


@torch.no_grad()
def generate(
    m: Loaded,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    seed: int,
    max_prompt_tokens: int = 1024,
) -> list[str]:
    """One answer per prompt, in order.

    Prompts are sorted by length so a batch carries little padding; each batch
    reseeds from ``seed`` and its position so the answers do not depend on
    what ran before (the same seed gives the same answers for the same batches).
    """
    tok = m.tokenizer
    # Decoder-only models continue from the last position: pad on the left.
    tok.padding_side = "left"
    tok.truncation_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers = [""] * len(prompts)
    sample = temperature > 0
    for number, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start : start + batch_size]
        enc = tok(
            [prompts[i] for i in idx],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_prompt_tokens,
        ).to(m.device)
        torch.manual_seed(seed * 1_000_003 + number)
        out = m.model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=0 if sample else None,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        new = out[:, enc["input_ids"].shape[1] :]
        for j, i in enumerate(idx):
            answers[i] = tok.decode(new[j], skip_special_tokens=True).strip()
    tok.padding_side = "right"
    return answers
