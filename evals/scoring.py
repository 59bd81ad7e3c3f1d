"""Models and log-probabilities: load a registry version, score completions in length-sorted batches."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evals.errors import EvalError


@dataclasses.dataclass
class Loaded:
    name: str
    model: Any
    tokenizer: Any
    device: torch.device


def pick_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise EvalError(
            f"evals.device is {setting} but no CUDA device is visible", hint="set evals.device = auto"
        )
    return torch.device(setting)


def load(name: str, path: Path, device: torch.device) -> Loaded:
    """A causal LM and its tokenizer from a folder, in eval mode, with a pad token."""
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_pretrained(
        AutoModelForCausalLM, path, device, f"{name} from {path}", "`flywheel status` lists versions"
    )
    return Loaded(name, model, tokenizer, device)


def load_pretrained(
    auto_class: Any, path: str | Path, device: torch.device, what: str, hint: str
) -> tuple[Any, Any]:
    """A model (``auto_class``: a transformers Auto class) and its tokenizer, in eval mode on
    ``device`` (bf16 on a GPU), the tokenizer with a pad token; a model that cannot be loaded is
    an EvalError naming ``what``."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        model = auto_class.from_pretrained(path, dtype=dtype, use_safetensors=True).to(device).eval()
    except (OSError, ValueError) as exc:
        raise EvalError(f"cannot load {what}: {exc}", hint=hint) from None
    if tokenizer.pad_token is None:
        # Padding positions are masked out everywhere, so any token will do.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return model, tokenizer


def encode(
    tok: Any, prompts: Sequence[str], completions: Sequence[str], append_eos: bool
) -> list[tuple[list[int], list[int]]]:
    """Token ids of each prompt and completion, tokenized apart so the boundary is exact."""
    p_ids = tok(list(prompts), add_special_tokens=True)["input_ids"]
    c_ids = tok(list(completions), add_special_tokens=False)["input_ids"]
    eos = [tok.eos_token_id] if append_eos and tok.eos_token_id is not None else []
    return [(list(p), list(c) + eos) for p, c in zip(p_ids, c_ids, strict=True)]


def logprobs(
    m: Loaded, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int, max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of log p(completion | prompt) and completion token count per pair (see :func:`token_logprobs`)."""
    per_token = token_logprobs(m, pairs, batch_size, max_length)
    sums = np.array([float(t.sum()) for t in per_token])
    return sums, np.array([len(t) for t in per_token], dtype=np.int64)


@torch.no_grad()
def token_logprobs(
    m: Loaded, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int, max_length: int
) -> list[np.ndarray]:
    """log p(token | everything before it) of each completion token, per pair.

    Pairs are scored in batches of similar length (sorted by total length) so a
    batch carries little padding; results come back in the input order.
    Prompts longer than ``max_length`` minus the completion are cut on the left.
    """
    out: list[np.ndarray] = [np.zeros(0)] * len(pairs)
    rows = []
    for p, c in pairs:
        c = c[: max_length - 1]
        p = p[-max(1, max_length - len(c)) :] if p else [m.tokenizer.eos_token_id or 0]
        rows.append((p, c))
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
    pad = m.tokenizer.pad_token_id or 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        seqs = [rows[i][0] + rows[i][1] for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        target = torch.zeros((len(idx), width), dtype=torch.bool)
        for j, i in enumerate(idx):
            p, c = rows[i]
            ids[j, : len(p) + len(c)] = torch.tensor(p + c)
            attn[j, : len(p) + len(c)] = 1
            target[j, len(p) : len(p) + len(c)] = True
        logits = m.model(input_ids=ids.to(m.device), attention_mask=attn.to(m.device)).logits.float()
        # Position t predicts token t+1.
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        token_logp = logp.gather(-1, ids[:, 1:].to(m.device).unsqueeze(-1)).squeeze(-1)
        mask = target[:, 1:]
        values = token_logp.double().cpu().numpy()
        for j, i in enumerate(idx):
            out[i] = values[j][mask[j].numpy()]
    return out
