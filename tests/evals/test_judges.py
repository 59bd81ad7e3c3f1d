"""Judges: a rubric named in the config, a reward model, and an OpenAI-compatible endpoint on a local HTTP server."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evals.config import EvalsConfig
from evals.errors import EvalError
from evals.judges import JUDGE_PROMPT, EndpointJudge, _letter, endpoint_judge, make_judge, rubric_judge

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
def serve(
    decide: Callable[[str, str], str], failures: list[tuple[int, dict[str, str]]] | None = None
) -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A chat-completions endpoint on 127.0.0.1 whose reply is decide(answer_a, answer_b); the first
    requests get ``failures`` instead (status, headers), one each, in order."""
    seen: list[dict[str, object]] = []
    pending = list(failures or [])
    lock = threading.Lock()
    state = {"in_flight": 0, "max_in_flight": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                failure = pending.pop(0) if pending else None
                state["in_flight"] += 1
                state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
            try:
                if failure is not None:
                    status, headers = failure
                    seen.append({"failed": status, "time": time.monotonic()})
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                time.sleep(0.02)  # long enough for concurrent requests to overlap
                self._reply(body)
            finally:
                with lock:
                    state["in_flight"] -= 1

        def _reply(self, body: dict[str, object]) -> None:
            seen.append({"body": body, "auth": self.headers.get("Authorization"), "time": time.monotonic()})
            text = body["messages"][0]["content"]  # type: ignore[index]
            if "Answer A:\n" in text:  # the built-in template
                a = text.split("Answer A:\n", 1)[1].split("\n\nAnswer B:", 1)[0]
                b = text.split("Answer B:\n", 1)[1].split("\n\nBetter answer", 1)[0]
            else:
                a = b = ""
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
        seen.append({"max_in_flight": state["max_in_flight"]})
    finally:
        server.shutdown()
        server.server_close()


def _config(url: str, **changes: Any) -> EvalsConfig:
    return EvalsConfig(
        judge="endpoint",
        judge_url=url,
        judge_model="judge-1",
        judge_api_key_env="TEST_JUDGE_KEY",
        judge_backoff_s=0.01,
        **changes,
    )


def _requests(seen: list[dict[str, object]]) -> list[dict[str, object]]:
    return [s for s in seen if "body" in s]


def test_endpoint_is_asked_in_both_orders_and_position_bias_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_JUDGE_KEY", "secret")
    # A judge that always says "A" has no opinion once both orders are asked: every pair is a tie.
    with serve(lambda a, b: "A") as (url, seen):
        judgement, _ = endpoint_judge(_config(url, judge_concurrency=1))(PROMPTS, CAND, CHAMP)
    assert list(judgement) == [0.5, 0.5, 0.5]
    asked = _requests(seen)
    assert len(asked) == 4  # the third pair is two identical answers: a tie, never sent
    assert asked[0]["auth"] == "Bearer secret"
    body = asked[0]["body"]
    assert isinstance(body, dict) and body["model"] == "judge-1" and body["max_tokens"] == 16
    texts = sorted(s["body"]["messages"][0]["content"] for s in asked[:2])  # type: ignore[index]
    assert texts == sorted(
        [
            JUDGE_PROMPT.format(prompt="q1", a="short", b="a longer answer"),
            JUDGE_PROMPT.format(prompt="q1", a="a longer answer", b="short"),
        ]
    )


def test_endpoint_preference_is_counted_for_the_candidate() -> None:
    with serve(lambda a, b: "B" if len(b) < len(a) else "A") as (url, _):
        judgement, margin = make_judge(_config(url))(PROMPTS, CAND, CHAMP)  # type: ignore[misc]
        # Shorter wins: candidate wins q1, loses q2; q3 is identical (A both times: one vote each).
        assert list(judgement) == [1.0, 0.0, 0.5]
        np.testing.assert_allclose(margin, judgement - 0.5)


def test_unreachable_endpoint_says_what_to_check() -> None:
    cfg = EvalsConfig(
        judge="endpoint",
        judge_url="http://127.0.0.1:9/v1/chat/completions",
        judge_model="m",
        judge_retries=2,
        judge_backoff_s=0.01,
    )
    with pytest.raises(EvalError, match=r"judge endpoint .* failed 3 times"):
        endpoint_judge(cfg)(["q"], ["a"], ["b"])


def test_rate_limits_and_server_errors_are_retried_honouring_retry_after() -> None:
    failures = [(429, {"Retry-After": "1"}), (503, {}), (500, {})]
    with serve(lambda a, b: "B" if len(b) < len(a) else "A", failures) as (url, seen):
        judge = EndpointJudge(_config(url, judge_concurrency=1))
        started = time.monotonic()
        judgement, _ = judge(PROMPTS[:1], CAND[:1], CHAMP[:1])
    assert list(judgement) == [1.0]  # shorter wins: the candidate, in both orders
    assert judge.retries == 3 and judge.requests == 5
    failed = [s for s in seen if "failed" in s]
    assert [s["failed"] for s in failed] == [429, 503, 500]
    # The 429 said "Retry-After: 1": the next request came no sooner.
    assert float(failed[1]["time"]) - float(failed[0]["time"]) >= 0.95  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.95


def test_a_client_error_is_not_retried_and_says_what_to_check() -> None:
    judge = None
    with serve(lambda a, b: "A", [(401, {})] * 10) as (url, seen), pytest.raises(EvalError, match="HTTP 401"):
        judge = EndpointJudge(_config(url, judge_concurrency=1))
        judge(PROMPTS[:1], CAND[:1], CHAMP[:1])
    # Each of the pair's two requests (one per order) was sent once: a 401 is never retried.
    assert judge is not None and judge.retries == 0
    assert 1 <= len([s for s in seen if "failed" in s]) <= 2


def test_requests_run_concurrently_up_to_the_bound() -> None:
    prompts = [f"q{i}" for i in range(12)]
    with serve(lambda a, b: "A") as (url, seen):
        EndpointJudge(_config(url, judge_concurrency=3))(prompts, ["x"] * 12, ["y"] * 12)
    assert len(_requests(seen)) == 24
    assert seen[-1]["max_in_flight"] == 3


def test_chat_prompts_are_shown_as_a_conversation_and_the_template_is_configurable() -> None:
    chat = json.dumps([{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}])
    template = "Q: {prompt}\n1) {a}\n2) {b}\nThink, then end with A or B."
    with serve(lambda a, b: "A") as (url, seen):
        EndpointJudge(_config(url, judge_prompt=template, judge_max_tokens=512))([chat], ["4"], ["5"])
    body = _requests(seen)[0]["body"]
    assert isinstance(body, dict) and body["max_tokens"] == 512
    text = body["messages"][0]["content"]
    assert text.startswith("Q: [system]\nbe brief\n\n[user]\n2+2?\n1) ")
    assert '"role"' not in text


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("A", "A"),
        ("B.", "B"),
        ("<think>A is wordy, B is right</think>B", "B"),
        ("A good start, but the second is better. Verdict: B", "B"),
        ("neither", None),
    ],
)
def test_the_verdict_is_the_last_standalone_letter_after_any_thinking(reply: str, letter: str | None) -> None:
    assert _letter(reply) == letter


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
