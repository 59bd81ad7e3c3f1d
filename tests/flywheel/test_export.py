"""`flywheel export`: OpenAI fine-tuning JSONL (SFT, preference) and a Hugging Face datasets folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flywheel import cli
from flywheel.dev.world import World
from flywheel.export import ExportError, export
from tests.fixtures_model import pair_rows, snapshot_rows, write_snapshot

# OpenAI's fine-tuning file formats (platform.openai.com/docs/guides/supervised-fine-tuning and
# .../direct-preference-optimization), as JSON Schema: every line must be one such object.
MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"type": "string", "minLength": 1},
    },
    "additionalProperties": False,
}
ASSISTANT = {**MESSAGE, "properties": {**MESSAGE["properties"], "role": {"const": "assistant"}}}
SFT = {
    "type": "object",
    "required": ["messages"],
    "additionalProperties": False,
    "properties": {
        "messages": {
            "type": "array",
            "minItems": 2,
            "items": MESSAGE,
            "contains": {**MESSAGE, "properties": {**MESSAGE["properties"], "role": {"const": "user"}}},
        }
    },
}
DPO = {
    "type": "object",
    "required": ["input", "preferred_output", "non_preferred_output"],
    "additionalProperties": False,
    "properties": {
        "input": {
            "type": "object",
            "required": ["messages"],
            "properties": {"messages": {"type": "array", "minItems": 1, "items": MESSAGE}},
        },
        "preferred_output": {"type": "array", "minItems": 1, "maxItems": 1, "items": ASSISTANT},
        "non_preferred_output": {"type": "array", "minItems": 1, "maxItems": 1, "items": ASSISTANT},
    },
}


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    world = World(seed=0)
    rows = snapshot_rows(world, 60, seed=1, messages_share=0.5)
    return write_snapshot(
        tmp_path / "lake" / "curated" / "snap-x",
        rows,
        snapshot_rows(world, 12, seed=2, split="held_out"),
        pairs=pair_rows(world, 20, seed=1),
        pairs_eval=pair_rows(world, 4, seed=2, split="held_out"),
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_openai_sft_lines_validate_and_hold_the_desirable_rows(tmp_path: Path, snap: Path) -> None:
    import pyarrow.parquet as pq

    folder, written = export(snap, "openai-sft", tmp_path / "sft")
    lines = _lines(folder / "train.jsonl")
    for line in lines + _lines(folder / "validation.jsonl"):
        jsonschema.validate(line, SFT)
        assert line["messages"][-1]["role"] == "assistant"
    train = pq.read_table(snap / "train.parquet").to_pylist()
    assert written["train.jsonl"] == len(lines) == sum(r["label"] for r in train)
    # chat prompts become their messages, text prompts one user message
    chat = next(r for r in train if r["label"] and r["prompt_format"] == "messages")
    expected = [*json.loads(chat["prompt"]), {"role": "assistant", "content": chat["completion"]}]
    assert {"messages": expected} in lines


def test_openai_dpo_lines_validate_and_hold_the_pairs(tmp_path: Path, snap: Path) -> None:
    folder, written = export(snap, "openai-dpo", tmp_path / "dpo")
    lines = _lines(folder / "train.jsonl")
    for line in lines + _lines(folder / "validation.jsonl"):
        jsonschema.validate(line, DPO)
    assert (written["train.jsonl"], written["validation.jsonl"]) == (20, 4)
    assert all(line["preferred_output"][0]["content"].endswith(".") for line in lines)


def test_hf_folder_loads_with_datasets_and_trl_sees_conversations(tmp_path: Path, snap: Path) -> None:
    from datasets import load_from_disk
    from trl.data_utils import is_conversational

    folder, written = export(snap, "hf", tmp_path / "hf")
    data = load_from_disk(str(folder))
    assert set(data) == {"train", "eval", "pairs_train", "pairs_eval"}
    assert (len(data["train"]), len(data["pairs_train"])) == (written["train"], written["pairs_train"])
    assert set(data["train"].column_names) == {"prompt", "completion", "label"}
    assert set(data["pairs_train"].column_names) == {"prompt", "chosen", "rejected"}
    assert is_conversational(data["train"][0]) and is_conversational(data["pairs_train"][0])
    # a text-only snapshot stays plain strings
    world = World(seed=0)
    plain = write_snapshot(
        tmp_path / "plain", snapshot_rows(world, 20, seed=3), snapshot_rows(world, 4, seed=4)
    )
    text = load_from_disk(str(export(plain, "hf", tmp_path / "hf-plain")[0]))
    assert set(text) == {"train", "eval"} and not is_conversational(text["train"][0])
    assert isinstance(text["train"][0]["prompt"], str)


def test_cli_export_and_its_errors(tmp_path: Path, snap: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = f"--set=paths.lake={tmp_path / 'lake'}"
    assert cli.main(["export", str(snap), "--format", "openai-dpo", lake]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == tmp_path / "lake" / "exports" / "snap-x" / "openai-dpo" and (out / "train.jsonl").is_file()
    nopairs = write_snapshot(tmp_path / "nopairs", snapshot_rows(World(0), 8, seed=1), [])
    with pytest.raises(ExportError, match=r"no pairs\.parquet"):
        export(nopairs, "openai-dpo", tmp_path / "x")
    assert cli.main(["export", str(tmp_path / "nowhere"), "--format", "hf", lake]) != 0
    assert "not a curated snapshot" in capsys.readouterr().err
