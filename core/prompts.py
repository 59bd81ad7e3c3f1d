"""The one prompt renderer: the text a model continues, the same for training, sampling and the gate.

A lake row's prompt is plain text (``prompt_format = "text"``: used as it is) or a chat
conversation (``"messages"``: the JSON text of a list of ``{"role", "content"}`` messages, rendered
through the tokenizer's chat template with the generation prompt added). A tokenizer without a
chat template cannot render a conversation the way the model will be served, so that is an
error rather than a made-up transcript: a model trained on one rendering and gated on another
would be judged on text it never sees in production.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from core.errors import TerminalError

FORMATS = ("text", "messages")


class PromptError(TerminalError):
    """A prompt cannot be rendered for this model."""


def render_messages(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> str:
    """A conversation through the tokenizer's chat template, ending where the answer starts."""
    if not getattr(tokenizer, "chat_template", None):
        raise PromptError(
            "chat prompts need a chat template, and this model's tokenizer has none",
            hint="register a base whose tokenizer_config.json (or chat_template.jinja) has a chat_template",
        )
    text: str = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return text


def render(tokenizer: Any, prompt: str, prompt_format: str) -> str:
    """The text the model continues for a lake row's ``prompt`` and ``prompt_format``."""
    if prompt_format == "text":
        return prompt
    if prompt_format != "messages":
        raise PromptError(
            f"prompt_format {prompt_format!r} is neither 'text' nor 'messages'",
            hint="rebuild the snapshot with the current `flywheel curate`",
        )
    try:
        messages = json.loads(prompt)
    except json.JSONDecodeError as exc:
        raise PromptError(f"a messages prompt is not JSON: {exc}", hint="rebuild the snapshot") from None
    return render_messages(tokenizer, messages)
