"""Judges of replay pairs. Each returns, per prompt, a judgement (1 candidate better, 0.5 tie, 0
champion better) and a margin (how much better, in the judge's own units) that orders the examples.

- ``rubric``: a Python function named ``"module:function"`` (or ``"module:Class.method"``, the class
  built with its defaults), ``f(prompt, completion) -> float``.
- ``reward_model``: a Hugging Face sequence classifier; its first logit is the score.
- ``endpoint``: an OpenAI-compatible chat completions endpoint, asked in both
  orders so that its position bias cancels: a pair counts as a win only when
  the candidate is preferred as answer A and as answer B, a tie when the two
  orders disagree. Chat prompts are shown as the conversation, identical answers
  are ties without a request, and a rate-limited or flaky endpoint is retried
  (see :class:`EndpointJudge`).
"""

from __future__ import annotations

import importlib
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
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


def compare(cand: np.ndarray, champ: np.ndarray) -> Verdicts:
    """Verdicts from two scores per pair: 1 where the candidate scores higher, 0 lower, 0.5 equal."""
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


class PointwiseJudge:
    """A judge that scores each answer on its own (a rubric, a reward model): replay compares every
    candidate answer to a prompt with every champion answer to it, at no extra cost."""

    def __init__(self, score: Callable[[Sequence[str], Sequence[str]], np.ndarray]) -> None:
        self.score = score

    def __call__(self, prompts: Sequence[str], cand: Sequence[str], champ: Sequence[str]) -> Verdicts:
        return compare(self.score(prompts, cand), self.score(prompts, champ))


