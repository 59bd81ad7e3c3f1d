"""Runs the SQL chain in ``sql/`` over the raw lake and counts the rows after every step.

Each step ``NN_name.sql`` (STEPS, in order) makes table ``name`` from the tables of earlier steps,
which it names at its top, one import CTE each (``WITH actions AS NOT MATERIALIZED (SELECT * FROM
feedback)``: NOT MATERIALIZED, as DuckDB would otherwise copy an input read more than once); edits,
conflicts and filters run as CTEs of one statement (``07_filtered``). ``sql/counts/NN_name.sql``
counts what a step left, one row with a column per counter, which may name earlier counters and
the run's parameters as ``$name``: these are the report's and the manifest's counts. The traces are matched to the feedback on their ids first
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
# The chain, in order. A step `NN_name` runs sql/NN_name.sql into table `name` (see step_table;
# 05_trace_rows and 10_final_rows decide between a table and a view, or a rename, in Python), and
# split_groups is a loop in Python (_split_groups). After a step, sql/counts/<step>.sql counts it
# where there is one, and the tables no later step reads are dropped.
STEPS = (
    "01_raw_profile",
    "02_feedback",
    "03_feedback_text",
    "04_dropped",
    "05_trace_pos",
    "05_trace_rows",
    "05_traces",
    "06_joined",
    "07_filtered",
    "08_capped",
    "split_groups",
    "09_split_rows",
    "10_final_rows",
)
DROP_AFTER = {
    "06_joined": ("feedback", "feedback_text", "dropped", "traces", "trace_pos"),
    "07_filtered": ("joined",),
    "08_capped": ("filtered",),
    "09_split_rows": ("capped", "split_groups"),
}


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


def step_table(step: str) -> str:
    """The table (or view) step ``NN_name`` makes: ``name``."""
    return step.split("_", 1)[1]


def _make(con: duckdb.DuckDBPyConnection, step: str, params: dict[str, Any]) -> None:
    """Run sql/<step>.sql into the table named after it (:func:`step_table`)."""
    _bind(con, f"CREATE OR REPLACE TEMP TABLE {step_table(step)} AS\n" + load_sql(step), params)


def _count(con: duckdb.DuckDBPyConnection, step: str, params: dict[str, Any], counts: dict[str, int]) -> None:
    """Add the counters of sql/counts/<step>.sql (one row, a column per counter) to ``counts``; a
    counter query may name the run's parameters and the counters before it as ``$name``."""
    text = load_sql(f"counts/{step}")
    cursor = _bind(con, text, {**params, **counts})
    row = cursor.fetchone()
    assert row is not None and cursor.description is not None
    counts.update({column[0]: int(value) for column, value in zip(cursor.description, row, strict=True)})


def _scalar(con: duckdb.DuckDBPyConnection, query: str) -> Any:
    row = con.execute(query).fetchone()
    assert row is not None
    return row[0]


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
    # DuckDB 2 draws a progress bar on stderr for any query over 2 s: in a nightly round's JSON
    # logs that is a stream of carriage returns, not a log line (a session option, not a global one).
    con.execute("SET enable_progress_bar = false")
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


def _trace_rows(con: duckdb.DuckDBPyConnection, params: dict[str, Any], any_files: bool) -> None:
    """Read only the rows of the traces recent feedback points at (``trace_pos``, found by their
    ids) into ``trace_rows``. While they are at most HOLD_TRACE_ROWS and HOLD_TRACE_SHARE of the
    window's traces, ``trace_rows`` is a table and ``traces_src`` becomes a view of it, so the fetch
    (13_fetch.sql) and the report read their text from memory rather than the whole window's
    traces from the lake a second time; the window's traces stay readable as ``traces_lake``.
    Otherwise ``trace_rows`` is a view that reads the lake."""
    matched = _scalar(con, "SELECT count(*) FROM trace_pos")
    # where most traces got feedback, the fetch reads most of the lake anyway: holding saves no
    # time there (1 M traces, 61 % matched: 21-25 s either way) and costs ~0.3 GiB per 600 k rows
    held = (
        any_files
        and matched <= HOLD_TRACE_ROWS
        and matched <= HOLD_TRACE_SHARE * _scalar(con, "SELECT count(*) FROM traces_src")
    )
    if held:
        _make(con, "05_trace_rows", params)
        con.execute("ALTER VIEW traces_src RENAME TO traces_lake")
        con.execute("CREATE TEMP VIEW traces_src AS SELECT * FROM trace_rows")
    else:
        con.execute("CREATE OR REPLACE TEMP VIEW trace_rows AS\n" + load_sql("05_trace_rows"))


