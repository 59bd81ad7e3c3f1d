"""Preference pairs mined from the snapshot's rows: edits, opposite thumbs, window, caps, the split."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from curation.pairs import COLUMNS, counts, write_pairs
from curation.run import run
from tests.curation.conftest import make_config
from tests.curation.lakes import LakeBuilder

AS_OF = "2026-03-31T12:00:00Z"
T0 = dt.datetime(2026, 3, 30, 9, tzinfo=dt.UTC)


def _row(event: str, prompt: str, completion: str, label: bool, **kw: Any) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "prompt_format": "text",
        "completion": completion,
        "label": label,
        "trace_id": kw.get("trace_id", f"t-{event}"),
        "model_version": kw.get("model_version", "v1"),
        "event_time": T0 + dt.timedelta(hours=kw.get("hours", 0)),
        "source": kw.get("source", "thumb"),
        "session_id": "s",
        "user_id": kw.get("user", f"u-{event}"),
        "tags": "{}",
        "event_id": event,
        "split": kw.get("split", "train"),
    }


def _mine(
    tmp_path: Path, rows: list[dict[str, Any]], **overrides: Any
) -> tuple[dict[str, Any], dict[str, list]]:
    cfg = make_config(tmp_path, **{f"curation.{k}": v for k, v in overrides.items()}).curation
    tmp_path.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.register("out", pa.Table.from_pylist(rows))
    block, hashes = write_pairs(con, tmp_path, cfg)
    con.close()
    assert set(hashes) == {"pairs.parquet", "pairs_eval.parquet"}
    files = {s: pq.read_table(tmp_path / f).to_pylist() for s, f in block["files"].items()}
    for split, name in block["files"].items():
        assert tuple(pq.read_schema(tmp_path / name).names) == COLUMNS
        assert block[split] == len(files[split])
    return block, files


def test_edits_and_opposite_thumbs_become_pairs_within_the_window_and_model(tmp_path: Path) -> None:
    rows = [
        # an edit: the user's version over the original, one action
        _row("e1", "p1", "c1 better", True, source="edit", user="ed"),
        _row("e1", "p1", "c1", False, source="edit_original", user="ed"),
        # opposite thumbs on one prompt from one model, an hour apart
        _row("a", "p2", "good", True),
        _row("b", "p2", "bad", False, hours=1),
        # the same, but from two model versions: not a pair
        _row("c", "p3", "good", True, model_version="v1"),
        _row("d", "p3", "bad", False, model_version="v2"),
        # the same, but two days apart (window 24 h): not a pair
        _row("e", "p4", "good", True),
        _row("f", "p4", "bad", False, hours=48),
        # two ups: no pair; one up and one down of the same text: no pair
        _row("g", "p5", "x", True),
        _row("h", "p5", "y", True),
        _row("i", "p6", "same", True),
        _row("j", "p6", "same", False),
    ]
    block, files = _mine(tmp_path, rows)
    got = sorted((p["source"], p["prompt"], p["chosen"], p["rejected"]) for p in files["train"])
    assert got == [("edit", "p1", "c1 better", "c1"), ("thumbs", "p2", "good", "bad")]
    edit = next(p for p in files["train"] if p["source"] == "edit")
    assert (edit["chosen_event_id"], edit["rejected_event_id"], edit["user_id"]) == ("e1", "e1", "ed")
    assert files["eval"] == []
    assert counts(block)["pairs_from_edits"] == 1 and counts(block)["pairs_from_thumbs"] == 1


def test_caps_per_prompt_and_per_user(tmp_path: Path) -> None:
    # three ups and three downs on one prompt: only 2 of each label are crossed (4 candidates),
    # and 2 pairs are kept
    rows = [_row(f"u{i}", "busy", f"good {i}", True) for i in range(3)]
    rows += [_row(f"d{i}", "busy", f"bad {i}", False) for i in range(3)]
    # one user edits five prompts: 3 pairs kept for them
    for i in range(5):
        rows.append(_row(f"x{i}", f"q{i}", f"fixed {i}", True, source="edit", user="heavy"))
        rows.append(_row(f"x{i}", f"q{i}", f"orig {i}", False, source="edit_original", user="heavy"))
    block, files = _mine(tmp_path, rows, pairs_per_prompt=2, pairs_per_user=3)
    busy = [p for p in files["train"] if p["prompt"] == "busy"]
    assert len(busy) == 2 and len({p["pair_id"] for p in busy}) == 2
    assert len([p for p in files["train"] if p["user_id"] == "heavy"]) == 3
    assert (block["capped_per_prompt"], block["capped_per_user"]) == (2, 2)
    # seeded: the same rows give the same pairs
    _, files2 = _mine(tmp_path / "again", rows, pairs_per_prompt=2, pairs_per_user=3)
    assert [p["pair_id"] for p in files2["train"]] == [p["pair_id"] for p in files["train"]]


def test_no_pair_crosses_the_eval_split(tmp_path: Path) -> None:
    rows = [
        _row("a", "p", "good", True, split="eval"),
        _row("b", "p", "bad", False, split="eval"),
        _row("c", "q", "good", True, split="train"),
        _row("d", "q", "bad", False, split="eval"),  # would cross the split
    ]
    block, files = _mine(tmp_path, rows)
    assert [(p["prompt"], p["chosen"]) for p in files["eval"]] == [("p", "good")]
    assert files["train"] == []
    assert block["across_split"] == 1 and counts(block)["pairs_across_split"] == 1


def test_curate_writes_pairs_counts_them_and_paired_training_reads_them(tmp_path: Path) -> None:
    from training.paired import read_pairs

    b = LakeBuilder()
    day = "2026-03-30T"
    for i in range(6):
        b.trace(f"E{i}", day + "08:00:00Z", f"prompt {i}", f"draft {i}", session_id=f"se{i}")
        b.feedback(
            f"fe{i}", f"E{i}", day + "09:00:00Z", None, f"u{i}", kind="edit", edited_completion=f"final {i}"
        )
        b.trace(f"A{i}", day + "08:00:00Z", f"ask {i}", f"right {i}", session_id=f"sa{i}")
        b.trace(f"B{i}", day + "08:05:00Z", f"ask {i}", f"wrong {i}", session_id=f"sb{i}")
        b.feedback(f"fa{i}", f"A{i}", day + "09:00:00Z", "up", f"v{i}")
        b.feedback(f"fb{i}", f"B{i}", day + "10:00:00Z", "down", f"w{i}")
    b.write(tmp_path / "lake")
    config = make_config(tmp_path, **{"curation.eval_fraction": 0.4, "curation.split_by": "prompt"})
    snap = run(config, as_of=AS_OF)

    manifest = json.loads((snap / "manifest.json").read_text())
    block = manifest["pairs"]
    assert block["train"] + block["eval"] == 12 and block["eval"] > 0 and block["train"] > 0
    assert block["across_split"] == 0
    assert manifest["counts"]["pairs_from_edits"] == 6 and manifest["counts"]["pairs_from_thumbs"] == 6
    assert {"pairs.parquet", "pairs_eval.parquet"} <= manifest["hashes"]["files"].keys()
    assert manifest["hashes"]["content"]["pairs"]["pairs_per_prompt"] == 4
    # every pair's prompt has rows on its own side only
    for split, name in (("train", "pairs.parquet"), ("eval", "pairs_eval.parquet")):
        prompts = {r["prompt"] for r in pq.read_table(snap / f"{split}.parquet").to_pylist()}
        assert {p["prompt"] for p in pq.read_table(snap / name).to_pylist()} <= prompts
    pairs = read_pairs(snap)
    assert len(pairs) == block["train"]
    assert all(p["chosen"].split()[0] in ("final", "right") for p in pairs)
    # other pairing settings make another snapshot
    other = run(
        make_config(
            tmp_path,
            **{"curation.eval_fraction": 0.4, "curation.split_by": "prompt", "curation.pairs_per_prompt": 1},
        ),
        as_of=AS_OF,
    )
    assert other != snap
