"""Runs the SQL chain in ``sql/`` over the raw lake and counts the rows after every step.

Each ``NN_name.sql`` makes one table from the previous ones (edits, conflicts and filters run
as CTEs of one statement). The traces are matched to the feedback on their ids first
(``05_trace_pos``, which reads no text), and only the matched traces' rows are read on
(``05_trace_rows``): their text is hashed and measured (``03`` for feedback's own, ``05``), and,
for the rows that made it, written into the snapshot (``13_fetch.sql``, run by
:func:`curation.snapshot.write_splits`) from the matched rows held in memory (up to
``HOLD_TRACE_ROWS``; beyond, the fetch streams them from the lake again). In between, the steps carry
numbers: hashes, lengths, flags and file positions, about 100 bytes a row, so 10 M events fit in
memory without spilling. Rows are only sorted where a group holds more than one (copies of an
event, a user's several votes, groups over a cap).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from core.lake import Lake
from curation import pii
from curation.config import CurationConfig
from curation.forget import tombstones
from curation.lake import attach, empty_table, window_files
from curation.policy import Balance, balance

SQL_DIR = Path(__file__).parent / "sql"
_PARAM = re.compile(r"\$([a-z_]+)")
_NO_LIMIT = 2**62
# The most matched trace rows held in memory between the trace scan and the fetch (about 0.5-1 KB
# each, inside curation.memory_limit); more are read from the lake again by the fetch.
HOLD_TRACE_ROWS = 1_000_000
# ... and only while they are at most this share of the window's traces
HOLD_TRACE_SHARE = 0.25
# A rating's columns (ingest.schema), absent from feedback files written before ratings existed.
RATING_COLUMNS = {"feedback": ("score", "scale_min", "scale_max"), "traces": ()}


@dataclasses.dataclass(frozen=True)
class Window:
    """The time bounds of one curation run, all derived from --as-of."""

    as_of: dt.datetime
    cutoff: dt.datetime  # feedback before this is aged out
    grace_cutoff: dt.datetime  # feedback after this may still see its trace arrive

    @classmethod
    def build(cls, as_of: dt.datetime, cfg: CurationConfig) -> Window:
        return cls(
            as_of=as_of,
            cutoff=as_of - dt.timedelta(days=cfg.max_age_days),
            grace_cutoff=as_of - dt.timedelta(hours=cfg.grace_hours),
        )


def load_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def sql_literal(value: str | Path) -> str:
    """``value`` as a quoted SQL string literal (for file names, which a view cannot bind)."""
    return "'" + str(value).replace("'", "''") + "'"


def used_params(text: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``text`` names: DuckDB rejects parameters a statement does not use."""
    return {name: params[name] for name in set(_PARAM.findall(text))}


