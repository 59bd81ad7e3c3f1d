"""Sampling completions from a causal LM: what the simulated app serves and what tests measure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core import prompts


def render_prompt(tokenizer: Any, prompt: str | list[dict[str, str]]) -> str:
    """The text the model continues: a plain prompt as is, a message list through the chat template
    (core.prompts, the renderer training and the gate use)."""
    if isinstance(prompt, str):
        return prompt
    return prompts.render_messages(tokenizer, prompt)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str | list[dict[str, str]]],
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    seed: int = 0,
    batch_size: int = 64,
) -> list[str]:
    """One sampled completion per prompt (``temperature=0`` is greedy), decoded without special tokens.

    Deterministic for a given ``seed``. Prompts are left-padded so every row continues from its
    own last token.
    """
    import torch

    texts = [render_prompt(tokenizer, p) for p in prompts]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(model.device)
            with torch.no_grad():
                ids = model.generate(
                    **batch,
                    do_sample=temperature > 0,
                    temperature=temperature if temperature > 0 else None,
                    top_k=0 if temperature > 0 else None,
                    top_p=1.0 if temperature > 0 else None,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            new = ids[:, batch["input_ids"].shape[1] :]
            out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
        torch.random.set_rng_state(generator_state)
    return [text.strip() for text in out]
