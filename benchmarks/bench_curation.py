"""Curation throughput at production shapes: synthetic raw lakes of N traces of which a share got
feedback (``BENCH_CURATION_SHAPES``, comma-separated ``traces:share``, default
``1000000:1,1000000:0.05,1000000:0.01``; ``10000000:0.01`` takes minutes per run).

Engines (``BENCH_CURATION_ENGINES``, default ``duckdb,duckdb-core,duckdb-component,polars,match-floor``),
each in a fresh process on the same lake, back to back, ``BENCH_CURATION_REPS`` times (ratios are
paired within a rep, and every line carries the load average, as the machine is shared):
the whole DuckDB curation (``curation.run.run``: chain, export, digest, pairs, checks, summary; the
GX Data Docs that follow it in a process of their own are waited for and timed apart);
the chain and the export alone (``duckdb-core``) and the same with ``split_by = component``; the
core semantics written plainly with Polars (the baseline a user would pick; four PII regexes); and
the floor (``match-floor``): the trace ids scanned once and matched to the feedback's, then the
matched traces' text read once and written once, with nothing decided. It grows with the feedback,
as the curation should; a floor that copies every trace's text (``copy-floor``, ``keys-floor``,
also selectable, with ``pandas`` and ``duckdb-no-pii``) costs more than the whole curation at 1-5 %.
Each run prints the gate's evidence: the eval rows and their thumbs up and down. Lakes are
generated once with numpy/pyarrow and cached under ``.cache/bench_curation/``.

    python -m benchmarks curation
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.curation_floor import copy_floor, keys_floor, match_floor

CACHE = Path(".cache/bench_curation")
AS_OF = "2026-03-29T00:00:00Z"
START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAYS = 28  # every event is inside the 30-day window: nothing is pruned away, the worst case
WORDS = [
    *[
        "the",
        "model",
        "should",
        "explain",
        "how",
        "to",
        "configure",
        "a",
        "service",
        "with",
        "retries",
        "timeouts",
        "and",
        "backoff",
        "for",
        "a",
        "busy",
    ],
    *[
        "queue",
        "while",
        "keeping",
        "latency",
        "low",
        "and",
        "costs",
        "predictable",
        "across",
        "regions",
        "users",
        "tenants",
        "and",
        "releases",
    ],
]


def _letters(values: np.ndarray, width: int = 6) -> pa.Array:
    """Integers as fixed-width lowercase words: unique suffixes without digits (digits invite PII scans)."""
    digits = (values[:, None] // (26 ** np.arange(width - 1, -1, -1))) % 26
    raw = (digits + ord("a")).astype(np.uint8)
    return pa.array(raw.view(f"S{width}").ravel()).cast(pa.string())


def _pool(rng: np.random.Generator, n: int, chars: int, digit_share: float) -> pa.Array:
    out = []
    for i in range(n):
        words = rng.choice(WORDS, size=chars // 5)
        text = " ".join(words)[:chars]
        if rng.random() < digit_share:  # some texts carry numbers, and a few real PII
            text = text[: chars - 40] + (f" call +1 415 555 {i:04d}" if i % 7 == 0 else f" order {i} in 2026")
        out.append(text)
    return pa.array(out, pa.string())


def _labels(up: np.ndarray, edit: np.ndarray) -> np.ndarray:
    labels = np.where(up, "up", "down").astype(object)
    labels[edit] = None  # an edit carries no thumb
    return labels


def _join(*parts: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(*parts, " ~")


def generate(lake: Path, n: int, seed: int = 0, traces: int | None = None) -> None:
    """``n`` feedback events (2 % retried copies, 3 % vote flips, 5 % edits, 1 % orphans, 30 % up) on
    ``traces`` traces (default ~0.9 n: one per event) of ~450 bytes of text, one folder per day, one
    file per stream and day. With ``traces`` well above ``n`` only a share of the answers get feedback,
    as in a product (1-5 %); prompts repeat across sessions either way (~4.5 traces per prompt)."""
    rng = np.random.default_rng(seed)
    prompts, completions = _pool(rng, 2000, 140, 0.1), _pool(rng, 5000, 290, 0.1)
    per_day = n // DAYS
    m = int(per_day * 0.9) if traces is None else traces // DAYS
    n_prompts = max(n // 5 if traces is None else traces * 2 // 9, 1)
    n_users = max(n // 50, 1)
    offset = 0
    for day in range(DAYS):
        date = START + dt.timedelta(days=day)
        t_idx = np.arange(m) + day * max(per_day, m)
        t_time = np.datetime64(date.replace(tzinfo=None)) + rng.integers(0, 19 * 3600 * 10**6, m).astype(
            "m8[us]"
        )
        pid = rng.integers(0, n_prompts, m)
        trace_cols = {
            "trace_id": _letters(t_idx, 7),
            "event_time": pa.array(t_time, pa.timestamp("us", tz="UTC")),
            "model_version": pa.array(np.array(["v1", "v2", "v3", "v4"])[rng.integers(0, 4, m)]),
            "prompt": _join(prompts.take(pa.array(pid % 2000)), _letters(pid)),
            "prompt_format": pa.array(["text"] * m),
            "completion": _join(completions.take(pa.array(rng.integers(0, 5000, m))), _letters(t_idx, 7)),
            "session_id": _letters(t_idx // 3, 7),
            "user_id": _letters(rng.integers(0, n_users, m)),
            "tags": pa.array(["{}"] * m),
        }
        k = per_day - int(per_day * 0.05)  # base events; flips and copies fill the rest
        pick = rng.integers(0, m, k)
        f_trace = trace_cols["trace_id"].take(pa.array(pick))
        orphan = rng.random(k) < 0.01
        f_trace = pc.if_else(pa.array(orphan), _join(pa.array(["orphan"] * k), f_trace), f_trace)
        f_time = t_time[pick] + rng.integers(60, 3 * 3600, k).astype("m8[s]").astype("m8[us]")
        edit = rng.random(k) < 0.05
        up = rng.random(k) < 0.3
        base = {
            "event_id": _letters(np.arange(k) + offset, 8),
            "trace_id": f_trace,
            "event_time": f_time,
            "kind": np.where(edit, "edit", "thumb"),
            "label": _labels(up, edit),
            "edited_completion": pc.if_else(
                pa.array(edit), completions.take(pa.array(rng.integers(0, 5000, k))), None
            ),
            "user_id": _letters(rng.integers(0, n_users, k)),
        }
        flips = rng.integers(0, k, int(per_day * 0.03))  # the same user changes their vote an hour later
        copies = rng.integers(0, k, per_day - k - len(flips))  # retried sends reuse the event_id
        fb = pa.table(
            {c: pa.array(v) if not isinstance(v, pa.Array) else v for c, v in base.items()}
            | {"event_time": pa.array(f_time, pa.timestamp("us", tz="UTC"))}
        )
        flipped = fb.take(pa.array(flips))
        flipped = flipped.set_column(0, "event_id", _letters(np.arange(len(flips)) + offset + k, 8))
        flipped = flipped.set_column(
            2, "event_time", pc.add(flipped["event_time"], pa.scalar(3600 * 10**6, pa.duration("us")))
        )
        flipped = flipped.set_column(4, "label", pc.if_else(pc.equal(flipped["label"], "up"), "down", "up"))
        fb = pa.concat_tables([fb, flipped, fb.take(pa.array(copies))])
        offset += per_day
        # the traces' offsets go on from the last day's when they outnumber the feedback
        trace_start = offset * 2 if traces is None else day * m
        _write(lake, "traces", date, pa.table(trace_cols), trace_start)
        _write(lake, "feedback", date, fb, offset * 2)


def _write(lake: Path, stream: str, date: dt.datetime, table: pa.Table, start: int) -> None:
    from core.lake import SCHEMAS

    n = table.num_rows
    ts = table["event_time"]
    common = {
        "_topic": pa.array([f"llm.{stream}"] * n),
        "_partition": pa.array(np.zeros(n, np.int32)),
        "_offset": pa.array(np.arange(n, dtype=np.int64) + start),
        "_kafka_timestamp": ts.cast(pa.timestamp("ms", tz="UTC"), safe=False),
        "_ingested_at": pc.add(ts, pa.scalar(5 * 10**6, pa.duration("us"))).cast(
            pa.timestamp("ms", tz="UTC"), safe=False
        ),
        "schema_version": pa.array(np.ones(n, np.int32)),
        "extra": pa.array(["{}"] * n),
    }
    schema = SCHEMAS[stream]
    cols = {**common, **{c: table[c] for c in table.column_names}}
    full = pa.table([cols.get(f.name, pa.nulls(n, f.type)).cast(f.type) for f in schema], schema=schema)
    folder = lake / "raw" / stream / f"dt={date.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(full, folder / f"llm.{stream}-0-{start}-{start + n - 1}.parquet", compression="zstd")


def cached_lake(n: int, traces: int | None = None) -> Path:
    """The lake of ``n`` feedback events on ``traces`` traces (None: one per event), made once."""
    lake = CACHE / (f"lake-{n}" if traces is None else f"lake-{traces}t-{n}f")
    if not (lake / "COMPLETE").is_file():
        shutil.rmtree(lake, ignore_errors=True)
        start = time.perf_counter()
        generate(lake, n, traces=traces)
        (lake / "COMPLETE").write_text(f"{n}\n")
        print(f"  generated {n:,} events in {time.perf_counter() - start:.0f}s -> {lake}", flush=True)
    return lake


# ---------------------------------------------------------------------------
# The baseline: the same steps written plainly in pandas (every column read, merges in memory).

PII = [
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "[EMAIL]"),
    (r"\b\d(?:[ -]?\d){12,18}\b", "[CARD]"),
    (r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b", "[IP]"),
    (r"\+\d{1,3}(?:[ .-]?\d{2,4}){2,5}\b|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b", "[PHONE]"),
]


def pandas_curate(lake: Path, out: Path) -> dict[str, int]:
    """The curation's steps written plainly in pandas. Its seeded hashes (caps, split) are
    pandas' own, not DuckDB's: as many rows survive, and a few fall on the other side of the
    split (at 1 M, 137 of 777,159)."""
    import pandas as pd

    as_of = pd.Timestamp(AS_OF)
    cutoff = as_of - pd.Timedelta(days=30)
    fb = pd.read_parquet(lake / "raw" / "feedback")
    tr = pd.read_parquet(lake / "raw" / "traces")
    fb = fb[(fb.event_time <= as_of) & (fb._ingested_at <= as_of)]
    fb = fb.sort_values(["_ingested_at", "_partition", "_offset"]).drop_duplicates("event_id")
    fb["user_key"] = fb.user_id.fillna("anonymous:" + fb.event_id)
    fb = fb.sort_values(["event_time", "event_id"], ascending=False).drop_duplicates(["user_key", "trace_id"])
    fb = fb[fb.event_time >= cutoff]
    tr = tr[(tr.event_time <= as_of) & (tr._ingested_at <= as_of)].drop_duplicates("trace_id")
    tr = tr[["trace_id", "model_version", "prompt", "completion", "session_id", "tags", "prompt_format"]]
    j = fb.drop(columns=["prompt", "completion", "model_version", "prompt_format"]).merge(tr, on="trace_id")
    j = j[(j.kind == "edit") | j.label.isin(["up", "down"])]
    thumbs = j[j.kind == "thumb"].assign(source="thumb", label=lambda d: d.label == "up")
    edits = j[j.kind == "edit"]
    rows = pd.concat(
        [
            thumbs,
            edits.assign(source="edit", label=True, completion=edits.edited_completion),
            edits.assign(source="edit_original", label=False),
        ],
        ignore_index=True,
    )
    votes = rows.groupby(["prompt", "completion"]).label.agg(["sum", "count"])
    votes["down"] = votes["count"] - votes["sum"]
    rows = rows.join(votes, on=["prompt", "completion"])
    rows = rows[
        (rows["sum"] == 0)
        | (rows.down == 0)
        | ((rows["sum"] > rows.down) == rows.label) & (rows["sum"] != rows.down)
    ]
    plen, clen = rows.prompt.str.strip().str.len(), rows.completion.fillna("").str.strip().str.len()
    rows = rows[
        (plen >= 1) & (clen >= 1) & (rows.prompt.str.len() <= 8000) & (rows.completion.str.len() <= 8000)
    ]
    rows = rows.assign(rk=pd.util.hash_pandas_object(rows.event_id + rows.source, index=False).to_numpy())
    rows = rows.sort_values("rk")
    rows = rows[rows.groupby("prompt").cumcount() < 50]
    rows = rows[rows.groupby("user_key").cumcount() < 1000]
    key = rows.session_id.fillna(rows.trace_id)
    hashed_eval = pd.util.hash_pandas_object(key, index=False).to_numpy() % 1_000_000 < 100_000
    rows = rows.assign(hashed_eval=hashed_eval)
    rows["split"] = rows.groupby("prompt").hashed_eval.transform("all").map({True: "eval", False: "train"})
    for column in ("prompt", "completion"):
        for pattern, token in PII:
            rows[column] = rows[column].str.replace(pattern, token, regex=True)
    cols = [
        "prompt",
        "prompt_format",
        "completion",
        "label",
        "trace_id",
        "model_version",
        "event_time",
        "source",
        "session_id",
        "user_id",
        "tags",
        "event_id",
    ]
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    # as the DuckDB version writes them: the default codec, rows in no particular order
    for split in ("train", "eval"):
        part = rows.loc[rows.split == split, cols]
        part.to_parquet(out / f"{split}.parquet", compression="snappy", index=False)
        counts[split] = len(part)
    return counts


def polars_curate(lake: Path, out: Path) -> dict[str, int]:
    """The curation's core semantics written plainly with Polars' lazy API, as a user would pick
    it: feedback deduplicated (first copy), the latest action per user and trace, the window's age,
    the join to the first copy of each trace (only the traces feedback names), thumbs and edits
    as rows, conflicts by majority (ties dropped), empty and over-long texts dropped, caps per
    prompt and per user by a seeded hash, the split by session with a prompt on both sides kept in
    train, four PII regexes, both splits written. Its hashes are Polars', not DuckDB's: as many rows
    survive, and a few fall on the other side of the split."""
    import polars as pl

    as_of = dt.datetime.fromisoformat(AS_OF.replace("Z", "+00:00"))
    cutoff = as_of - dt.timedelta(days=30)

    def scan(stream: str) -> pl.LazyFrame:
        return pl.scan_parquet(str(lake / "raw" / stream / "**" / "*.parquet"), hive_partitioning=False)

    known = (pl.col("event_time") <= as_of) & (pl.col("_ingested_at") <= as_of)
    order = ["_ingested_at", "_partition", "_offset"]
    fb = (
        scan("feedback")
        .filter(known)
        .select("event_id", "trace_id", "user_id", "event_time", "kind", "label", "edited_completion", *order)
        .sort(order)
        .unique("event_id", keep="first", maintain_order=True)
        .with_columns(user_key=pl.col("user_id").fill_null(pl.lit("anonymous:") + pl.col("event_id")))
        .sort(["event_time", "event_id"], descending=True)
        .unique(["user_key", "trace_id"], keep="first", maintain_order=True)
        .filter(pl.col("event_time") >= cutoff)
        .filter((pl.col("kind") == "edit") | pl.col("label").is_in(["up", "down"]))
    )
    traces = (
        scan("traces")
        .filter(known)
        .join(fb.select("trace_id").unique(), on="trace_id", how="semi")
        .sort(order)
        .unique("trace_id", keep="first", maintain_order=True)
        .select("trace_id", "model_version", "prompt", "completion", "session_id", "tags", "prompt_format")
    )
    j = fb.drop(order).join(traces, on="trace_id", how="inner")
    keep = ["prompt", "prompt_format", "completion", "label", "trace_id", "model_version", "event_time"]
    keep += ["source", "session_id", "user_id", "tags", "event_id", "user_key"]
    rows = pl.concat(
        [
            j.filter(pl.col("kind") == "thumb").with_columns(
                source=pl.lit("thumb"), label=pl.col("label") == "up"
            ),
            j.filter(pl.col("kind") == "edit").with_columns(
                source=pl.lit("edit"), label=pl.lit(True), completion=pl.col("edited_completion")
            ),
            j.filter(pl.col("kind") == "edit").with_columns(
                source=pl.lit("edit_original"), label=pl.lit(False)
            ),
        ]
    ).select(keep)
    pair = ["prompt", "completion"]
    n_up = pl.col("label").cast(pl.Int64).sum().over(pair)
    n_down = pl.len().over(pair) - n_up
    rows = rows.filter((n_up == 0) | (n_down == 0) | ((n_up > n_down) == pl.col("label")) & (n_up != n_down))
    rows = rows.filter(
        (pl.col("prompt").str.strip_chars().str.len_chars() >= 1)
        & (pl.col("completion").fill_null("").str.strip_chars().str.len_chars() >= 1)
        & (pl.col("prompt").str.len_chars() <= 8000)
        & (pl.col("completion").str.len_chars() <= 8000)
    )
    rows = rows.with_columns(rk=(pl.col("event_id") + pl.col("source")).hash(0)).sort("rk")
    rows = rows.filter(pl.int_range(pl.len()).over("prompt") < 50)
    rows = rows.filter(pl.int_range(pl.len()).over("user_key") < 1000)
    hashed_eval = pl.col("session_id").fill_null(pl.col("trace_id")).hash(0) % 1_000_000 < 100_000
    rows = rows.with_columns(eval=hashed_eval.all().over("prompt"))
    for column in ("prompt", "completion"):
        for pattern, token in PII:
            rows = rows.with_columns(pl.col(column).str.replace_all(pattern, token))
    done = rows.drop("rk", "user_key").collect()
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, flag in (("train", False), ("eval", True)):
        part = done.filter(pl.col("eval") == flag).drop("eval")
        part.write_parquet(out / f"{split}.parquet", compression="snappy")
        counts[split] = part.height
    return counts


def duckdb_curate(lake: Path, out: Path, redact: bool = True) -> dict[str, Any]:
    start = time.perf_counter()  # as _child times the other engines: imports included
    from core.snapshot import load_manifest
    from curation.run import run
    from flywheel.config import defaults

    config = defaults().replace(
        **{
            "paths.lake": str(lake),
            "paths.registry": str(out / "registry"),
            "curation.redact_pii": redact,
        }
    )
    path = run(config, as_of=AS_OF)
    seconds = time.perf_counter() - start  # what `flywheel curate` takes: the snapshot is durable
    # The Data Docs follow in a process of their own (curation.data_docs = after): measured apart,
    # and waited for, so they neither vanish with the folder nor run into the next engine's time.
    from curation import docs

    docs_line = docs.wait(path, timeout=600)
    docs_seconds = time.perf_counter() - start - seconds
    manifest = load_manifest(path)
    counts, held_out = manifest["counts"], manifest["class_counts"]["eval"]
    shutil.rmtree(path)  # the next run must build, not find, the snapshot
    return {
        "seconds": seconds,
        "docs_seconds": docs_seconds,
        "docs": docs_line.split(";")[0],
        "train": counts["train"],
        "eval": counts["eval"],
        "pii_rows": counts.get("pii_any", 0),
        # the gate's evidence: the held-out rows and their thumbs
        "eval_up": held_out["desirable"],
        "eval_down": held_out["undesirable"],
    }


def duckdb_core(lake: Path, out: Path, split_by: str = "session") -> dict[str, int]:
    """The SQL chain and the export only: the same work as the Polars baseline (no report)."""
    import tempfile

    from curation.pipeline import Window, connect, run_pipeline
    from curation.run import parse_as_of
    from curation.snapshot import write_splits
    from flywheel.config import defaults

    cfg = defaults().replace(**{"curation.split_by": split_by}).curation
    out.mkdir(parents=True, exist_ok=True)
    con = connect(cfg, Path(tempfile.mkdtemp(dir=out)))
    result = run_pipeline(con, lake, cfg, Window.build(parse_as_of(AS_OF), cfg), None)
    write_splits(con, out, result.params, cfg.snapshot_compression)
    held_out = result.class_counts["eval"]
    return {
        "train": result.counts["train"],
        "eval": result.counts["eval"],
        "eval_up": held_out["desirable"],
        "eval_down": held_out["undesirable"],
    }


ENGINES = {
    "duckdb": duckdb_curate,
    "duckdb-no-pii": lambda lake, out: duckdb_curate(lake, out, redact=False),
    "duckdb-core": duckdb_core,
    "duckdb-component": lambda lake, out: duckdb_core(lake, out, split_by="component"),
    "polars": polars_curate,
    "match-floor": lambda lake, out: match_floor(lake, out, AS_OF),
    "pandas": pandas_curate,
    "copy-floor": lambda lake, out: copy_floor(lake, out, AS_OF),
    "keys-floor": lambda lake, out: keys_floor(lake, out, AS_OF),
}


def _child(engine: str, lake: str, out: str) -> None:
    """Runs in a fresh process so its peak RSS is its own."""
    start = time.perf_counter()
    counts = ENGINES[engine](Path(lake), Path(out))
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "rss": rss, **counts}))


def measure(engine: str, lake: Path) -> dict[str, Any]:
    out = CACHE / f"out-{engine}"
    shutil.rmtree(out, ignore_errors=True)
    # Earlier runs leave gigabytes of dirty pages; flushing them here, unmeasured, keeps their
    # writeback out of this run's time.
    os.sync()
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_curation", engine, str(lake), str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        return {
            "error": done.stderr.strip().splitlines()[-1]
            if done.stderr.strip()
            else f"exit {done.returncode}"
        }
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


LABELS = {
    "duckdb": "duckdb, whole curation (with report)",
    "duckdb-no-pii": "duckdb, whole curation, no PII",
    "duckdb-core": "duckdb, SQL chain + export",
    "duckdb-component": "duckdb, chain + export, split_by=component",
    "polars": "polars baseline, core semantics",
    "match-floor": "floor: ids scanned, matched text r+w",
    "pandas": "pandas, core semantics",
    "copy-floor": "every trace's text copied once",
    "keys-floor": "keys and every trace's text hashed",
}
DEFAULT_ENGINES = "duckdb,duckdb-core,duckdb-component,polars,match-floor"


def _line(shape: str, label: str, r: dict[str, Any]) -> str:
    head = f"  {shape:<22} {label:<42} {r['seconds']:6.1f} s  RSS {r['rss'] / 1024**3:4.2f} GiB  load {r['load']:4.1f}"
    if "rows" in r:
        return f"{head}  -> {r['rows']:,} rows"
    tail = f"  -> {r['train']:,} train / {r['eval']:,} eval"
    if "eval_up" in r:
        share = r["eval"] / max(r["train"] + r["eval"], 1)
        tail += f" ({share:.1%}; eval thumbs up {r['eval_up']:,} / down {r['eval_down']:,})"
    if "docs_seconds" in r:
        tail += f"; Data Docs followed in {r['docs_seconds']:.1f} s ({r['docs']})"
    return head + tail


def _ratio(runs: dict[str, list[dict[str, Any]]], a: str, b: str) -> str:
    """a's time over b's, per rep (both measured in the same rep, back to back)."""
    pairs = [x["seconds"] / y["seconds"] for x, y in zip(runs.get(a, []), runs.get(b, []), strict=False)]
    return ", ".join(f"{p:.2f}x" for p in pairs) or "n/a"


def _shapes() -> list[tuple[int, float]]:
    """BENCH_CURATION_SHAPES: comma-separated traces:share (feedback events per trace)."""
    raw = os.environ.get("BENCH_CURATION_SHAPES", "1000000:1,1000000:0.05,1000000:0.01")
    shapes = []
    for item in raw.split(","):
        traces, _, share = item.strip().partition(":")
        shapes.append((int(traces), float(share or 1)))
    return shapes


def main() -> None:
    engines = [e.strip() for e in os.environ.get("BENCH_CURATION_ENGINES", DEFAULT_ENGINES).split(",")]
    reps = int(os.environ.get("BENCH_CURATION_REPS", "1"))
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise SystemExit(f"BENCH_CURATION_ENGINES: unknown {unknown}; known: {', '.join(ENGINES)}")
    print(
        f"  load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work shares them)"
    )
    for traces, share in _shapes():
        lake = cached_lake(round(traces * share), traces=traces)
        shape = f"{traces / 1e6:g} M tr / {share:.0%} fb"
        runs: dict[str, list[dict[str, Any]]] = {}
        for _ in range(reps):  # each rep runs every engine once, back to back: ratios pair within a rep
            for engine in engines:
                r = measure(engine, lake)
                r["load"] = os.getloadavg()[0]
                if "error" in r:
                    print(f"  {shape:<22} {LABELS[engine]} FAILED: {r['error']}", flush=True)
                    continue
                runs.setdefault(engine, []).append(r)
                print(_line(shape, LABELS[engine], r), flush=True)

        for engine in ("duckdb", "duckdb-core"):
            if engine in runs:
                print(
                    f"  {shape:<22} polars / {engine}: {_ratio(runs, 'polars', engine)}   "
                    f"{engine} / floor: {_ratio(runs, engine, 'match-floor')}",
                    flush=True,
                )
        if "duckdb" in runs and "duckdb-core" in runs:
            added = [
                x["seconds"] - y["seconds"] for x, y in zip(runs["duckdb"], runs["duckdb-core"], strict=False)
            ]
            print(
                f"  {shape:<22} whole over chain + export (digest, pairs, report):"
                f" {', '.join(f'{a:.1f} s' for a in added)}"
            )
    print(f"  load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    if len(sys.argv) == 4:
        _child(*sys.argv[1:])
    else:
        main()