def _bind(con: duckdb.DuckDBPyConnection, text: str, params: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    return con.execute(text, used_params(text, params))


def _table(con: duckdb.DuckDBPyConnection, table: str, name: str, params: dict[str, Any]) -> None:
    _table_text(con, table, load_sql(name), params)


def _table_text(con: duckdb.DuckDBPyConnection, table: str, text: str, params: dict[str, Any]) -> None:
    _bind(con, f"CREATE OR REPLACE TEMP TABLE {table} AS\n" + text, params)


def _chained(
    con: duckdb.DuckDBPyConnection, table: str, ctes: dict[str, str], name: str, params: dict[str, Any]
) -> None:
    """Like _table, with earlier steps as CTEs (cte name -> sql name) instead of tables of their own:
    DuckDB pipelines them, where a table per step is written (and at 10 M spilled) and read back."""
    parts = ",\n".join(f"{cte} AS (\n{load_sql(sql)}\n)" for cte, sql in ctes.items())
    _table_text(con, table, f"WITH\n{parts}\n{load_sql(name)}", params)


def _scalar(con: duckdb.DuckDBPyConnection, query: str) -> Any:
    row = con.execute(query).fetchone()
    assert row is not None
    return row[0]


def _grouped(con: duckdb.DuckDBPyConnection, table: str, column: str) -> dict[str, int]:
    return {
        str(k): int(n)
        for k, n in con.execute(f"SELECT {column}, count(*) FROM {table} GROUP BY 1").fetchall()
    }


def connect(cfg: CurationConfig, spill: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(
        ":memory:",
        config={
            "threads": cfg.threads,
            "memory_limit": cfg.memory_limit,
            "temp_directory": str(spill),
            # Row order is set explicitly where it matters; not keeping it saves memory.
            "preserve_insertion_order": False,
        },
    )
    # Dates of timestamps (the dt= folders, the daily plot) are UTC dates.
    con.execute("SET TimeZone = 'UTC'")
    con.execute(load_sql("00_macros"))
    pii.register(con, cfg.pii_phone_regions)
    return con


def _source(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    stream: str,
    first: dt.date,
    last: dt.date,
    forgotten: Sequence[str] = (),
) -> dict[str, int]:
    """View ``<stream>_src`` over the window's files, without the rows of users with a tombstone
    (``forgotten``: SHA-256 digests of their ids, curation.forget), which it counts."""
    files, older_rows, older_files = window_files(lake, stream, first, last)
    removed = 0
    # `_pos` names one row of one file in one BIGINT (file index, row number in it): the early steps
    # carry it instead of the Kafka coordinates, and 13_fetch.sql reads the text back by it. It is
    # taken before the tombstones' filter, so it still names the row's place in its file.
    if files:
        attach(con, lake)  # an object store's URLs are read through its pyarrow filesystem
        # a view cannot take parameters: the file list goes in as quoted literals
        listed = ", ".join(sql_literal(f) for f in files)
        scan = f"read_parquet([{listed}], union_by_name = true)"
        keep = "true"
        if forgotten:
            digests = ", ".join(sql_literal(d) for d in forgotten)
            gone = f"user_id IS NOT NULL AND sha256(user_id) IN ({digests})"
            keep = f"NOT ({gone})"
            removed = _scalar(con, f"SELECT count(*) FROM {scan} WHERE {gone}")
        # files written before ratings existed lack their columns: they read as nulls
        have = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        fill = "".join(f" NULL::DOUBLE AS {c}," for c in RATING_COLUMNS[stream] if c not in have)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {stream}_src AS SELECT *,{fill}"
            f" (file_index::BIGINT << 40) | file_row_number AS _pos FROM {scan} WHERE {keep}"
        )
    else:
        empty = empty_table(stream)
        con.register(f"{stream}_src", empty.append_column("_pos", pa.array([], pa.int64())))
    return {
        f"{stream}_files": len(files),
        f"{stream}_older_files": older_files,
        f"{stream}_older_rows": older_rows,
        f"forgotten_{stream}": removed,
    }


def _match_traces(con: duckdb.DuckDBPyConnection, params: dict[str, Any], any_files: bool) -> None:
    """Find the traces recent feedback points at by their ids (``tr_pos``), then read only their
    rows (``tr_rows``). While they are at most HOLD_TRACE_ROWS and HOLD_TRACE_SHARE of the window's
    traces, ``tr_rows`` is a table and ``traces_src`` becomes a view of it, so the fetch
    (13_fetch.sql) and the report read their text from memory rather than the whole window's
    traces from the lake a second time; the window's traces stay readable as ``traces_lake``.
    Otherwise ``tr_rows`` is a view that reads the lake."""
    _table(con, "tr_pos", "05_trace_pos", params)
    matched = _scalar(con, "SELECT count(*) FROM tr_pos")
    # where most traces got feedback, the fetch reads most of the lake anyway: holding saves no
    # time there (1 M traces, 61 % matched: 21-25 s either way) and costs ~0.3 GiB per 600 k rows
    held = (
        any_files
        and matched <= HOLD_TRACE_ROWS
        and matched <= HOLD_TRACE_SHARE * _scalar(con, "SELECT count(*) FROM traces_src")
    )
    if held:
        _table(con, "tr_rows", "05_trace_rows", params)
        con.execute("ALTER VIEW traces_src RENAME TO traces_lake")
        con.execute("CREATE TEMP VIEW traces_src AS SELECT * FROM tr_rows")
    else:
        con.execute("CREATE OR REPLACE TEMP VIEW tr_rows AS\n" + load_sql("05_trace_rows"))


def _split_groups(con: duckdb.DuckDBPyConnection, by_component: bool) -> tuple[int, int]:
    """Table ``split_groups`` (split_key -> component) for split_by = component: the connected
    components of the graph whose edges are the kept rows, between their session (else trace) key
    and their prompt hash, found by min-label propagation in SQL (one round per step of the
    longest shortest path; each round two GROUP BYs over the distinct edges). Every session that
    shares a prompt with another, directly or through others, gets its component; 11_split.sql
    hashes that, so a prompt can never be on both sides and eval holds about ``eval_fraction`` of
    the components. Returns (components, rounds); empty table and (0, 0) for the other modes."""
    con.execute("CREATE OR REPLACE TEMP TABLE split_groups (split_key UBIGINT, component UBIGINT)")
    if not by_component:
        return 0, 0
    con.execute(
        "CREATE OR REPLACE TEMP TABLE split_edges AS"
        " SELECT DISTINCT split_key AS s, ph AS p FROM capped WHERE reason = 'ok'"
    )
    con.execute("INSERT INTO split_groups SELECT DISTINCT s, s FROM split_edges")
    rounds = 0
    while True:
        rounds += 1
        con.execute(
            "CREATE OR REPLACE TEMP TABLE split_next AS"
            " WITH by_prompt AS (SELECT e.p, min(g.component) AS c FROM split_edges AS e"
            "  JOIN split_groups AS g ON e.s = g.split_key GROUP BY e.p)"
            " SELECT e.s AS split_key, min(b.c) AS component FROM split_edges AS e"
            " JOIN by_prompt AS b ON e.p = b.p GROUP BY e.s"
        )
        changed = _scalar(
            con,
            "SELECT count(*) FROM split_next AS n JOIN split_groups AS g USING (split_key)"
            " WHERE n.component < g.component",
        )
        con.execute("DROP TABLE split_groups; ALTER TABLE split_next RENAME TO split_groups")
        if not changed:
            break
    con.execute("DROP TABLE split_edges")
    return _scalar(con, "SELECT count(DISTINCT component) FROM split_groups"), rounds


@dataclasses.dataclass
class Result:
    counts: dict[str, int]
    inputs: dict[str, Any]
    balance: Balance
    class_counts: dict[str, dict[str, int]]
    params: dict[str, Any]
    # raw feedback by day, label and whether it was read / had arrived, with its quality measures
    raw: pd.DataFrame


def run_pipeline(
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    cfg: CurationConfig,
    window: Window,
    versions: list[str] | None,
    raw_lake: Lake | None = None,
) -> Result:
    """Build table ``final_rows`` (the snapshot's rows as keys, with a ``split`` column) and count
    every step; :func:`curation.snapshot.write_splits` reads their text and writes them.

    ``raw_lake`` is where the raw lake is when not under ``lake`` (paths.raw_lake: another folder, or an
    object store); the tombstones are always ``lake``'s (local)."""
    first = window.cutoff.date()
    last = window.as_of.date()
    forgotten = tombstones(lake)
    source = lake if raw_lake is None else raw_lake
    inputs = _source(con, source, "feedback", first, last, forgotten)
    inputs.update(
        _source(con, source, "traces", first - dt.timedelta(days=cfg.trace_lookback_days), last, forgotten)
    )
    inputs["tombstones"] = len(forgotten)
    params: dict[str, Any] = {
        "as_of": window.as_of,
        "cutoff": window.cutoff,
        "grace_cutoff": window.grace_cutoff,
        "keep_all_versions": versions is None,
        "versions": versions or [],
        "seed": cfg.seed,
        "policy": cfg.conflict_policy,
        "tie_policy": cfg.tie_policy,
        "min_prompt": cfg.min_prompt_chars,
        "max_prompt": cfg.max_prompt_chars,
        "min_completion": cfg.min_completion_chars,
        "max_completion": cfg.max_completion_chars,
        "max_per_prompt": cfg.max_per_prompt,
        "max_per_user": cfg.max_per_user,
        "eval_ppm": round(cfg.eval_fraction * 1_000_000),
        "split_by": cfg.split_by,
        "redact": cfg.redact_pii,
        "skew_minutes": cfg.max_future_skew_minutes,
        "rating_up_at": cfg.rating_desirable_at,
        "rating_down_at": cfg.rating_undesirable_at,
        "up_categories": list(cfg.desirable_categories),
        "down_categories": list(cfg.undesirable_categories),
    }
    c: dict[str, int] = {
        # rows of users who asked to be forgotten (curation.forget), left out of every step
        "forgotten_feedback": inputs["forgotten_feedback"],
        "forgotten_traces": inputs["forgotten_traces"],
    }
    raw = _bind(con, load_sql("01_raw_profile"), params).df()
    c["read"] = int(raw.loc[raw["known_then"], "events"].sum())
    c["after_as_of"] = int(raw.loc[~raw["known_then"], "events"].sum())
    c["aged_out_by_date_folders"] = inputs["feedback_older_rows"]

    _table(con, "fb_all", "02_feedback", params)
    # ratings by what curation makes of them: only desirable and undesirable ones are trained on
    rated = _grouped(con, "fb_all", "rating_class")
    for cls in ("desirable", "undesirable", "between", "unmapped"):
        c[f"ratings_{cls}"] = rated.get(cls, 0)
    _table(con, "fb_text", "03_feedback_text", params)
    _table(con, "dropped", "04_latest", params)
    dropped = _grouped(con, "dropped", "reason")
    c["duplicates"] = dropped.get("duplicate", 0)
    c["after_dedupe"] = c["read"] - c["duplicates"]
    c["superseded"] = dropped.get("superseded", 0)
    c["after_latest_action"] = c["after_dedupe"] - c["superseded"]
    c["aged_out_by_date"] = _scalar(
        con,
        "SELECT count(*) FROM fb_all AS f ANTI JOIN dropped AS d ON f.fb_pos = d.fb_pos WHERE NOT f.recent",
    )
    c["after_age_date"] = c["after_latest_action"] - c["aged_out_by_date"]

    _match_traces(con, params, inputs["traces_files"] > 0)
    _table(con, "tr", "05_traces", params)
    _table(con, "joined", "06_joined", params)
    con.execute("DROP TABLE fb_all; DROP TABLE fb_text; DROP TABLE dropped; DROP TABLE tr; DROP TABLE tr_pos")
    status = _grouped(con, "joined", "status")
    for key in ("joined", "self_contained", "pending", "orphaned", "invalid", "untrained_rating"):
        c[key] = status.get(key, 0)
    c["after_join"] = c["joined"] + c["self_contained"]
    c["after_age_version"] = _scalar(
        con, "SELECT count(*) FROM joined WHERE status IN ('joined', 'self_contained') AND on_policy"
    )
    c["aged_out_by_version"] = c["after_join"] - c["after_age_version"]
    c["edits"] = _scalar(
        con,
        "SELECT count(*) FROM joined WHERE status IN ('joined', 'self_contained') AND on_policy AND is_edit",
    )

    # edits, conflicts and filters in one statement; 09_filters.sql keeps a conflict's verdict as reason
    _chained(con, "filtered", {"rows": "07_rows", "resolved": "08_conflicts"}, "09_filters", params)
    con.execute("DROP TABLE joined")
    reason = _grouped(con, "filtered", "reason")
    c["after_edits"] = sum(reason.values())
    c["conflict_minority"] = reason.get("minority", 0)
    c["conflict_ties"] = reason.get("tie", 0)
    c["conflict_dropped"] = reason.get("conflict", 0)
    c["after_conflicts"] = (
        c["after_edits"] - c["conflict_minority"] - c["conflict_ties"] - c["conflict_dropped"]
    )
    c["dropped_empty"] = reason.get("empty", 0)
    c["dropped_too_long"] = reason.get("too_long", 0)
    c["after_filters"] = reason.get("ok", 0)

    _table(con, "capped", "10_caps", params)
    con.execute("DROP TABLE filtered")
    reason = _grouped(con, "capped", "reason")
    c["capped_per_prompt"] = c["after_filters"] - sum(reason.values())
    c["capped_per_user"] = reason.get("cap_user", 0)
    c["after_caps"] = reason.get("ok", 0)

    components, rounds = _split_groups(con, cfg.split_by == "component")
    if cfg.split_by == "component":
        c["split_components"], c["split_component_rounds"] = components, rounds
    _table(con, "split_rows", "11_split", params)
    con.execute("DROP TABLE capped; DROP TABLE split_groups")
    c["moved_to_train_shared_prompt"] = _scalar(
        con, "SELECT count(*) FROM split_rows WHERE hashed_eval AND split = 'train'"
    )
    classes = {
        (s, bool(lab)): int(n)
        for s, lab, n in con.execute("SELECT split, label, count(*) FROM split_rows GROUP BY ALL").fetchall()
    }
    bal = balance(classes.get(("train", True), 0), classes.get(("train", False), 0), cfg.balance)
    downsample = cfg.balance == "downsample"
    params["keep_up"] = bal.keep_desirable if downsample else _NO_LIMIT
    params["keep_down"] = bal.keep_undesirable if downsample else _NO_LIMIT
    if downsample:
        _table(con, "final_rows", "12_balance", params)
        con.execute("DROP TABLE split_rows")
    else:  # weights leave every row in place: no need to rank them
        con.execute("ALTER TABLE split_rows RENAME TO final_rows")
    c["after_balance"] = _scalar(con, "SELECT count(*) FROM final_rows")
    c["downsampled"] = c["after_caps"] - c["after_balance"]

    class_counts: dict[str, dict[str, int]] = {
        s: {"desirable": 0, "undesirable": 0} for s in ("train", "eval")
    }
    for s, lab, n in con.execute("SELECT split, label, count(*) FROM final_rows GROUP BY ALL").fetchall():
        class_counts[s]["desirable" if lab else "undesirable"] = int(n)
    c["train"] = sum(class_counts["train"].values())
    c["eval"] = sum(class_counts["eval"].values())
    return Result(
        counts={k: int(v) for k, v in c.items()},
        inputs=inputs,
        balance=bal,
        class_counts=class_counts,
        params=params,
        raw=raw,
    )
