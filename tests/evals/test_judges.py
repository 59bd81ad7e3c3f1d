"""Judges: a rubric named in the config, a reward model, and an OpenAI-compatible endpoint on a local HTTP server."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from evals.config import EvalsConfig
from evals.errors import EvalError
from evals.judges import JUDGE_PROMPT, endpoint_judge, make_judge, rubric_judge

PROMPTS = ["q1", "q2", "q3"]
CAND = ["short", "a much longer answer", "same"]
CHAMP = ["a longer answer", "tiny", "same"]


def test_rubric_judge_compares_scores() -> None:
    judgement, margin = rubric_judge("tests.evals.rubrics:shorter_is_better")(PROMPTS, CAND, CHAMP)
    assert list(judgement) == [1.0, 0.0, 0.5]
    assert margin[0] > 0 > margin[1] and margin[2] == 0


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("tests.evals.nosuch:f", "cannot load the rubric"),
        ("tests.evals.rubrics:nosuch", "cannot load the rubric"),
        ("tests.evals.rubrics:NOT_CALLABLE", "not callable"),
    ],
)
def test_bad_rubric_names_are_clear_errors(spec: str, match: str) -> None:
    with pytest.raises(EvalError, match=match):
        make_judge(EvalsConfig(judge="rubric", rubric=spec))


@contextlib.contextmanager
def serve(decide: Callable[[str, str], str]) -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A chat-completions endpoint on 127.0.0.1 whose reply is decide(answer_a, answer_b)."""
    seen: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"body": body, "auth": self.headers.get("Authorization")})
            text = body["messages"][0]["content"]
            a = text.split("Answer A:\n", 1)[1].split("\n\nAnswer B:", 1)[0]
            b = text.split("Answer B:\n", 1)[1].split("\n\nBetter answer", 1)[0]
            reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": decide(a, b)}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions", seen
    finally:
        server.shutdown()
        server.server_close()


def _config(url: str) -> EvalsConfig:
    return EvalsConfig(
        judge="endpoint", judge_url=url, judge_model="judge-1", judge_api_key_env="TEST_JUDGE_KEY"
    )


def test_endpoint_is_asked_in_both_orders_and_position_bias_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_JUDGE_KEY", "secret")
    # A judge that always says "A" has no opinion once both orders are asked: every pair is a tie.
    with serve(lambda a, b: "A") as (url, seen):
        judgement, _ = endpoint_judge(_config(url))(PROMPTS, CAND, CHAMP)
        assert list(judgement) == [0.5, 0.5, 0.5]
        assert len(seen) == 6
        assert seen[0]["auth"] == "Bearer secret"
        body = seen[0]["body"]
        assert isinstance(body, dict) and body["model"] == "judge-1"
        first, second = (s["body"]["messages"][0]["content"] for s in seen[:2])  # type: ignore[index]
        assert first == JUDGE_PROMPT.format(prompt="q1", a="short", b="a longer answer")
        assert second == JUDGE_PROMPT.format(prompt="q1", a="a longer answer", b="short")


def test_endpoint_preference_is_counted_for_the_candidate() -> None:
    with serve(lambda a, b: "B" if len(b) < len(a) else "A") as (url, _):
        judgement, margin = make_judge(_config(url))(PROMPTS, CAND, CHAMP)  # type: ignore[misc]
        # Shorter wins: candidate wins q1, loses q2; q3 is identical (A both times: one vote each).
        assert list(judgement) == [1.0, 0.0, 0.5]
        np.testing.assert_allclose(margin, judgement - 0.5)


def test_unreachable_endpoint_says_what_to_check() -> None:
    cfg = EvalsConfig(judge="endpoint", judge_url="http://127.0.0.1:9/v1/chat/completions", judge_model="m")
    with pytest.raises(EvalError, match="judge endpoint"):
        endpoint_judge(cfg)(["q"], ["a"], ["b"])


def test_reward_model_judge_scores_pairs_with_a_sequence_classifier(tmp_path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from tests.evals import tiny

    tok = tiny.tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        pad_token_id=tok.pad_token_id,
    )
    config.num_labels = 1  # one score per sequence
    model = LlamaForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    prompts, cand, champ = (
        ["the cat", "what is 1 ?", "hello"],
        ["sat .", "2 .", "world"],
        ["ran on the mat", "no", "world"],
    )
    judgement, margin = make_judge(EvalsConfig(judge="reward_model", reward_model=str(tmp_path)))(
        prompts, cand, champ
    )  # type: ignore[misc]

    def score(p: str, a: str) -> float:
        with torch.no_grad():
            return float(model(**tok(p, a, return_tensors="pt")).logits[0, 0])

    expected = [score(p, c) - score(p, h) for p, c, h in zip(prompts, cand, champ, strict=True)]
    np.testing.assert_allclose(margin, expected, atol=1e-4)
    assert list(judgement) == [1.0 if e > 0 else 0.0 if e < 0 else 0.5 for e in expected]
    assert judgement[2] == 0.5  # the same answer scores the same


def test_missing_reward_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="cannot load the reward model"):
        make_judge(EvalsConfig(judge="reward_model", reward_model=str(tmp_path / "none")))
