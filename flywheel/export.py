"""`flywheel export SNAPSHOT --format openai-sft|openai-dpo|hf`: a snapshot for other trainers.

* ``openai-sft``: OpenAI fine-tuning JSONL, ``{"messages": [...]}`` per desirable row (the liked
  and the edited answers), ``train.jsonl`` from the train split and ``validation.jsonl`` from eval.
* ``openai-dpo``: OpenAI preference fine-tuning JSONL, ``{"input": {"messages": [...]},
  "preferred_output": [assistant], "non_preferred_output": [assistant]}`` per pair of
  ``pairs.parquet`` (``validation.jsonl`` from ``pairs_eval.parquet``).
* ``hf``: a ``datasets.DatasetDict`` written with ``save_to_disk``: ``train`` and ``eval`` in TRL's
  unpaired preference format (prompt, completion, label), and ``pairs_train`` / ``pairs_eval``
  (prompt, chosen, rejected) when the snapshot has pairs. A snapshot with chat prompts is exported
  in TRL's conversational format (prompt a list of ``{role, content}``, the answers a one-message
  list), its text prompts as one user message, so ``trl.data_utils.is_conversational`` is true;
  a text-only snapshot stays plain strings.

The snapshot's text is already redacted by curation; nothing is added or inferred here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import TerminalError
from core.files import atomic_output
from core.snapshot import check

FORMATS = ("openai-sft", "openai-dpo", "hf")
ROLES = ("system", "developer", "user", "assistant", "tool")


class ExportError(TerminalError):
    """The snapshot cannot be exported in the asked format."""


def _messages(prompt: str, prompt_format: str) -> list[dict[str, str]]:
    """The prompt as chat messages: a text prompt is one user message."""
    if prompt_format == "text":
        return [{"role": "user", "content": prompt}]
    if prompt_format != "messages":
        raise ExportError(f"prompt_format {prompt_format!r} is neither 'text' nor 'messages'")
    messages = json.loads(prompt)
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]


def _read(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    keys = [c for c in ("pair_id", "event_id", "source", "prompt") if c in table.column_names]
    rows: list[dict[str, Any]] = table.sort_by([(c, "ascending") for c in keys]).to_pylist()
    return rows


def _split_files(snapshot: Path, fmt: str) -> dict[str, Path]:
    if fmt == "openai-dpo":
        files = {"train": snapshot / "pairs.parquet", "validation": snapshot / "pairs_eval.parquet"}
        if not files["train"].is_file():
            raise ExportError(
                f"snapshot {snapshot.name} has no pairs.parquet, which openai-dpo exports",
                hint="rebuild it with the current `flywheel curate` (it mines pairs from edits and "
                "opposite thumbs), or export --format openai-sft",
            )
        return files
    return {"train": snapshot / "train.parquet", "validation": snapshot / "eval.parquet"}


def sft_line(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [
            *_messages(row["prompt"], row["prompt_format"]),
            {"role": "assistant", "content": row["completion"]},
        ]
    }


def dpo_line(pair: dict[str, Any]) -> dict[str, Any]:
    return {
        "input": {"messages": _messages(pair["prompt"], pair["prompt_format"])},
        "preferred_output": [{"role": "assistant", "content": pair["chosen"]}],
        "non_preferred_output": [{"role": "assistant", "content": pair["rejected"]}],
    }


def _write_jsonl(path: Path, lines: list[dict[str, Any]]) -> int:
    with atomic_output(path) as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return len(lines)


def _hf(snapshot: Path, out: Path) -> dict[str, int]:
    from datasets import Dataset, DatasetDict

    splits: dict[str, list[dict[str, Any]]] = {
        "train": _read(snapshot / "train.parquet"),
        "eval": _read(snapshot / "eval.parquet"),
    }
    answers: dict[str, tuple[str, ...]] = {"train": ("completion",), "eval": ("completion",)}
    if (snapshot / "pairs.parquet").is_file():
        splits["pairs_train"] = _read(snapshot / "pairs.parquet")
        splits["pairs_eval"] = _read(snapshot / "pairs_eval.parquet")
        answers |= {"pairs_train": ("chosen", "rejected"), "pairs_eval": ("chosen", "rejected")}
    chat = any(r["prompt_format"] == "messages" for rows in splits.values() for r in rows)
    data = {}
    for name, rows in splits.items():
        records = []
        for r in rows:
            rec: dict[str, Any] = {
                "prompt": _messages(r["prompt"], r["prompt_format"]) if chat else r["prompt"]
            }
            for key in answers[name]:
                rec[key] = [{"role": "assistant", "content": r[key]}] if chat else r[key]
            if "label" in r:
                rec["label"] = bool(r["label"])
            records.append(rec)
        data[name] = Dataset.from_list(records) if records else _empty(chat, answers[name], name)
    DatasetDict(data).save_to_disk(str(out))
    return {name: len(rows) for name, rows in splits.items()}


def _empty(chat: bool, answers: tuple[str, ...], name: str) -> Any:
    from datasets import Dataset, Features, List, Value

    text = Value("string")
    message = {"role": Value("string"), "content": Value("string")}
    kind: Any = List(message) if chat else text
    features = {"prompt": kind, **{k: kind for k in answers}}
    if not name.startswith("pairs"):
        features["label"] = Value("bool")
    return Dataset.from_dict({k: [] for k in features}, features=Features(features))


def export(snapshot: str | Path, fmt: str, out: str | Path) -> tuple[Path, dict[str, int]]:
    """Write ``snapshot`` in format ``fmt`` into folder ``out``; returns it and the lines per file."""
    snap = Path(snapshot)
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    check(snap)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        return target, _hf(snap, target)
    written = {}
    make = dpo_line if fmt == "openai-dpo" else sft_line
    for name, path in _split_files(snap, fmt).items():
        rows = _read(path) if path.is_file() else []
        if fmt == "openai-sft":
            rows = [r for r in rows if r["label"]]  # SFT learns only what users liked or wrote
        written[f"{name}.jsonl"] = _write_jsonl(target / f"{name}.jsonl", [make(r) for r in rows])
    if written.get("train.jsonl", 0) == 0:
        raise ExportError(
            f"snapshot {snap.name} gives no {fmt} training line",
            hint="it has no desirable train rows" if fmt == "openai-sft" else "it has no train pairs",
        )
    return target, written
