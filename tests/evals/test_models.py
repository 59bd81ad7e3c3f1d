"""Scoring and generation on a real tiny Llama: batched results equal one-at-a-time results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from evals import scoring
from evals.generate import generate, sample
from tests.evals import tiny

PROMPTS = ["what is the answer ?", "the cat", "hello world !", "what is 1 2 3 4 5 ?", "a dog ran on the log"]
COMPLETIONS = ["yes .", "sat on the mat . the dog ran", "no", "6 7 8 9 .", "!"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> scoring.Loaded:
    path = tiny.build(tmp_path_factory.mktemp("tiny") / "m", seed=1)
    return scoring.load("m", path, torch.device("cpu"))


def test_batched_logprobs_equal_unbatched_and_manual(model: scoring.Loaded) -> None:
    pairs = scoring.encode(model.tokenizer, PROMPTS, COMPLETIONS, append_eos=True)
    batched, counts = scoring.logprobs(model, pairs, batch_size=4, max_length=64)
    single, counts1 = scoring.logprobs(model, pairs, batch_size=1, max_length=64)
    np.testing.assert_allclose(batched, single, atol=1e-4)
    assert list(counts) == list(counts1) == [len(c) for _, c in pairs]
    # By hand for one pair: sum of log p(token | prefix) over the completion (with <eos>).
    p, c = pairs[1]
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logp = torch.log_softmax(model.model(input_ids=ids).logits[0], -1)
    manual = sum(float(logp[len(p) + k - 1, tok]) for k, tok in enumerate(c))
    assert abs(batched[1] - manual) < 1e-4
    assert c[-1] == model.tokenizer.eos_token_id


def test_long_prompts_are_cut_on_the_left_not_the_completion(model: scoring.Loaded) -> None:
    pairs = scoring.encode(model.tokenizer, [" ".join(["the cat"] * 40)], ["yes ."], append_eos=False)
    _, counts = scoring.logprobs(model, pairs, batch_size=2, max_length=16)
    assert counts[0] == 2


def test_generation_is_seeded_and_batching_does_not_change_greedy_answers(model: scoring.Loaded) -> None:
    args: dict[str, Any] = {"max_new_tokens": 6, "top_p": 1.0, "seed": 3}
    greedy_batched = generate(model, PROMPTS, temperature=0.0, batch_size=5, **args)
    greedy_single = generate(model, PROMPTS, temperature=0.0, batch_size=1, **args)
    assert greedy_batched == greedy_single
    assert all(isinstance(a, str) for a in greedy_batched)
    first = generate(model, PROMPTS, temperature=1.0, batch_size=2, **args)
    again = generate(model, PROMPTS, temperature=1.0, batch_size=2, **args)
    other = generate(model, PROMPTS, temperature=1.0, batch_size=2, **{**args, "seed": 4})
    assert first == again
    assert first != other


def test_sampled_ids_are_the_prompt_as_seen_and_the_tokens_drawn(model: scoring.Loaded) -> None:
    args: dict[str, Any] = {"max_new_tokens": 6, "temperature": 1.0, "top_p": 1.0, "seed": 3}
    got = sample(model, PROMPTS, batch_size=2, **args)  # batches pad the shorter prompts on the left
    assert [a.text for a in got] == generate(model, PROMPTS, batch_size=2, **args)
    tok = model.tokenizer
    eos = tok.eos_token_id
    for prompt, answer in zip(PROMPTS, got, strict=True):
        assert answer.prompt_ids == tok(prompt)["input_ids"]  # without the padding
        assert 1 <= len(answer.answer_ids) <= 6
        assert eos not in answer.answer_ids[:-1]  # cut after the first end of sequence: padding follows
        assert tok.decode(answer.answer_ids, skip_special_tokens=True).strip() == answer.text
    # scored as sampled: a model's log-probability of its own tokens, batched or not, is the same
    pairs = [(a.prompt_ids, a.answer_ids) for a in got]
    batched, counts = scoring.logprobs(model, pairs, batch_size=5, max_length=64)
    single, _ = scoring.logprobs(model, pairs, batch_size=1, max_length=64)
    np.testing.assert_allclose(batched, single, atol=1e-4)
    assert list(counts) == [len(a.answer_ids) for a in got]


def test_a_folder_that_is_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    from evals.errors import EvalError

    with pytest.raises(EvalError, match="cannot load"):
        scoring.load("x", tmp_path, torch.device("cpu"))