def _split_groups(con: duckdb.DuckDBPyConnection, by_component: bool) -> dict[str, int]:
    """Table ``split_groups`` (split_key -> component) for split_by = component: the connected
    components of the graph whose edges are the kept rows, between their session (else trace) key
    and their prompt hash, found by min-label propagation in SQL (one round per step of the
    longest shortest path; each round two GROUP BYs over the distinct edges). Every session that
    shares a prompt with another, directly or through others, gets its component; 11_split.sql
    hashes that, so a prompt can never be on both sides and eval holds about ``eval_fraction`` of
    the components. Returns the counters ``split_components`` and ``split_component_rounds``; an
    empty table and no counters for the other modes."""
    con.execute("CREATE OR REPLACE TEMP TABLE split_groups (split_key UBIGINT, component UBIGINT)")
    if not by_component:
        return {}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE split_edges AS"
        " SELECT DISTINCT split_key, prompt_hash FROM capped WHERE reason = 'ok'"
    )
    con.execute("INSERT INTO split_groups SELECT DISTINCT split_key, split_key FROM split_edges")
    rounds = 0
    while True:
        rounds += 1
        con.execute(
            "CREATE OR REPLACE TEMP TABLE split_next AS"
            " WITH by_prompt AS (SELECT e.prompt_hash, min(g.component) AS component FROM split_edges AS e"
            "  JOIN split_groups AS g ON e.split_key = g.split_key GROUP BY e.prompt_hash)"
            " SELECT e.split_key, min(b.component) AS component FROM split_edges AS e"
            " JOIN by_prompt AS b ON e.prompt_hash = b.prompt_hash GROUP BY e.split_key"
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
    components = _scalar(con, "SELECT count(DISTINCT component) FROM split_groups")
    return {"split_components": components, "split_component_rounds": rounds}


def _final_rows(con: duckdb.DuckDBPyConnection, mode: str, params: dict[str, Any]) -> Balance:
    """Table ``final_rows``: with balance = downsample, 10_final_rows.sql keeps as many train rows
    of each class as :func:`curation.policy.balance` says; with weights every row stays (no need to
    rank them), and ``split_rows`` is renamed."""
    train = dict(
        con.execute("SELECT label, count(*) FROM split_rows WHERE split = 'train' GROUP BY ALL").fetchall()
    )
    bal = balance(train.get(True, 0), train.get(False, 0), mode)
    downsample = mode == "downsample"
    params["keep_up"] = bal.keep_desirable if downsample else _NO_LIMIT
    params["keep_down"] = bal.keep_undesirable if downsample else _NO_LIMIT
    if downsample:
        _make(con, "10_final_rows", params)
        con.execute("DROP TABLE split_rows")
    else:
        con.execute("ALTER TABLE split_rows RENAME TO final_rows")
    return bal


@dataclasses.dataclass
class Result:
    counts: dict[str, int]
    inputs: dict[str, Any]
    balance: Balance
    class_counts: dict[str, dict[str, int]]
    params: dict[str, Any]
    # raw feedback by day, label and whether it was read / had arrived, with its quality measures
    raw: pd.DataFrame
    # (model_version, actions) of the window's feedback before any age-out (q_window_versions.sql)
    window_versions: list[tuple[str, int]] = dataclasses.field(default_factory=list)


def run_pipeline(
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    cfg: CurationConfig,
    window: Window,
    versions: list[str] | None,
    raw_lake: Lake | None = None,
) -> Result:
    """Run STEPS into table ``final_rows`` (the snapshot's rows as keys, with a ``split`` column)
    and count every step; :func:`curation.snapshot.write_splits` reads their text and writes them.

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
    counts: dict[str, int] = {}
    window_versions: list[tuple[str, int]] = []
    for step in STEPS:
        if step == "05_trace_rows":
            _trace_rows(con, params, inputs["traces_files"] > 0)
        elif step == "split_groups":
            counts.update(_split_groups(con, cfg.split_by == "component"))
        elif step == "10_final_rows":
            bal = _final_rows(con, cfg.balance, params)
        else:
            _make(con, step, params)
        if (SQL_DIR / "counts" / f"{step}.sql").exists():
            _count(con, step, {**params, **inputs}, counts)
        if step == "06_joined":  # while the actions and their matched traces are still there
            served = con.execute(load_sql("q_window_versions")).fetchall()
            window_versions = [(str(version), int(n)) for version, n in served]
        for table in DROP_AFTER.get(step, ()):
            con.execute(f"DROP TABLE {table}")
    class_counts: dict[str, dict[str, int]] = {
        s: {"desirable": 0, "undesirable": 0} for s in ("train", "eval")
    }
    for s, lab, n in con.execute("SELECT split, label, count(*) FROM final_rows GROUP BY ALL").fetchall():
        class_counts[s]["desirable" if lab else "undesirable"] = int(n)
    return Result(
        counts=counts,
        inputs=inputs,
        balance=bal,
        class_counts=class_counts,
        params=params,
        raw=con.table("raw_profile").df(),
        window_versions=window_versions,
    )
