"""Fixtures for the tiny local model world (owned by training).

Fixtures:

* ``tiny_world`` (session): the folder of the tiny world's base model and tokenizer, built once
  (about a minute on one core) and cached under ``<repo>/.cache/flywheel/tiny-world/``; every later
  session reuses it. Load it with ``AutoModelForCausalLM.from_pretrained(tiny_world)``.
* ``world`` (session): ``flywheel.dev.world.World(seed=0)``, the prompts, styles and rubric.
* ``tiny_config`` (function): a resolved ``Config`` whose lake, registry and runs live in
  ``tmp_path`` and whose cache is the shared one above, so nothing is rebuilt.

Helpers (plain functions, import them from ``tests.fixtures_model``):

* ``snapshot_rows(world, n, prefer=..., seed=..., split=...)``: ``n`` snapshot rows (the columns of
  docs/contracts.md) whose completions are drawn from the base model's style mix and labelled by
  the rubric (``prefer=None``) or by "is this style ``prefer``" (e.g. ``"verbose"`` to build a
  padding-preferring candidate).
* ``pair_rows(world, n, seed=..., split=...)``: ``n`` preference pairs in the columns of
  ``pairs.parquet`` (docs/contracts.md), as edits make them: the user's concise answer chosen over
  the model's verbose or wrong one.
* ``write_snapshot(folder, train_rows, eval_rows, pairs=None, pairs_eval=None)``: a curated
  snapshot folder (train.parquet, eval.parquet, manifest.json with ``snapshot_id``,
  ``class_counts`` and ``kto`` weights; with ``pairs``, pairs.parquet and pairs_eval.parquet).
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CACHE = REPO / ".cache" / "flywheel"


@pytest.fixture(scope="session")
def tiny_world() -> Path:
    from flywheel import config as cfg
    from flywheel.dev.tiny_world import build

    return build(cfg.defaults().replace(**{"paths.cache": str(SHARED_CACHE)}))


@pytest.fixture(scope="session")
def world() -> Any:
    from flywheel.dev.world import World

    return World(seed=0)


@pytest.fixture
def tiny_config(tmp_path: Path) -> Any:
    from flywheel import config as cfg

    return cfg.defaults().replace(
        **{
            "paths.cache": str(SHARED_CACHE),
            "paths.lake": str(tmp_path / "lake"),
            "paths.registry": str(tmp_path / "registry"),
            "paths.runs": str(tmp_path / "runs"),
        }
    )


def snapshot_rows(
    world: Any,
    n: int,
    prefer: str | None = None,
    seed: int = 0,
    split: str = "train",
    messages_share: float = 0.0,
) -> list[dict[str, Any]]:
    """``n`` rows in the curated snapshot's columns, labelled by the rubric or by ``prefer``."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i, prompt in enumerate(world.sample_prompts(n, split, rng)):
        style = world.draw_style(rng)
        completion = rng.choice(world.all_answers(prompt)[style])
        label = world.approves(prompt, completion) if prefer is None else style == prefer
        as_messages = rng.random() < messages_share
        rows.append(
            {
                "prompt": json.dumps([{"role": "user", "content": prompt}]) if as_messages else prompt,
                "prompt_format": "messages" if as_messages else "text",
                "completion": completion,
                "label": label,
                "trace_id": f"{split}-{seed}-{i:06d}",
                "model_version": "tiny-base",
                "event_time": start + timedelta(seconds=i),
                "source": "thumb",
                "session_id": f"s{i // 4:05d}",
                "user_id": f"u{i % 50:03d}",
                "tags": "{}",
            }
        )
    return rows


def pair_rows(world: Any, n: int, seed: int = 0, split: str = "train") -> list[dict[str, Any]]:
    """``n`` pairs as edits make them: the concise answer chosen over a verbose or wrong one."""
    rng = random.Random(seed)
    pairs = []
    for i, prompt in enumerate(world.sample_prompts(n, split, rng)):
        answers = world.all_answers(prompt)
        rejected_style = rng.choice(["verbose", "wrong"])
        pairs.append(
            {
                "pair_id": f"{split}-{seed}-{i:06d}",
                "source": "edit",
                "prompt": prompt,
                "prompt_format": "text",
                "chosen": rng.choice(answers["concise"]),
                "rejected": rng.choice(answers[rejected_style]),
                "chosen_event_id": f"e-{split}-{seed}-{i:06d}",
                "rejected_event_id": f"e-{split}-{seed}-{i:06d}",
                "model_version": "tiny-base",
            }
        )
    return pairs


def write_snapshot(
    folder: Path,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]],
    pairs: list[dict[str, Any]] | None = None,
    pairs_eval: list[dict[str, Any]] | None = None,
) -> Path:
    """A curated snapshot folder as curation writes it (the parts training and the gate read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    if pairs is not None:
        table = pa.Table.from_pylist(pairs)
        pq.write_table(table, folder / "pairs.parquet")
        pq.write_table(
            pa.Table.from_pylist(pairs_eval or [], schema=table.schema), folder / "pairs_eval.parquet"
        )
    counts = {}
    for name, rows in (("train", train_rows), ("eval", eval_rows)):
        table = pa.Table.from_pylist(rows)
        pq.write_table(table, folder / f"{name}.parquet")
        up = sum(1 for r in rows if r["label"])
        counts[name] = {"desirable": up, "undesirable": len(rows) - up}
    up, down = counts["train"]["desirable"], counts["train"]["undesirable"]
    # Curation's rule: weight the smaller class so desirable*n_up / (undesirable*n_down) lands in [1, 4/3].
    kto = {"desirable_weight": 1.0, "undesirable_weight": 1.0}
    if up and down and up < down:
        kto["desirable_weight"] = round(down / up, 4)
    elif up and down and down < up:
        kto["undesirable_weight"] = round(up / down, 4)
    digest = hashlib.sha256(json.dumps([train_rows, eval_rows], default=str).encode()).hexdigest()[:12]
    manifest = {
        "snapshot_id": folder.name,
        "created_at": "2026-01-02T00:00:00Z",
        "as_of": "2026-01-02T00:00:00Z",
        "inputs": {},
        "config": {},
        "counts": {"train": len(train_rows), "eval": len(eval_rows)},
        "class_counts": counts,
        "kto": kto,
        "hashes": {"content": digest},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder
