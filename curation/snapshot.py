"""Snapshots: content-derived ids, atomic publication, and lookup for the stages downstream.

``lake/curated/<id>/`` is built in ``.staging-<id>-<pid>/`` and renamed into place when
complete, so a reader sees a whole snapshot or none. A snapshot is never rewritten: when
one with the same id exists, the run returns it. A snapshot that fails a critical check
is kept as ``_rejected-<id>/`` for the reviewer and is never returned by
:func:`core.snapshot.latest_snapshot`. Reading a snapshot is :mod:`core.snapshot`'s; this module
writes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.files import sha256_file
from core.snapshot import MANIFEST, SPLITS
from curation import pii
from curation.pipeline import load_sql, sql_literal, used_params

# The row sources 07_filtered.sql makes.
SOURCES = ("thumb", "edit", "edit_original", "rating")
# The kinds the fetch redacts, as named in the snapshot's `redacted` column (13_fetch.sql).
PII_KINDS = pii.KINDS
# The snapshot files' writer: rows per batch from DuckDB, rows per row group, the columns that
# are dictionary-encoded and the text columns, which get no min/max statistics.
_BATCH_ROWS = 1 << 16
_ROW_GROUP_ROWS = 1 << 17
_DICTIONARY_COLUMNS = ("prompt_format", "model_version", "source", "tags", "redacted")
_TEXT_COLUMNS = ("prompt", "messages", "completion")
# Bump when the meaning of a snapshot's rows changes, so old and new never share an id.
FORMAT_VERSION = 1


def content_digest(
    con: duckdb.DuckDBPyConnection,
    weights: dict[str, float],
    redact: bool,
    phone_regions: tuple[str, ...] = pii.DEFAULT_PHONE_REGIONS,
    pairs: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The snapshot id and what it was derived from: the rows per split and their digests (taken
    from ``final_rows`` before the text is read, see 14_content_hash.sql), the code that turns
    them into text (the fetch and redaction SQL, the Python redaction stage with libphonenumber's
    version, whether it redacts and the phone regions), the KTO weights, and the pairing step's SQL
    and settings (``pairs``, curation.pairs.digest_basis; None when it is off)."""
    parts = {
        split: {"rows": int(n), "xor": x, "sum": s}
        for split, n, x, s in con.execute(load_sql("14_content_hash")).fetchall()
    }
    code = hashlib.sha256((load_sql("00_macros") + load_sql("13_fetch")).encode()).hexdigest()[:16]
    # DuckDB's hash() may change between versions: a different version must give a different id.
    basis = {
        "format": FORMAT_VERSION,
        "duckdb": duckdb.__version__,
        "splits": parts,
        "kto": weights,
        "fetch_sql": code,
        "redact_pii": redact,
        "pii_checked": pii.code_digest() if redact else None,
        "pii_phone_regions": list(pii.check_regions(phone_regions)) if redact else None,
        "pairs": pairs,
    }
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()
    return f"snap-{digest[:16]}", basis


def write_splits(
    con: duckdb.DuckDBPyConnection, folder: Path, params: dict[str, Any], compression: str
) -> dict[str, str]:
    """Read the text of the rows in ``final_rows`` and write ``train.parquet`` and
    ``eval.parquet``; returns their sha256. Afterwards view ``out`` reads both files back with a
    ``split`` column (for the report).

    13_fetch.sql streams both splits at once, as Arrow batches, and each batch's rows go to their
    split's writer: the lake's text is read once for both files (a COPY per split read it twice;
    DuckDB's COPY partitioned by split ran out of memory at 10 M rows). Row order inside a file
    is not part of the contract (the content digest is order-free, and training and evals order
    rows by their own keys), so the stream runs on every thread without a sort of the text.
    """
    # Only what the fetch needs, each in as few bytes as it takes: these rows are the build side
    # of the fetch's joins, which must fit in memory beside the text streaming past them.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE final_rows AS SELECT feedback_pos, trace_pos, from_trace, label,"
        f" source::ENUM({', '.join(map(sql_literal, SOURCES))}) AS source, split = 'eval' AS is_eval"
        " FROM final_rows"
    )
    sql = load_sql("13_fetch")
    # con.sql streams; a cursor's result would be copied once more on its way to Arrow
    reader = con.sql(sql, params=used_params(sql, params)).to_arrow_reader(_BATCH_ROWS)
    flag_at = reader.schema.get_field_index("is_eval")
    schema = reader.schema.remove(flag_at)
    writers: dict[str, _SplitWriter] = {}
    try:
        for split in SPLITS:
            writers[split] = _SplitWriter(folder / f"{split}.parquet", schema, compression)
        for batch in reader:
            is_eval = batch.column(flag_at)
            rows = batch.remove_column(flag_at)
            writers["eval"].add(rows.filter(is_eval))
            writers["train"].add(rows.filter(pc.invert(is_eval)))
    except BaseException:
        for writer in writers.values():
            writer.discard()  # the caller removes the partial files with their folder
        raise
    for writer in writers.values():
        writer.close()
    hashes = {f"{split}.parquet": sha256_file(folder / f"{split}.parquet") for split in SPLITS}
    con.execute(
        "CREATE OR REPLACE TEMP VIEW out AS "
        + " UNION ALL ".join(
            f"SELECT *, '{split}' AS split FROM read_parquet({sql_literal(folder / f'{split}.parquet')})"
            for split in SPLITS
        )
    )
    return hashes


class _SplitWriter:
    """One snapshot file: batches are gathered into row groups of about ``_ROW_GROUP_ROWS`` rows
    (the eval split gets a few rows from each batch, and a row group per batch would be tiny)."""

    def __init__(self, path: Path, schema: pa.Schema, compression: str) -> None:
        self._writer = pq.ParquetWriter(
            path,
            schema,
            compression=compression,
            # few distinct values: dictionaries shrink them; ids and text would only pay to try
            use_dictionary=[c for c in _DICTIONARY_COLUMNS if c in schema.names],
            # nothing filters on the text by its min/max
            write_statistics=[c for c in schema.names if c not in _TEXT_COLUMNS],
        )
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._pending.append(batch)
            self._rows += batch.num_rows
            if self._rows >= _ROW_GROUP_ROWS:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending), row_group_size=self._rows)
            self._pending, self._rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def discard(self) -> None:
        """Close the file without writing what is pending, after a failure: the first error is
        the one to report, so another one here is not raised."""
        self._pending, self._rows = [], 0
        with contextlib.suppress(Exception):
            self._writer.close()


def pii_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows in which each PII kind was redacted (from the snapshot's ``redacted`` column), and
    rows in which any was (``pii_any``)."""
    found = ", ".join(f"count_if(list_contains(string_split(redacted, ','), '{k}'))" for k in PII_KINDS)
    row = con.execute(f"SELECT {found}, count_if(redacted <> '') FROM out").fetchone()
    assert row is not None
    counts = {f"pii_{k}": int(v or 0) for k, v in zip(PII_KINDS, row[:-1], strict=True)}
    counts["pii_any"] = int(row[-1] or 0)
    return counts


def publish(staging: Path, final: Path) -> Path:
    """Rename a complete staging folder into place; if another run got there first, keep theirs."""
    try:
        os.rename(staging, final)
    except OSError:
        if (final / MANIFEST).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            return final
        raise
    return final


def reject(staging: Path, snapshot_id: str) -> Path:
    """Keep a snapshot that failed a critical check where a reviewer can read its report."""
    target = staging.parent / f"_rejected-{snapshot_id}"
    shutil.rmtree(target, ignore_errors=True)
    os.rename(staging, target)
    return target
