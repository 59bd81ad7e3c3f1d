"""The tiny world's rules and its built model."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flywheel.dev.world import RUBRIC, STYLE_MIX, STYLES, World, normalize

WORLD = World(seed=0)


def test_splits_partition_the_prompts_deterministically() -> None:
    train, held_out = WORLD.prompts("train"), WORLD.prompts("held_out")
    assert set(train).isdisjoint(held_out)
    assert sorted(train + held_out) == WORLD.prompts("all")
    assert 0.1 < len(held_out) / len(WORLD.prompts()) < 0.3
    assert World(seed=0).prompts("held_out") == held_out
    assert World(seed=1).prompts("held_out") != held_out
    with pytest.raises(ValueError, match="split"):
        WORLD.prompts("test")


@given(st.sampled_from(WORLD.prompts()))
def test_each_style_is_recognised_and_rated(prompt: str) -> None:
    for style, options in WORLD.all_answers(prompt).items():
        for completion in options:
            assert WORLD.style_of(prompt, completion) == style
            # Spacing around punctuation does not matter: "7." is "7 ."
            squeezed = completion.replace(" .", ".").replace(" ,", ",").replace(" !", "!")
            assert WORLD.style_of(prompt, squeezed) == style
            assert WORLD.rubric(prompt, completion) == RUBRIC[style]
    assert WORLD.answers(prompt)["concise"] in WORLD.all_answers(prompt)["concise"]
    assert WORLD.approves(prompt, WORLD.answers(prompt)["concise"])
    assert not WORLD.approves(prompt, WORLD.answers(prompt)["verbose"])
    assert not WORLD.approves(prompt, WORLD.answers(prompt)["wrong"])


@given(st.sampled_from(WORLD.prompts()), st.text(max_size=40))
def test_rubric_is_a_probability_for_any_text(prompt: str, completion: str) -> None:
    assert 0.0 <= WORLD.rubric(prompt, completion) <= 1.0
    assert WORLD.style_of(prompt, completion) in (*STYLES, "other")


def test_unknown_prompt_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match=r"World\.prompts"):
        WORLD.rubric("what is the capital of france ?", "paris .")


def test_normalize_splits_punctuation() -> None:
    assert normalize("Well,  it is 7!") == "well , it is 7 !"


def test_draw_style_follows_the_mix() -> None:
    rng = random.Random(0)
    draws = [WORLD.draw_style(rng) for _ in range(4000)]
    for style, share in STYLE_MIX.items():
        assert abs(draws.count(style) / len(draws) - share) < 0.03


def test_built_world_loads_and_samples_every_style(tiny_world, world) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from flywheel.dev.sampling import generate
    from flywheel.dev.tiny_world import style_mix

    meta = json.loads((tiny_world / "world.json").read_text())
    assert meta["parameters"] < 3_000_000
    tokenizer = AutoTokenizer.from_pretrained(tiny_world)
    model = AutoModelForCausalLM.from_pretrained(tiny_world)
    prompts = world.sample_prompts(200, "held_out", random.Random(5))
    mix = style_mix(model, tokenizer, world, prompts, seed=3)
    # The base model shows every style; the preferred one is approved 30-50% of the time.
    assert 0.3 <= mix["concise"] <= 0.55, mix
    assert mix["verbose"] > 0.15 and mix["wrong"] > 0.1, mix
    assert mix["other"] < 0.1, mix
    # Chat-formatted prompts work through the tokenizer's chat template.
    chat = [[{"role": "user", "content": p}] for p in prompts[:64]]
    answers = generate(model, tokenizer, chat, temperature=0)
    assert sum(world.style_of(p, a) != "other" for p, a in zip(prompts, answers, strict=False)) >= 56
    # Same seed, same samples.
    assert generate(model, tokenizer, prompts[:16], seed=7) == generate(
        model, tokenizer, prompts[:16], seed=7
    )
