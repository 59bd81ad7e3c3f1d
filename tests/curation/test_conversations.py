"""Chat prompts in the snapshot: `messages` (a list of {role, content} structs) beside the `prompt`
text, in every file, readable by `datasets` and seen by TRL as conversational data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.registry import Registry
from core.snapshot import MANIFEST
from tests.curation.conftest import make_config
from tests.curation.lakes import tiny_world_day

FILES = ("train.parquet", "eval.parquet", "pairs.parquet", "pairs_eval.parquet")


@pytest.fixture(scope="module")
def chat_snapshot(tmp_path_factory: pytest.TempPathFactory, world: Any, tiny_world: Path) -> Path:
    """A day of the tiny world (a fifth of it chat prompts, edits and opposite thumbs) curated."""
    from curation.run import run

    root = tmp_path_factory.mktemp("chat")
    tiny_world_day(world, root / "lake", traces=400)
    Registry(root / "registry").register(tiny_world, champion=True, version="tiny-base")
    return Path(run(make_config(root, **{"curation.eval_fraction": 0.5})))


def test_each_file_has_chat_prompts_as_structs_and_text_prompts_as_strings(chat_snapshot: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    for name in FILES:
        table = pq.read_table(chat_snapshot / name)
        assert table.schema.field("messages").type == pa.list_(message), name
        assert table.schema.field("prompt").type == pa.string(), name
        rows = table.to_pylist()
        chat = [r for r in rows if r["prompt_format"] == "messages"]
        text = [r for r in rows if r["prompt_format"] == "text"]
        assert chat and text, name  # the day has both in every file
        assert all(r["messages"] == json.loads(r["prompt"]) for r in chat), name
        assert all(r["messages"] is None for r in text), name
    manifest = json.loads((chat_snapshot / MANIFEST).read_text())
    assert manifest["counts"]["pairs_from_edits"] > 0 and manifest["counts"]["pairs_from_thumbs"] > 0


def test_datasets_loads_each_file_and_trl_sees_its_chat_rows_as_conversational(
    chat_snapshot: Path, tiny_world: Path
) -> None:
    from datasets import List, Value, load_dataset
    from transformers import AutoTokenizer
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    from training.data import conversational, render

    tokenizer = AutoTokenizer.from_pretrained(tiny_world)
    for name in FILES:
        ds = load_dataset("parquet", data_files=str(chat_snapshot / name), split="train")
        assert ds.features["messages"] == List({"role": Value("string"), "content": Value("string")}), name
        n_chat = sum(f == "messages" for f in ds["prompt_format"])
        chat = conversational(ds)
        assert len(chat) == n_chat > 0, name
        answers = ("chosen", "rejected") if name.startswith("pairs") else ("completion",)
        assert set(chat.column_names) >= {"prompt", *answers}, name
        assert all(is_conversational(row) for row in chat), name
        # Every key TRL may look at is conversational, whichever it picks.
        assert all(isinstance(chat[0][k], list) for k in ("prompt", *answers)), name
        # TRL renders the prompt with the chat template exactly as training does from the JSON text.
        original = ds.filter(lambda r: r["messages"] is not None)
        for row, source in zip(chat.select(range(5)), original.select(range(5)), strict=True):
            rendered = maybe_apply_chat_template(dict(row), tokenizer)
            assert rendered["prompt"] == render(tokenizer, source["prompt"], "messages"), name
        text = ds.filter(lambda r: r["messages"] is None)
        assert not any(is_conversational({"prompt": r["prompt"]}) for r in text), name


def test_a_snapshot_file_without_messages_is_a_clear_error(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import load_dataset

    from training.data import conversational
    from training.errors import SnapshotError

    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"prompt": ["p"], "prompt_format": ["text"], "completion": ["c"]}), path)
    with pytest.raises(SnapshotError, match="no `messages` column") as err:
        conversational(load_dataset("parquet", data_files=str(path), split="train"))
    assert "flywheel curate" in (err.value.hint or "")
