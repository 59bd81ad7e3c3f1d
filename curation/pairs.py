"""Preference pairs for the paired training methods (DPO, IPO, SimPO, ORPO), mined from the snapshot.

A step after the split files are written: ``sql/15_pairs.sql`` reads them back (view ``out``, text
already redacted) and pairs an edit's version with its original, and an up-thumbed answer with a
down-thumbed one to the same prompt from the same model version within ``pairs_window_hours``,
capped per prompt and per user, never across the eval split. The pairs go to ``pairs.parquet``
(train) and ``pairs_eval.parquet`` (eval); the manifest's ``pairs`` block and ``counts`` say how
many of each kind were found and why the others were left out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb

from core.files import sha256_file
from core.snapshot import PAIRS_FILES
from curation.config import CurationConfig
from curation.pipeline import load_sql, sql_literal, used_params

SQL = "15_pairs"
FILES = PAIRS_FILES  # split -> file name inside the snapshot (core.snapshot owns the layout)
# The columns of a pairs file, in order (docs/contracts.md).
COLUMNS = (
    "pair_id",
    "source",
    "prompt",
    "prompt_format",
    "messages",
    "chosen",
    "rejected",
    "model_version",
    "user_id",
    "chosen_event_id",
    "rejected_event_id",
    "chosen_trace_id",
    "rejected_trace_id",
    "chosen_time",
    "rejected_time",
)
SOURCES = ("edit", "thumbs")
# A chat prompt's messages as structs, parsed from its (redacted) JSON text as 13_fetch.sql does.
MESSAGES = (
    "CASE WHEN prompt_format = 'messages' AND json_valid(prompt) AND json_type(prompt) = 'ARRAY' THEN "
    """from_json(prompt, '[{"role": "VARCHAR", "content": "VARCHAR"}]') END AS messages"""
)


def params(cfg: CurationConfig) -> dict[str, Any]:
    return {
        "seed": cfg.seed,
        "window_hours": float(cfg.pairs_window_hours),
        "pairs_per_prompt": int(cfg.pairs_per_prompt),
        "pairs_per_user": int(cfg.pairs_per_user),
    }


def digest_basis(cfg: CurationConfig) -> dict[str, Any] | None:
    """What the snapshot id must change with: the pairing SQL and its settings (None when off)."""
    if not cfg.pairs:
        return None
    return {
        "sql": hashlib.sha256(load_sql(SQL).encode()).hexdigest()[:16],
        "columns": hashlib.sha256(json.dumps([COLUMNS, MESSAGES]).encode()).hexdigest()[:16],
        **params(cfg),
    }


def write_pairs(
    con: duckdb.DuckDBPyConnection, folder: Path, cfg: CurationConfig
) -> tuple[dict[str, Any], dict[str, str]]:
    """Mine the pairs from view ``out`` and write both files into ``folder``.

    Returns the manifest's ``pairs`` block and the files' sha256. With ``curation.pairs`` off,
    nothing is written and the block says so.
    """
    if not cfg.pairs:
        return {"enabled": False}, {}
    sql = load_sql(SQL)
    bound = params(cfg)
    con.execute("CREATE OR REPLACE TEMP TABLE pair_candidates AS\n" + sql, used_params(sql, bound))
    hashes = {}
    for split, name in FILES.items():
        path = folder / name
        con.execute(
            f"COPY (SELECT {', '.join(MESSAGES if c == 'messages' else c for c in COLUMNS)}"
            " FROM pair_candidates WHERE reason = 'ok' AND split = ?"
            f" ORDER BY pair_id) TO {sql_literal(path)} (FORMAT parquet, COMPRESSION "
            f"{sql_literal(cfg.snapshot_compression)})",
            [split],
        )
        hashes[name] = sha256_file(path)
    found = {
        (str(split), str(source), str(reason)): int(n)
        for split, source, reason, n in con.execute(
            "SELECT split, source, reason, count(*) FROM pair_candidates GROUP BY ALL"
        ).fetchall()
    }
    con.execute("DROP TABLE pair_candidates")

    def total(**match: str) -> int:
        keys = ("split", "source", "reason")
        return sum(n for k, n in found.items() if all(k[keys.index(f)] == v for f, v in match.items()))

    block: dict[str, Any] = {
        "enabled": True,
        "files": dict(FILES),
        "settings": {
            "window_hours": bound["window_hours"],
            "per_prompt": bound["pairs_per_prompt"],
            "per_user": bound["pairs_per_user"],
        },
        "train": total(split="train", reason="ok"),
        "eval": total(split="eval", reason="ok"),
        "by_source": {
            split: {source: total(split=split, source=source, reason="ok") for source in SOURCES}
            for split in FILES
        },
        "candidates": sum(found.values()),
        "capped_per_prompt": total(reason="cap_prompt"),
        "capped_per_user": total(reason="cap_user"),
        "across_split": total(reason="across_split"),
    }
    return block, hashes


def counts(block: dict[str, Any]) -> dict[str, int]:
    """The manifest ``counts`` entries of the pairs step (zeros when it was off)."""
    if not block.get("enabled"):
        return {"pairs_train": 0, "pairs_eval": 0}
    return {
        "pair_candidates": block["candidates"],
        "pairs_capped_per_prompt": block["capped_per_prompt"],
        "pairs_capped_per_user": block["capped_per_user"],
        "pairs_across_split": block["across_split"],
        "pairs_from_edits": sum(block["by_source"][s]["edit"] for s in FILES),
        "pairs_from_thumbs": sum(block["by_source"][s]["thumbs"] for s in FILES),
        "pairs_train": block["train"],
        "pairs_eval": block["eval"],
    }
