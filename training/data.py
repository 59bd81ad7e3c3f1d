"""A curated snapshot as a KTO dataset: rendered prompts, completions, labels, in batch-safe order.

TRL's KTOTrainer reads its dataset in order (no shuffling) and estimates the KL term of each batch
by pairing every row's prompt with another row's completion from the same batch. So the order is
ours to choose: shuffled deterministically by the seed, and arranged so that every batch of
``per_device_batch_size`` rows (the last one included) holds both desirable and undesirable rows.
:func:`batches_have_both_labels` checks it; the trainer's final dataset is checked again in
:mod:`training.run` after TRL's own preprocessing.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import kto, prompts
from core.snapshot import read_split
from training.config import TrainingConfig
from training.errors import SnapshotError

log = logging.getLogger(__name__)

REQUIRED = ("prompt", "prompt_format", "completion", "label")


@dataclass(frozen=True)
class Prepared:
    """The dataset to train on and what was left out on the way."""

    dataset: Any  # datasets.Dataset with prompt, completion, label
    dropped_too_long: int
    dropped_for_batching: int
    n_desirable: int
    n_undesirable: int


def read_rows(snapshot: Path, split: str = "train") -> list[dict[str, Any]]:
    """The snapshot's rows of one split, with the columns checked, in the snapshot's row order.

    A snapshot's row order is not part of its contract: rows are ordered by their own keys
    (core.snapshot.ROW_ORDER), so the seeded shuffle (data.kto_order) gives the same batches however
    the file was written. A chat prompt is read from its JSON text (`prompt`), as the gate reads it:
    the `messages` structs keep only role and content, and training and the gate must see the same
    prompt.
    """
    table = read_split(snapshot, split, required=REQUIRED)
    rows: list[dict[str, Any]] = table.select(list(REQUIRED)).to_pylist()
    return rows


def conversational(dataset: Any) -> Any:
    """The chat rows of a snapshot file loaded with ``datasets``, in TRL's conversational format.

    A snapshot file keeps ``prompt`` a string for every row (a chat prompt as its JSON text), since a
    Parquet column cannot be a string in some rows and a list in others, and carries a chat prompt
    as structs in ``messages`` (null for text prompts). TRL's ``is_conversational`` looks at one
    of the row's ``prompt``/``completion``/``chosen``/``rejected``/``messages`` keys, so a row
    with both a string and a list is not reliably either: this view keeps the chat rows only, with
    ``prompt`` the messages and each answer (``completion``, or ``chosen`` and ``rejected``) one
    assistant message, the other columns (``label``) as they are::

        ds = datasets.load_dataset("parquet", data_files="snap/train.parquet", split="train")
        chat = training.data.conversational(ds)   # trl.data_utils.is_conversational(chat[0]) is True
        text = ds.filter(lambda r: r["messages"] is None)  # plain prompt/completion strings
    """
    answers = ("chosen", "rejected") if "chosen" in dataset.column_names else ("completion",)
    if "messages" not in dataset.column_names:
        raise SnapshotError(
            "this snapshot file has no `messages` column (it predates chat prompts as structs)",
            hint="rebuild the snapshot with the current `flywheel curate`",
        )
    chat = dataset.filter(lambda row: row["messages"] is not None)
    converted = {"prompt", *answers, "messages"}

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt": row["messages"]}
        for key in answers:
            out[key] = [{"role": "assistant", "content": row[key]}]
        return out

    return chat.map(convert, remove_columns=[c for c in chat.column_names if c in converted])


def render(tokenizer: Any, prompt: str, prompt_format: str) -> str:
    """The prompt as the model sees it (core.prompts.render, the one renderer of training,
    sampling and the gate); a prompt that cannot be rendered is the snapshot's problem here."""
    try:
        return prompts.render(tokenizer, prompt, prompt_format)
    except prompts.PromptError as exc:
        raise SnapshotError(exc.message, hint=exc.hint) from None


def kto_order(labels: list[bool], batch_size: int, seed: int) -> list[int]:
    """Row indices, shuffled by ``seed``, such that every batch holds both labels.

    Every batch first gets one row of each label; the remaining rows of both labels are pooled,
    shuffled and dealt out, then each batch is shuffled inside. Needs at least as many rows of
    the smaller class as there are batches; a trailing batch of a single row is avoided by the
    caller (:func:`prepare` drops one row of the larger class).
    """
    rng = random.Random(seed)
    up = [i for i, lab in enumerate(labels) if lab]
    down = [i for i, lab in enumerate(labels) if not lab]
    n = len(labels)
    n_batches = math.ceil(n / batch_size)
    if min(len(up), len(down)) < n_batches:
        raise SnapshotError(
            f"{len(up)} desirable and {len(down)} undesirable rows cannot fill {n_batches} batches of "
            f"{batch_size} with both labels in each (KTO estimates its KL term inside each batch)",
            hint="raise training.per_device_batch_size or collect more feedback of the rarer label",
        )
    rng.shuffle(up)
    rng.shuffle(down)
    batches = [[up[j], down[j]] for j in range(n_batches)]
    rest = up[n_batches:] + down[n_batches:]
    rng.shuffle(rest)
    sizes = [min(batch_size, n - j * batch_size) for j in range(n_batches)]
    cursor = 0
    for j, size in enumerate(sizes):
        take = size - 2
        batches[j].extend(rest[cursor : cursor + take])
        cursor += take
    order: list[int] = []
    for batch in batches:
        rng.shuffle(batch)
        order.extend(batch)
    return order


