"""Rubrics named in the gate's config as "module:function" by the tests."""

from __future__ import annotations


def shorter_is_better(prompt: str, completion: str) -> float:
    return -float(len(completion))


NOT_CALLABLE = 3
