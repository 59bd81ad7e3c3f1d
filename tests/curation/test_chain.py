"""The SQL chain's shape: each step names its inputs at its top, its columns are words, and its
counters come from the counting queries in sql/counts (run on the hand-built scenario lake)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from curation import pipeline
from curation.pipeline import DROP_AFTER, SQL_DIR, STEPS, Window, connect, load_sql, run_pipeline, step_table
from curation.run import parse_as_of
from tests.curation import scenario
from tests.curation.conftest import make_config

# What the chain reads that no step makes: the raw lake's views (pipeline._source), the component
# groups (pipeline._split_groups) and the snapshot's files read back (snapshot.write_splits)
SOURCES = {"feedback_src", "traces_src", "split_groups", "out"}
MADE = {step_table(s) for s in STEPS if s[0].isdigit()}
# the SQL files that run on the chain's tables after it: the fetch, the digest, the pairs
AFTER_CHAIN = ("13_fetch", "14_content_hash", "15_pairs")
IMPORT = re.compile(r"^(\w+) AS (?:NOT )?MATERIALIZED \(SELECT \* FROM (\w+)\),?$")
ABBREVIATIONS = {"ph", "ch", "uk", "rk", "eh", "fb", "sc", "p", "c", "e", "t", "g", "k"}


def _code(text: str) -> list[str]:
    """The lines of a SQL text without comments and blank lines."""
    lines = (line.split("--", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _imports(step: str) -> tuple[dict[str, str], list[str]]:
    """The import CTEs at the top of a step (local name -> table) and the lines after them."""
    lines = _code(load_sql(step))
    assert lines[0] == "WITH", f"{step}.sql does not start with its import CTEs"
    imports: dict[str, str] = {}
    rest = lines[1:]
    while rest and (m := IMPORT.match(rest[0])):
        imports[m.group(1)] = m.group(2)
        rest = rest[1:]
    return imports, rest


@pytest.mark.parametrize("step", [s for s in STEPS if s[0].isdigit()] + list(AFTER_CHAIN))
def test_every_step_names_the_tables_it_reads_in_import_ctes_at_its_top(step: str) -> None:
    imports, rest = _imports(step)
    assert imports, f"{step}.sql names no input"
    assert set(imports.values()) <= SOURCES | MADE, f"{step}.sql imports an unknown table"
    assert not set(imports) & (SOURCES | MADE), f"{step}.sql gives an input a table's name"
    body = " ".join(rest)
    for table in SOURCES | MADE:
        assert not re.search(rf"\b(?:FROM|JOIN)\s+{table}\b", body), (
            f"{step}.sql reads {table} past its imports"
        )


def test_each_table_is_made_before_it_is_read_and_dropped_after_its_last_reader() -> None:
    made: set[str] = set(SOURCES) - {"out", "split_groups"}
    dropped: set[str] = set()
    for i, step in enumerate(STEPS):
        if step == "split_groups":
            made.add("split_groups")
            continue
        inputs = set(_imports(step)[0].values())
        assert inputs <= made - dropped, (
            f"{step} reads {inputs - made} before it is made or after it is dropped"
        )
        made.add(step_table(step))
        for table in DROP_AFTER.get(step, ()):
            later = {t for s in STEPS[i + 1 :] if s[0].isdigit() for t in _imports(s)[0].values()}
            assert table not in later, f"{table} is dropped after {step}, but a later step reads it"
            dropped.add(table)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):
    """The scenario's chain with every step's table kept (nothing dropped), split_by = component
    so that every step runs."""
    root = tmp_path_factory.mktemp("chain")
    scenario.build().write(root / "lake")
    overrides = {**scenario.OVERRIDES, "curation.split_by": "component", "curation.balance": "downsample"}
    cfg = make_config(root, **overrides).curation
    con = connect(cfg, root)
    counted: dict[str, list[str]] = {}  # step -> the counters its counting query added
    count = pipeline._count

    def recorded(
        con: duckdb.DuckDBPyConnection, step: str, params: dict[str, Any], counts: dict[str, int]
    ) -> None:
        before = list(counts)
        count(con, step, params, counts)
        counted[step] = [name for name in counts if name not in before]

    patch = pytest.MonkeyPatch()
    patch.setattr(pipeline, "DROP_AFTER", {})
    patch.setattr(pipeline, "_count", recorded)
    try:
        result = run_pipeline(con, root / "lake", cfg, Window.build(parse_as_of(scenario.AS_OF), cfg), None)
        yield con, result, counted
    finally:
        patch.undo()
        con.close()


def test_every_column_the_chain_makes_is_named_in_words(chain) -> None:
    con, _, _ = chain
    columns = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE table_name IN ?", [sorted(MADE)]
    ).fetchall()
    # every step's table or view is there but split_rows, which downsampling replaced
    assert {table for table, _ in columns} == MADE - {"split_rows"}
    for table, column in columns:
        assert re.fullmatch(r"_?[a-z]+(_[a-z]+)*", column), f"{table}.{column} is not in words"
        assert not ABBREVIATIONS & set(column.lstrip("_").split("_")), f"{table}.{column} abbreviates"


def test_every_counter_is_a_column_of_a_counting_query_in_sql(chain) -> None:
    _, result, counted = chain
    assert sorted(counted) == sorted(p.stem for p in (SQL_DIR / "counts").glob("*.sql"))
    from_sql = [name for names in counted.values() for name in names]
    for step, names in counted.items():
        text = load_sql(f"counts/{step}")
        assert all(re.search(rf"\bAS {name}\b", text) for name in names), f"counts/{step}.sql"
    # the component split's two counters come from its loop (pipeline._split_groups)
    loop = ["split_components", "split_component_rounds"]
    assert sorted(result.counts) == sorted(from_sql + loop)
    assert result.counts["train"] + result.counts["eval"] == result.counts["after_balance"]


def test_the_chain_files_are_the_steps(chain) -> None:
    """No step file is left out of STEPS, nor a counting query without its step."""
    files = {p.stem for p in Path(SQL_DIR).glob("[0-9][0-9]_*.sql")} - {"00_macros", *AFTER_CHAIN}
    assert files == {s for s in STEPS if s[0].isdigit()}
    assert {p.stem for p in (SQL_DIR / "counts").glob("*.sql")} <= set(STEPS)


def test_the_connection_draws_no_progress_bar_into_the_logs(tmp_path) -> None:
    # DuckDB 2 turns the bar on by default; on a nightly round's stderr it would interleave
    # carriage-return frames with the JSON log lines for every query over 2 s.
    from curation.config import CurationConfig
    from curation.pipeline import connect

    con = connect(CurationConfig(), tmp_path)
    assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)


# The window's actions per serving version, as defined over the lake itself: every copy of every
# recent action, its trace's version (any copy with one) or else its own. The chain counts them
# from the tables it already matched (q_window_versions.sql) instead of reading every trace id again.
WINDOW_VERSIONS_BY_DEFINITION = """
WITH
actions AS (
    SELECT trace_id, model_version FROM feedback_src
    WHERE event_time >= $cutoff AND event_time <= $as_of AND _ingested_at <= $as_of
),
served AS (
    SELECT trace_id, any_value(model_version) AS model_version FROM traces_src
    WHERE event_time <= $as_of AND _ingested_at <= $as_of AND model_version IS NOT NULL
    GROUP BY trace_id
)
SELECT coalesce(s.model_version, a.model_version) AS model_version, count(*) AS rows
FROM actions AS a LEFT JOIN served AS s ON a.trace_id = s.trace_id
WHERE coalesce(s.model_version, a.model_version) IS NOT NULL
GROUP BY ALL ORDER BY rows DESC, model_version
"""


def test_the_window_versions_are_counted_as_defined_over_the_lake(chain) -> None:
    con, result, _ = chain
    params = {"cutoff": result.params["cutoff"], "as_of": result.params["as_of"]}
    expected = [(str(v), int(n)) for v, n in con.execute(WINDOW_VERSIONS_BY_DEFINITION, params).fetchall()]
    assert result.window_versions == expected
    assert len(expected) >= 2  # the scenario's traces and its self-contained action name versions