def batches_have_both_labels(labels: list[bool], batch_size: int) -> bool:
    chunks = [labels[i : i + batch_size] for i in range(0, len(labels), batch_size)]
    return all(any(chunk) and not all(chunk) for chunk in chunks)


def fit_batches(rows: list[dict[str, Any]], batch_size: int, seed: int) -> tuple[list[dict[str, Any]], int]:
    """Leave out rows of the larger class until every batch can hold both labels; (rows, dropped).

    Two cases: a trailing batch of a single row, and a rarer class with fewer rows than there are
    batches (a model that is already good gets few thumbs-down). The larger class is the one that
    gives rows up; which rows is decided by ``seed``.
    """
    labels = [r["label"] for r in rows]
    n_up = sum(labels)
    n_minor = min(n_up, len(rows) - n_up)
    major = n_up * 2 >= len(rows)
    n = len(rows)
    if n_minor == 0:
        return rows, 0
    while n > 2 and (n % batch_size == 1 or math.ceil(n / batch_size) > n_minor):
        n -= 1
    drop = len(rows) - n
    if drop == 0:
        return rows, 0
    majors = [i for i, lab in enumerate(labels) if lab == major]
    gone = set(random.Random(seed).sample(majors, drop))
    log.warning(
        "left out %d %s row(s) so that each batch of %d holds both labels (only %d %s rows)",
        drop,
        "desirable" if major else "undesirable",
        batch_size,
        n_minor,
        "undesirable" if major else "desirable",
    )
    return [r for i, r in enumerate(rows) if i not in gone], drop


def balanced_weights(n_desirable: int, n_undesirable: int) -> dict[str, float]:
    """KTO class weights that put desirable*n_up / (undesirable*n_down) in [1, 4/3] (KTO paper, eq. 8),
    by the rule curation used for the manifest's weights (core.kto.balance)."""
    return kto.balance(n_desirable, n_undesirable).weights()


def prepare(rows: list[dict[str, Any]], tokenizer: Any, config: TrainingConfig) -> Prepared:
    """Render, filter by length, and order the rows for KTO; ``config`` is the training section."""
    from datasets import Dataset

    prompts = [render(tokenizer, row["prompt"], row["prompt_format"]) for row in rows]
    # One batched call per column: the fast tokenizer encodes a list in parallel in Rust.
    n_prompt = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]] if rows else []
    completions = [row["completion"] for row in rows]
    n_completion = (
        [len(ids) for ids in tokenizer(completions, add_special_tokens=False)["input_ids"]] if rows else []
    )
    kept: list[dict[str, Any]] = []
    too_long = 0
    for i, row in enumerate(rows):
        if n_prompt[i] > config.max_prompt_length or n_completion[i] > config.max_completion_length:
            too_long += 1
            continue
        kept.append({"prompt": prompts[i], "completion": completions[i], "label": bool(row["label"])})
    if too_long:
        log.warning("left out %d row(s) longer than max_prompt/completion_length", too_long)
    labels = [r["label"] for r in kept]
    if not any(labels) or all(labels):
        raise SnapshotError(
            f"the train split has {sum(labels)} desirable and {len(labels) - sum(labels)} undesirable "
            "usable rows; KTO needs both",
            hint="collect more feedback, or check curation's class_counts in manifest.json",
        )
    kept, dropped = fit_batches(kept, config.per_device_batch_size, config.seed)
    labels = [r["label"] for r in kept]
    order = kto_order(labels, config.per_device_batch_size, config.seed)
    ordered = [kept[i] for i in order]
    if not batches_have_both_labels([r["label"] for r in ordered], config.per_device_batch_size):
        raise RuntimeError("kto_order produced a single-label batch; this is a bug, please report it")
    return Prepared(
        dataset=Dataset.from_list(ordered),
        dropped_too_long=too_long,
        dropped_for_batching=dropped,
        n_desirable=sum(labels),
        n_undesirable=len(labels) - sum(labels),
    )
