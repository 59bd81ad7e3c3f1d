"""Reading held-out traces: cluster ids with fallbacks, message prompts rendered for the model."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from evals.data import clusters, render_prompt, tags
from evals.errors import EvalError
from tests.evals import tiny


def test_clusters_fall_back_from_session_to_user_to_trace() -> None:
    frame = pd.DataFrame(
        {
            "session_id": ["s1", None, "", None],
            "user_id": [None, "u1", "u2", None],
            "trace_id": ["t1", "t2", "t3", "t4"],
        }
    )
    assert list(clusters(frame, "session_id")) == ["session_id:s1", "user_id:u1", "user_id:u2", "trace_id:t4"]
    frame["user_id"] = ["u9", "u1", "u2", None]
    assert list(clusters(frame, "user_id")) == ["user_id:u9", "user_id:u1", "user_id:u2", "trace_id:t4"]


def test_message_prompts_use_the_chat_template_and_refuse_without_one() -> None:
    # Without a template the gate used to replay a made-up transcript ("user: ...\nassistant:")
    # that training never rendered; the gate now renders as training does (core.prompts) or says why not.
    tok = tiny.tokenizer()
    messages = json.dumps(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the cat ?"}]
    )
    assert render_prompt("the cat ?", "text", tok) == "the cat ?"
    with pytest.raises(EvalError, match="chat template"):
        render_prompt(messages, "messages", tok)
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}<assistant> "
    assert render_prompt(messages, "messages", tok) == "<system> be brief <user> the cat ? <assistant> "


def test_tags_tolerate_missing_and_malformed_json() -> None:
    frame = pd.DataFrame({"tags": ['{"workload": "chat", "n": 3}', "{}", "not json", None, "[1]"]})
    assert tags(frame) == [{"workload": "chat", "n": "3"}, {}, {}, {}, {}]