def rubric_judge(spec: str) -> PointwiseJudge:
    fn = load_rubric(spec)

    def score(prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        return np.array([float(fn(p, a)) for p, a in zip(prompts, answers, strict=True)])

    return PointwiseJudge(score)


def reward_model_judge(path: str, batch_size: int, device: str = "cpu") -> PointwiseJudge:
    """A sequence classifier on ``device`` (the GPU when there is one: bf16 there)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from evals.scoring import load_pretrained

    dev = torch.device(device)
    model, tok = load_pretrained(
        AutoModelForSequenceClassification, path, dev, f"the reward model {path}", "set evals.reward_model"
    )
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
            out.append(model(**enc.to(dev)).logits[:, 0].float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    return PointwiseJudge(lambda prompts, answers: scores([as_conversation(p) for p in prompts], answers))


class _Retryable(Exception):
    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> str:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        if exc.code == 429 or exc.code >= 500:
            raise _Retryable(
                f"HTTP {exc.code} {detail}", _retry_after(exc.headers.get("Retry-After"))
            ) from None
        raise EvalError(
            f"the judge endpoint {url} refused the request: HTTP {exc.code} {detail}",
            hint="check evals.judge_url, evals.judge_model and the key in evals.judge_api_key_env",
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise _Retryable(f"{exc}") from None
    except json.JSONDecodeError as exc:
        raise _Retryable(f"the reply is not JSON: {exc}") from None
    try:
        text: str = reply["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as exc:
        raise EvalError(
            f"the judge endpoint {url} replied without choices[0].message.content ({exc!r})",
            hint="evals.judge_url must be an OpenAI-compatible /v1/chat/completions URL",
        ) from None
    return text


_THINKING = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def _letter(text: str) -> str | None:
    """The verdict: the last standalone A or B of the reply, after any <think> block (a reasoning
    judge explains first and concludes last)."""
    found = re.findall(r"\b([AB])\b", _THINKING.sub("", text).strip())
    return found[-1] if found else None


def as_conversation(prompt: str) -> str:
    """A chat prompt stored as JSON messages, shown as the conversation it is; text as it is."""
    if not prompt.lstrip().startswith("["):
        return prompt
    try:
        messages = json.loads(prompt)
        turns = [f"[{m['role']}]\n{m['content']}" for m in messages]
    except (ValueError, TypeError, KeyError):
        return prompt
    return "\n\n".join(turns)


class EndpointJudge:
    """An OpenAI-compatible chat-completions judge, asked about each pair in both orders.

    Identical answers are ties without a request. Requests run ``judge_concurrency`` at a time;
    429, 5xx, timeouts and dropped connections are retried ``judge_retries`` times with doubling,
    jittered waits (``judge_backoff_s`` up to ``judge_max_backoff_s``), a ``Retry-After`` header
    taking precedence. Any other HTTP error is the configuration's and stops at once.
    """

    def __init__(self, config: EvalsConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.key = os.environ.get(config.judge_api_key_env) if config.judge_api_key_env else None
        self.template = config.judge_prompt or JUDGE_PROMPT
        self.sleep = sleep
        self.requests = 0
        self.retries = 0
        self._lock = threading.Lock()

    def ask(self, prompt: str, a: str, b: str) -> str | None:
        cfg = self.config
        text = self.template.format(prompt=as_conversation(prompt), a=a, b=b)
        body = json.dumps(
            {
                "model": cfg.judge_model,
                "temperature": 0,
                "max_tokens": cfg.judge_max_tokens,
                "messages": [{"role": "user", "content": text}],
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        wait = cfg.judge_backoff_s
        for attempt in range(cfg.judge_retries + 1):
            with self._lock:
                self.requests += 1
            try:
                return _letter(_post(cfg.judge_url, body, headers, cfg.judge_timeout_s))
            except _Retryable as exc:
                if attempt == cfg.judge_retries:
                    raise EvalError(
                        f"the judge endpoint {cfg.judge_url} failed {attempt + 1} times; last: {exc}",
                        hint="check evals.judge_url and the endpoint's health; raise evals.judge_retries "
                        "or lower evals.judge_concurrency for a rate-limited endpoint",
                    ) from None
                with self._lock:
                    self.retries += 1
                delay = exc.wait if exc.wait is not None else wait * (0.5 + random.random())
                self.sleep(min(delay, cfg.judge_max_backoff_s))
                wait = min(wait * 2, cfg.judge_max_backoff_s)
        return None  # pragma: no cover - the loop returns or raises

    def __call__(self, prompts: Sequence[str], cand: Sequence[str], champ: Sequence[str]) -> Verdicts:
        judgement = np.full(len(prompts), 0.5)
        jobs = []  # (pair, order, prompt, a, b): order 0 asks with the candidate as A
        for i, (p, c, h) in enumerate(zip(prompts, cand, champ, strict=True)):
            if c.strip() != h.strip():
                jobs += [(i, 0, p, c, h), (i, 1, p, h, c)]
        votes = np.full((len(prompts), 2), 0.5)
        with ThreadPoolExecutor(max_workers=self.config.judge_concurrency) as pool:
            futures = {pool.submit(self.ask, p, a, b): (i, order) for i, order, p, a, b in jobs}
            try:
                for future in as_completed(futures):
                    i, order = futures[future]
                    letter = future.result()
                    want = "A" if order == 0 else "B"
                    # An unreadable reply counts half for each side.
                    votes[i, order] = 0.5 if letter is None else float(letter == want)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        asked = np.array(sorted({i for i, *_ in jobs}), dtype=np.int64)
        if len(asked):
            judgement[asked] = votes[asked].mean(axis=1)
        return judgement, judgement - 0.5


def endpoint_judge(config: EvalsConfig) -> Judge:
    return EndpointJudge(config)


def make_judge(config: EvalsConfig) -> Judge | None:
    if config.judge == "rubric":
        return rubric_judge(config.rubric)
    if config.judge == "reward_model":
        from evals.scoring import pick_device

        return reward_model_judge(config.reward_model, config.batch_size, str(pick_device(config.device)))
    if config.judge == "endpoint":
        return endpoint_judge(config)
    return None
