"""The tiny world's rules: its prompts, the answer styles, and the hidden user preference.

Every prompt asks for the successor of a number below :data:`N_OPERANDS`, phrased by one of a few
templates (a lookup a 0.3 M parameter model learns in a minute, unlike multi-digit arithmetic).
Each prompt has three answers in clearly different styles:

* ``concise``: the right number and a full stop (``"7 ."``), what users like (rubric 1.0);
* ``verbose``: the right number wrapped in padding (``"well , i think the answer is 7 ."``),
  tolerated but not approved (rubric 0.3);
* ``wrong``: a wrong number in the concise form (``"8 ."``, rubric 0.0).

Anything else a model writes is ``other`` (rubric 0.0). The base model of the tiny world samples
the three styles in the proportions of :data:`STYLE_MIX`, so about 40% of its answers are
approved; KTO on thumbs given by :meth:`World.rubric` should raise that share round after round.

Texts are written as the tiny tokenizer decodes them: tokens separated by one space. Comparisons
normalise spacing first, so ``"7."`` and ``"7 ."`` are the same answer.

This module is pure Python (no torch) so the simulator and the gate can import it cheaply.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

STYLES = ("concise", "verbose", "wrong")
# How often the base model answers in each style (the pretraining mixture).
STYLE_MIX = {"concise": 0.40, "verbose": 0.35, "wrong": 0.25}
RUBRIC = {"concise": 1.0, "verbose": 0.3, "wrong": 0.0, "other": 0.0}
N_OPERANDS = 50
TEMPLATES = (
    "what is {a} plus one ?",
    "add one to {a} .",
    "{a} + 1 = ?",
    "compute {a} plus one .",
)
PADDINGS = (
    "well , i think the answer is {n} .",
    "hmm , let me see . it is {n} !",
)
# Share of prompts kept out of feedback-driven training, for held-out evaluation.
HELD_OUT_SHARE = 0.2
_TOKEN = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


def normalize(text: str) -> str:
    """The text as the tiny tokenizer sees it: words and single punctuation marks, one space apart."""
    return " ".join(_TOKEN.findall(text.lower()))


def _held_out(prompt: str, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELD_OUT_SHARE


@dataclass(frozen=True)
class World:
    """The tiny world for one ``seed``: deterministic prompts, answers and preference."""

    seed: int = 0
    _operands: dict[str, int] = field(init=False, repr=False, compare=False)
    _normalized: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        operands = {}
        for template in TEMPLATES:
            for a in range(N_OPERANDS):
                operands[template.format(a=a)] = a
        # Frozen dataclass: the lookup tables are derived once, here.
        object.__setattr__(self, "_operands", operands)
        object.__setattr__(self, "_normalized", {normalize(p): ab for p, ab in operands.items()})

    # -- prompts -------------------------------------------------------------

    def prompts(self, split: str = "all") -> list[str]:
        """Every prompt (``"all"``), or those of the ``"train"`` or ``"held_out"`` split."""
        if split not in ("all", "train", "held_out"):
            raise ValueError(f"split must be 'all', 'train' or 'held_out', not {split!r}")
        out = sorted(self._operands)
        if split == "all":
            return out
        return [p for p in out if _held_out(p, self.seed) == (split == "held_out")]

    def sample_prompts(self, n: int, split: str = "train", rng: random.Random | None = None) -> list[str]:
        """``n`` prompts drawn with replacement from a split (deterministic unless ``rng`` is given)."""
        pool = self.prompts(split)
        rng = rng or random.Random(self.seed)
        return [rng.choice(pool) for _ in range(n)]

    # -- answers -------------------------------------------------------------

    def _answer(self, prompt: str) -> int:
        key = normalize(prompt)
        if key not in self._normalized:
            raise KeyError(f"{prompt!r} is not a prompt of the tiny world; World.prompts() lists them")
        return self._normalized[key] + 1

    def answers(self, prompt: str) -> dict[str, str]:
        """One completion per style for ``prompt`` (the verbose one picks a padding by prompt)."""
        n = self._answer(prompt)
        pad = PADDINGS[int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(PADDINGS)]
        return {"concise": f"{n} .", "verbose": pad.format(n=n), "wrong": f"{n + 1} ."}

    def all_answers(self, prompt: str) -> dict[str, list[str]]:
        """Every completion the base model was taught for ``prompt``, by style."""
        n = self._answer(prompt)
        return {
            "concise": [f"{n} ."],
            "verbose": [pad.format(n=n) for pad in PADDINGS],
            "wrong": [f"{n + 1} ."],
        }

    # -- judging -------------------------------------------------------------

    def style_of(self, prompt: str, completion: str) -> str:
        """``concise``, ``verbose``, ``wrong`` or ``other`` (anything unrecognisable)."""
        n = self._answer(prompt)
        words = normalize(completion).split()
        numbers = [int(w) for w in words if w.isascii() and w.isdigit()]
        if words == [str(n), "."]:
            return "concise"
        if len(words) == 2 and words[1] == "." and numbers:
            return "wrong"
        if len(words) > 2 and numbers and numbers[-1] == n and len(numbers) == 1:
            return "verbose"
        return "other"

    def rubric(self, prompt: str, completion: str) -> float:
        """The hidden user preference in [0, 1]: right and concise is 1."""
        return RUBRIC[self.style_of(prompt, completion)]

    def approves(self, prompt: str, completion: str) -> bool:
        """A simulated user's thumb: up only for what the rubric rates at least 0.5."""
        return self.rubric(prompt, completion) >= 0.5

    def draw_style(self, rng: random.Random) -> str:
        """A style drawn from the base model's mixture (used to build the pretraining corpus)."""
        return rng.choices(list(STYLE_MIX), weights=list(STYLE_MIX.values()))[0]
