"""Judges of replay pairs. Each returns, per prompt, a judgement (1 candidate better, 0.5 tie, 0
champion better) and a margin (how much better, in the judge's own units) that orders the examples.

- ``rubric``: a Python function named ``"module:function"`` (or ``"module:Class.method"``, the class
  built with its defaults), ``f(prompt, completion) -> float``.
- ``reward_model``: a Hugging Face sequence classifier; its first logit is the score.
- ``endpoint``: an OpenAI-compatible chat completions endpoint, asked in both
  orders so that its position bias cancels: a pair counts as a win only when
  the candidate is preferred as answer A and as answer B, a tie when the two
  orders disagree.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from evals.config import EvalsConfig
from evals.errors import EvalError

Verdicts = tuple[np.ndarray, np.ndarray]  # judgement, margin
Judge = Callable[[Sequence[str], Sequence[str], Sequence[str]], Verdicts]

JUDGE_PROMPT = """You compare two answers to the same request. Reply with one letter: A or B, the better answer.

Request:
{prompt}

Answer A:
{a}

Answer B:
{b}

Better answer (A or B):"""


def _compare(cand: np.ndarray, champ: np.ndarray) -> Verdicts:
    return np.where(cand > champ, 1.0, np.where(cand < champ, 0.0, 0.5)), cand - champ


def load_rubric(spec: str) -> Callable[[str, str], float]:
    module_name, _, attr = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        parts = attr.split(".")
        for i, part in enumerate(parts):
            target = getattr(target, part)
            if isinstance(target, type) and i < len(parts) - 1:
                # "module:Class.method": the class is built with its defaults (e.g. World.rubric).
                target = target()
    except (ImportError, AttributeError) as exc:
        raise EvalError(
            f"cannot load the rubric {spec!r}: {exc}",
            hint='set evals.rubric to "module:function" importable from this environment',
        ) from None
    if not callable(target):
        raise EvalError(
            f"rubric {spec!r} is not callable", hint="name a function (prompt, completion) -> float"
        )
    fn: Callable[[str, str], float] = target
    return fn


def rubric_judge(spec: str) -> Judge:
    fn = load_rubric(spec)

    def judge(prompts: Sequence[str], cand: Sequence[str], champ: Sequence[str]) -> Verdicts:
        a = np.array([float(fn(p, c)) for p, c in zip(prompts, cand, strict=True)])
        b = np.array([float(fn(p, c)) for p, c in zip(prompts, champ, strict=True)])
        return _compare(a, b)

    return judge


def reward_model_judge(path: str, batch_size: int) -> Judge:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    except (OSError, ValueError) as exc:
        raise EvalError(
            f"cannot load the reward model {path}: {exc}", hint="set evals.reward_model"
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id

    @torch.no_grad()
    def scores(prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        out = []
        for s in range(0, len(prompts), batch_size):
            enc = tok(
                list(prompts[s : s + batch_size]),
                list(answers[s : s + batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
            )
            out.append(model(**enc).logits[:, 0].float().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def judge(prompts: Sequence[str], cand: Sequence[str], champ: Sequence[str]) -> Verdicts:
        return _compare(scores(prompts, cand), scores(prompts, champ))

    return judge


def _ask(url: str, model: str, key: str | None, prompt: str, timeout: float) -> str:
    body = json.dumps(
        {"model": model, "temperature": 0, "max_tokens": 4, "messages": [{"role": "user", "content": prompt}]}
    ).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
        text: str = reply["choices"][0]["message"]["content"]
    except (urllib.error.URLError, TimeoutError, KeyError, IndexError, json.JSONDecodeError) as exc:
        raise EvalError(
            f"the judge endpoint {url} failed: {exc}",
            hint="check evals.judge_url, evals.judge_model and the key in evals.judge_api_key_env",
        ) from None
    return text


def _letter(text: str) -> str | None:
    found = re.search(r"\b([AB])\b", text.strip().upper())
    return found.group(1) if found else None


def endpoint_judge(config: EvalsConfig) -> Judge:
    key = os.environ.get(config.judge_api_key_env) if config.judge_api_key_env else None

    def one(prompt: str, a: str, b: str) -> str | None:
        text = JUDGE_PROMPT.format(prompt=prompt, a=a, b=b)
        return _letter(_ask(config.judge_url, config.judge_model, key, text, config.judge_timeout_s))

    def judge(prompts: Sequence[str], cand: Sequence[str], champ: Sequence[str]) -> Verdicts:
        out = []
        for p, c, h in zip(prompts, cand, champ, strict=True):
            first = one(p, c, h)  # candidate is A
            second = one(p, h, c)  # candidate is B
            # An unreadable reply counts half for each side.
            votes = [0.5 if v is None else float(v == want) for v, want in ((first, "A"), (second, "B"))]
            out.append(sum(votes) / 2)
        judgement = np.array(out, dtype=np.float64)
        return judgement, judgement - 0.5

    return judge


def make_judge(config: EvalsConfig) -> Judge | None:
    if config.judge == "rubric":
        return rubric_judge(config.rubric)
    if config.judge == "reward_model":
        return reward_model_judge(config.reward_model, config.batch_size)
    if config.judge == "endpoint":
        return endpoint_judge(config)
    return None
