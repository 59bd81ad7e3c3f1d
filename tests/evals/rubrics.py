"""Rubrics named in the gate's config as "module:function" by the tests."""

from __future__ import annotations


def shorter_is_better(prompt: str, completion: str) -> float:
    return -float(len(completion))


def tiny_world(prompt: str, completion: str) -> float:
    """The tiny world's hidden preference (seed 0): the judge the demo uses too."""
    from training.world import World

    return World(seed=0).rubric(prompt, completion)


NOT_CALLABLE = 3
