"""Paired preference data for DPO, IPO, SimPO and ORPO, and the choice ``method = "auto"`` makes.

Curation writes the snapshot's pairs as ``pairs.parquet`` (train) and ``pairs_eval.parquet``
(eval): one row per (prompt, chosen, rejected), mined from edits (the user's version over the
original) and from opposite thumbs on the same prompt (``curation.pairs``). Prompts are rendered
as KTO renders them (text as is, chat messages through the base tokenizer's chat template), so
every method sees the same prompt text and the gate judges them alike.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.snapshot import PAIRS_FILES, read_split
from training.config import PAIRED_METHODS, TrainingConfig
from training.data import render
from training.errors import SnapshotError

log = logging.getLogger(__name__)

PAIR_COLUMNS = ("prompt", "prompt_format", "chosen", "rejected")
# Row order in the file is not part of the contract: sort by these, those the file has.
PAIR_ORDER = ("pair_id", "chosen_event_id", "rejected_event_id", "prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PreparedPairs:
    """The pairs to train on and what was left out on the way."""

    dataset: Any  # datasets.Dataset with prompt, chosen, rejected
    n_pairs: int
    dropped_too_long: int


@dataclass(frozen=True)
class Choice:
    """The method a round trains with, and why (``auto`` resolved against the snapshot)."""

    method: str
    configured: str
    reason: str
    train_pairs: int
    train_rows: int


def count_pairs(snapshot: Path, split: str = "train") -> int | None:
    """Pairs in the snapshot's file of ``split`` (from the Parquet footer), None when it has none."""
    import pyarrow.parquet as pq

    path = snapshot / PAIRS_FILES[split]
    if not path.is_file():
        return None
    return int(pq.ParquetFile(path).metadata.num_rows)


def choose(training: TrainingConfig, snapshot: Path, manifest: dict[str, Any]) -> Choice:
    """Resolve ``training.method``; a paired method needs the snapshot's pairs.

    The rule of ``auto``: DPO when the train split has at least ``auto_min_pairs`` pairs and they
    are at least ``auto_min_pair_share`` of the train rows; KTO otherwise (it uses every thumb,
    paired or not, and is the safer choice on few pairs).
    """
    pairs = count_pairs(snapshot)
    counts = (manifest.get("class_counts") or {}).get("train") or {}
    rows = int(counts.get("desirable", 0)) + int(counts.get("undesirable", 0))
    n = pairs or 0
    method = training.method
    if method == "auto":
        need = max(training.auto_min_pairs, training.auto_min_pair_share * rows)
        if n >= need:
            why = (
                f"auto: {n} train pairs >= {training.auto_min_pairs} and >= "
                f"{training.auto_min_pair_share:g} x {rows} train rows: dpo"
            )
            return Choice("dpo", "auto", why, n, rows)
        why = (
            f"auto: {n} train pairs, below max(auto_min_pairs {training.auto_min_pairs}, "
            f"auto_min_pair_share {training.auto_min_pair_share:g} x {rows} train rows) = {need:g}: kto"
        )
        return Choice("kto", "auto", why, n, rows)
    if method in PAIRED_METHODS:
        if pairs is None:
            raise SnapshotError(
                f"training.method is {method} but snapshot {snapshot.name} has no {PAIRS_FILES['train']}; "
                f"{method} trains on (prompt, chosen, rejected) pairs",
                hint="rebuild the snapshot with the current `flywheel curate` (it mines pairs from edits and "
                "opposite thumbs), or set training.method=kto (or auto)",
            )
        if pairs == 0:
            raise SnapshotError(
                f"training.method is {method} but snapshot {snapshot.name} has no train pairs "
                "(no edits and no opposite thumbs on one prompt in its window)",
                hint="set training.method=kto or auto, or see the manifest's `pairs` block for what was mined",
            )
    return Choice(method, method, "configured", n, rows)


def read_pairs(snapshot: Path, split: str = "train") -> list[dict[str, Any]]:
    """The snapshot's pairs of one split, with the columns checked, in a stable order."""
    name = PAIRS_FILES[split].removesuffix(".parquet")
    table = read_split(snapshot, name, required=PAIR_COLUMNS, order=PAIR_ORDER)
    rows: list[dict[str, Any]] = table.select(list(PAIR_COLUMNS)).to_pylist()
    return rows


def prepare_pairs(pairs: list[dict[str, Any]], tokenizer: Any, config: TrainingConfig) -> PreparedPairs:
    """Render the prompts, leave out pairs over the length limits, shuffle by the seed."""
    from datasets import Dataset

    prompts = [render(tokenizer, p["prompt"], p["prompt_format"]) for p in pairs]

    def lengths(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []

    n_prompt = lengths(prompts)
    n_chosen = lengths([p["chosen"] for p in pairs])
    n_rejected = lengths([p["rejected"] for p in pairs])
    kept = []
    too_long = 0
    for i, pair in enumerate(pairs):
        longest = max(n_chosen[i], n_rejected[i])
        if n_prompt[i] > config.max_prompt_length or longest > config.max_completion_length:
            too_long += 1
            continue
        kept.append({"prompt": prompts[i], "chosen": pair["chosen"], "rejected": pair["rejected"]})
    if too_long:
        log.warning("left out %d pair(s) longer than max_prompt/completion_length", too_long)
    if not kept:
        raise SnapshotError(
            f"none of the {len(pairs)} train pairs fits max_prompt_length / max_completion_length",
            hint="raise training.max_prompt_length or training.max_completion_length, or use method=kto",
        )
    random.Random(config.seed).shuffle(kept)
    return PreparedPairs(dataset=Dataset.from_list(kept), n_pairs=len(kept), dropped_too_long=too_long)
