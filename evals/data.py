"""The held-out traces: read a snapshot's eval.parquet, check it, and render prompts as model text."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import prompts
from core.snapshot import SnapshotError, read_split
from evals.errors import EvalError

REQUIRED = ("prompt", "completion", "label", "trace_id")


def load_eval(snapshot: Path, max_rows: int, seed: int) -> pd.DataFrame:
    """The snapshot's eval split, checked, with the optional columns filled in."""
    path = Path(snapshot) / "eval.parquet"
    try:
        table = read_split(snapshot, "eval", required=REQUIRED)
    except SnapshotError as exc:  # the gate's own error: `flywheel eval` exits with its code
        raise EvalError(exc.message, hint=exc.hint) from None
    frame = table.to_pandas()
    problems = []
    for col in ("prompt", "completion", "label"):
        if frame[col].isna().any():
            problems.append(f"{int(frame[col].isna().sum())} null {col}(s)")
    if problems:
        raise EvalError(
            f"{path} has " + ", ".join(problems), hint="rebuild the snapshot with `flywheel curate`"
        )
    labels = frame["label"].astype(bool)
    if labels.all() or not labels.any():
        raise EvalError(
            f"{path} has only {'thumbs-up' if labels.all() else 'thumbs-down'} rows ({len(frame)})",
            hint="the gate needs both labels in the held-out split; collect more feedback or widen the snapshot",
        )
    for col, default in (("prompt_format", "text"), ("session_id", None), ("user_id", None), ("tags", "{}")):
        if col not in frame.columns:
            frame[col] = default
    frame["label"] = labels
    # read_split ordered the rows by their own keys (a snapshot's row order is not part of its
    # contract), so the sample and every figure drawn from it are the same however it was written.
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    return frame.reset_index(drop=True)


def clusters(frame: pd.DataFrame, by: str) -> np.ndarray:
    """Cluster id per row: the chosen column, falling back to user, then to the trace itself."""
    order = [by, *[c for c in ("session_id", "user_id", "trace_id") if c != by]]
    out = pd.Series([None] * len(frame), dtype=object)
    for col in order:
        if col in frame.columns:
            values = frame[col].astype(object).where(frame[col].notna() & (frame[col] != ""), None)
            out = out.where(out.notna(), col + ":" + values.astype(str).where(values.notna(), None))
    return out.fillna("row").to_numpy(dtype=str)


def tags(frame: pd.DataFrame) -> list[dict[str, str]]:
    result = []
    for raw in frame["tags"]:
        try:
            value = json.loads(raw) if isinstance(raw, str) and raw else {}
        except json.JSONDecodeError:
            value = {}
        result.append({str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {})
    return result


def tag_slices(row_tags: list[dict[str, str]], keys: Sequence[str]) -> Iterator[tuple[str, str, np.ndarray]]:
    """(key, value, row mask) for every value each tag key takes, in key order then sorted values;
    rows without the key are in no slice of it."""
    for key in keys:
        values = np.array([t.get(key, "") for t in row_tags], dtype=object)
        for value in sorted({v for v in values if v}):
            yield key, value, values == value


def render_prompt(prompt: str, prompt_format: str, tokenizer: Any) -> str:
    """The text the model sees (core.prompts.render, the renderer training used): a prompt this
    model cannot render is a snapshot the gate cannot replay."""
    try:
        return prompts.render(tokenizer, prompt, prompt_format)
    except prompts.PromptError as exc:
        raise EvalError(exc.message, hint=exc.hint) from None
