"""Replay generation: a model answers prompts in left-padded batches, seeded per batch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from evals.scoring import Loaded


@dataclasses.dataclass(frozen=True)
class Answer:
    text: str  # decoded, special tokens dropped, stripped
    prompt_ids: list[int]  # the prompt as the model saw it (truncated on the left, no padding)
    answer_ids: list[int]  # the tokens sampled, through the first end-of-sequence token if any


def generate(m: Loaded, prompts: Sequence[str], **kwargs: Any) -> list[str]:
    """One answer text per prompt, in order (see :func:`sample` for the arguments)."""
    return [a.text for a in sample(m, prompts, **kwargs)]


@torch.no_grad()
def sample(
    m: Loaded,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    seed: int,
    max_prompt_tokens: int = 1024,
) -> list[Answer]:
    """One answer per prompt, in order, with the token ids it was sampled as.

    Prompts are sorted by length so a batch carries little padding; each batch
    reseeds from ``seed`` and its position so the answers do not depend on
    what ran before (the same seed gives the same answers for the same batches).
    """
    tok = m.tokenizer
    # Decoder-only models continue from the last position: pad on the left.
    tok.padding_side = "left"
    tok.truncation_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[Answer | None] = [None] * len(prompts)
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
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        for j, i in enumerate(idx):
            ids = new[j]
            if tok.eos_token_id is not None and tok.eos_token_id in ids:
                ids = ids[: ids.index(tok.eos_token_id) + 1]  # what follows is padding
            prompt = [
                t
                for t, keep in zip(
                    enc["input_ids"][j].tolist(), enc["attention_mask"][j].tolist(), strict=True
                )
                if keep
            ]
            answers[i] = Answer(tok.decode(new[j], skip_special_tokens=True).strip(), prompt, ids)
    tok.padding_side = "right"
    return [a for a in answers if a is not None]
