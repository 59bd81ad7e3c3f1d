"""The floor the curation benchmark measures beside the curation, in the same run: what no
curation of the lake can beat on this machine. ``match_floor`` is the one that holds at every
shape (the trace ids scanned once, the matched rows' text read and written once); ``copy_floor``
and ``keys_floor`` touch every trace's text and only bound lakes with a trace per feedback event."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any


def _open(lake: Path, out: Path, as_of: str, streams: tuple[str, ...]) -> tuple[Any, Any]:
    """The curation's config and a DuckDB connection with views ``<stream>_src`` over the
    window's files, as the curation opens them."""
    from curation.pipeline import Window, _source, connect
    from curation.run import parse_as_of
    from flywheel.config import defaults

    cfg = defaults().curation
    window = Window.build(parse_as_of(as_of), cfg)
    out.mkdir(parents=True, exist_ok=True)
    con = connect(cfg, Path(tempfile.mkdtemp(dir=out)))
    first, last = window.cutoff.date(), window.as_of.date()
    for stream in streams:
        lookback = dt.timedelta(days=cfg.trace_lookback_days if stream == "traces" else 0)
        _source(con, lake, stream, first - lookback, last)
    return cfg, con


def match_floor(lake: Path, out: Path, as_of: str) -> dict[str, int]:
    """The floor at every shape, whatever the share of traces with feedback: the trace ids of the
    window scanned once and matched to the feedback's (one hash join, nothing decided), then the
    matched traces' columns that the snapshot takes read once and written once, as the snapshot
    writer writes them. No dedupe, edits, conflicts, filters, caps, split, redaction or report."""
    cfg, con = _open(lake, out, as_of, ("feedback", "traces"))
    con.execute("CREATE TEMP TABLE ids AS SELECT DISTINCT hash(trace_id) AS t FROM feedback_src")
    con.execute(
        "CREATE TEMP TABLE pos AS SELECT t._pos FROM traces_src AS t SEMI JOIN ids ON hash(t.trace_id) = ids.t"
    )
    query = f"SELECT {_COLUMNS} FROM traces_src AS t SEMI JOIN pos AS p ON t._pos = p._pos"
    return {"rows": _write(con, query, out / "matched.parquet", cfg.snapshot_compression)}


def copy_floor(lake: Path, out: Path, as_of: str) -> dict[str, int]:
    """What no curation of this lake can beat here: the columns the snapshot takes from every trace
    in the window read once and written once, as the snapshot writer writes them, with nothing
    decided (no dedupe, join, filter, redaction, split or report). More rows than the snapshot
    has (every trace, not only those with feedback), fewer reads than a curation needs (one)."""
    cfg, con = _open(lake, out, as_of, ("traces",))
    return {
        "rows": _write(
            con, f"SELECT {_COLUMNS} FROM traces_src", out / "copy.parquet", cfg.snapshot_compression
        )
    }


# The trace columns a snapshot takes.
_COLUMNS = "prompt, prompt_format, completion, trace_id, model_version, session_id, user_id, tags"


def _write(con: Any, query: str, path: Path, compression: str) -> int:
    """Stream ``query``'s rows into ``path`` as the snapshot writer writes its files; the row count."""
    from curation.snapshot import _BATCH_ROWS, _SplitWriter

    reader = con.sql(query).to_arrow_reader(_BATCH_ROWS)
    writer = _SplitWriter(path, reader.schema, compression)
    rows = 0
    for batch in reader:
        writer.add(batch)
        rows += batch.num_rows
    writer.close()
    return rows


def keys_floor(lake: Path, out: Path, as_of: str) -> dict[str, int]:
    """The other part of the floor: what any curation must compute before it knows its rows, done
    bare. The window's feedback keys and traces' text hashed (one read of the text), then the
    decisions' set operations on those hashes with nothing else carried: copies of an event,
    latest action per user and trace, the join to traces, votes per prompt and completion,
    caps per prompt and per user, and the split's test per prompt. No counts, edits, flags,
    ordering or exactness checks (the curation reads real keys where hashes collide)."""
    cfg, con = _open(lake, out, as_of, ("feedback", "traces"))
    steps = [
        "CREATE TEMP TABLE f AS SELECT hash(event_id) AS e, hash(user_id, trace_id) AS g,"
        " hash(user_id) AS u, hash(trace_id) AS t, label = 'up' AS up FROM feedback_src",
        "CREATE TEMP TABLE tr AS SELECT hash(trace_id) AS t, hash(prompt) AS ph, hash(completion) AS ch,"
        " hash(session_id) AS s FROM traces_src",
        "CREATE TEMP TABLE copies AS SELECT e FROM f GROUP BY e HAVING count(*) > 1",
        "CREATE TEMP TABLE latest AS SELECT g FROM f GROUP BY g HAVING count(*) > 1",
        "CREATE TEMP TABLE j AS SELECT f.*, tr.ph, tr.ch, tr.s FROM f JOIN tr ON f.t = tr.t",
        "CREATE TEMP TABLE votes AS SELECT ph, ch FROM j GROUP BY ph, ch HAVING bool_or(up) AND NOT bool_and(up)",
        f"CREATE TEMP TABLE per_prompt AS SELECT ph FROM j GROUP BY ph HAVING count(*) > {cfg.max_per_prompt}",
        f"CREATE TEMP TABLE per_user AS SELECT u FROM j GROUP BY u HAVING count(*) > {cfg.max_per_user}",
        "CREATE TEMP TABLE held_out AS SELECT ph FROM j GROUP BY ph"
        f" HAVING bool_and(s % 1000000 < {round(cfg.eval_fraction * 1_000_000)})",
    ]
    for sql in steps:
        con.execute(sql)
    joined = con.execute("SELECT count(*) FROM j").fetchone()
    return {"rows": int(joined[0]) if joined else 0}
