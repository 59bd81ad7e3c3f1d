"""Snapshot loading, chat rendering and the batch-safe KTO order."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel import config as cfg
from tests.fixtures_model import snapshot_rows, write_snapshot
from training.data import (
    balanced_weights,
    batches_have_both_labels,
    fit_batches,
    kto_order,
    prepare,
    read_rows,
)
from training.errors import SnapshotError

TRAINING = cfg.defaults().training


@settings(max_examples=200, deadline=None)
@given(
    n_up=st.integers(1, 300),
    n_down=st.integers(1, 300),
    batch=st.integers(4, 32),
    seed=st.integers(0, 5),
)
def test_every_batch_holds_both_labels(n_up: int, n_down: int, batch: int, seed: int) -> None:
    rows = [{"label": True, "i": i} for i in range(n_up)] + [{"label": False, "i": i} for i in range(n_down)]
    kept, dropped = fit_batches(rows, batch, seed)
    assert len(kept) + dropped == len(rows)
    labels = [r["label"] for r in kept]
    # Only the larger class gives rows up (with a tie, either may give one).
    if n_up != n_down:
        assert min(sum(labels), len(labels) - sum(labels)) == min(n_up, n_down)
    order = kto_order(labels, batch, seed)
    assert sorted(order) == list(range(len(kept)))
    assert batches_have_both_labels([labels[i] for i in order], batch)
    # Deterministic by seed, different across seeds.
    assert kto_order(labels, batch, seed) == order


def test_order_is_shuffled_not_sorted() -> None:
    labels = [True] * 50 + [False] * 50
    order = kto_order(labels, 8, seed=0)
    assert order != kto_order(labels, 8, seed=1)
    assert sum(a + 1 == b for a, b in itertools.pairwise(order)) < 20


def test_too_few_rare_rows_without_fitting_is_a_clear_error() -> None:
    with pytest.raises(SnapshotError, match="per_device_batch_size"):
        kto_order([True] * 60 + [False] * 2, 8, seed=0)


def test_balanced_weights_land_in_the_kto_range() -> None:
    for up, down in [(10, 90), (90, 10), (50, 50), (33, 67)]:
        w = balanced_weights(up, down)
        ratio = w["desirable_weight"] * up / (w["undesirable_weight"] * down)
        assert 1.0 <= ratio <= 4 / 3 + 1e-3


def test_prepare_renders_chat_prompts_and_keeps_batches_mixed(tmp_path, tiny_world, world) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_world)
    rows = snapshot_rows(world, 203, seed=3, messages_share=0.5)
    snap = write_snapshot(tmp_path / "snap", rows, rows[:10])
    prepared = prepare(read_rows(snap), tokenizer, TRAINING)
    data = prepared.dataset
    assert set(data.column_names) == {"prompt", "completion", "label"}
    assert prepared.n_desirable + prepared.n_undesirable + prepared.dropped_for_batching == 203
    chat = [p for p in data["prompt"] if p.startswith("<user>")]
    assert chat and all(p.rstrip().endswith("<assistant>") for p in chat)
    assert batches_have_both_labels(data["label"], TRAINING.per_device_batch_size)


def test_length_limits_and_single_label_snapshots_are_reported(tmp_path, tiny_world, world) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_world)
    rows = snapshot_rows(world, 64, seed=4)
    short = dataclasses.replace(TRAINING, max_completion_length=3)
    prepared = prepare(rows, tokenizer, short) if any(r["label"] for r in rows) else None
    assert prepared is not None
    verbose = sum(1 for r in rows if len(r["completion"].split()) > 3)
    assert prepared.dropped_too_long == verbose
    with pytest.raises(SnapshotError, match="KTO needs both"):
        prepare([dict(r, label=True) for r in rows], tokenizer, TRAINING)


def test_snapshot_without_columns_or_chat_template_is_refused(tmp_path, tiny_world, world) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    snap = tmp_path / "bad"
    snap.mkdir()
    pq.write_table(pa.table({"prompt": ["x"], "completion": ["y"]}), snap / "train.parquet")
    with pytest.raises(SnapshotError, match="prompt_format, label"):
        read_rows(snap)
    tokenizer = AutoTokenizer.from_pretrained(tiny_world)
    tokenizer.chat_template = None
    rows = [
        {"prompt": json.dumps([{"role": "user", "content": "add one to 3 ."}]), "prompt_format": "messages"}
        | {"completion": "4 .", "label": True}
    ]
    with pytest.raises(SnapshotError, match="chat template"):
        prepare(rows, tokenizer, TRAINING)
