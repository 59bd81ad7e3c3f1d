"""Bulk decoding of a whole batch in Arrow: the common case, where every record is valid.

Per-record Python (json.loads, checks, tuples) costs about as much as
kafka-python's own record decoding, which caps ingest near half the raw
consume rate. So a batch is first decoded in one go: the values are joined
into newline-delimited JSON, parsed by Arrow's C++ reader (which releases the
GIL) against the contract's types, and checked with vectorized compute.

`bulk_table` is deliberately conservative: it returns None at the first sign
of anything the per-record validator (ingest/schema.py) would judge, and the
caller then takes that slower path, which names every problem. For the
records it accepts, it produces exactly the rows the per-record path would,
so a record gets one verdict whatever batch it arrives in
(tests/ingest/test_fastpath.py and test_verdicts.py check this property). What
sends a batch to the slow path: a record that is empty, oversized, not UTF-8,
starts with a byte order mark or contains a raw newline; a record with more
brackets than _MAX_OPENERS (Arrow's reader slows down on deep nesting and
crashes on very deep nesting); any explicit JSON null; any unknown field; a batch mixing
prompts given as text and as messages (Arrow refuses the column; the batch then decodes each
form apart: `PartitionBatch._by_prompt_form`); a rating (kind "rating", with a score or a
category); an event time in any but the plainest RFC 3339 form (`T` or a space, at most 6
fraction digits, `Z` or +HH:MM); any type or value the contract rejects. Chat prompts (messages)
take this path: Arrow reads the rest of the row, and each prompt is stored as the contract's own
code stores it (`_messages`).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from core.lake import SCHEMAS, TS_US
from ingest.block import Block
from ingest.schema import (
    BOM,
    COLUMNS,
    END_TIME_US,
    LABELS,
    MIN_TIME_US,
    InvalidRecord,
    parse_json,
    prompt_columns,
)
from ingest.writer import coordinates

# A JSON null as an object member: Arrow cannot tell it from an absent field, Python can.
_NULL_MEMBER = re.compile(rb":\s*null\b")
# The word alone, found faster than by ``in`` (a third less time over a batch, measured), sparing
# most batches the pattern above.
_NULL = re.compile(rb"null")
# The event times Arrow's cast reads exactly as schema.parse_time does (RE2 syntax); the other
# RFC 3339 forms (lower-case t or z, more than 6 fraction digits) take the per-record path.
_PLAIN_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
# A record with no more "{" and "[" than this nests no deeper, which Arrow's reader handles in
# milliseconds; arrays nested 5,000 deep take it seconds, and some 300,000 deep crash the process.
_MAX_OPENERS = 256
# A rating's columns (schema._rating), null in every row this path takes.
_RATING = ("score", "scale_min", "scale_max")
# Every column a string in the event, in schema order: derived, so it cannot drift from the contract.
_NOT_PLAIN_STRINGS = {"prompt", "prompt_format", "tags", "schema_version", "extra", *_RATING}
_STRING_FIELDS = {
    stream: tuple(c for c in columns if c not in _NOT_PLAIN_STRINGS) for stream, columns in COLUMNS.items()
}
_REQUIRED = {"traces": ("trace_id", "model_version"), "feedback": ("event_id", "trace_id")}
# prompt (string or messages) and tags (an object) are left for Arrow to infer, then checked.
_EXPLICIT = {
    stream: pa.schema([(n, pa.string()) for n in names] + [("schema_version", pa.int64())])
    for stream, names in _STRING_FIELDS.items()
}
# Event fields this path reads: a rating's `score` and `scale` are not among them (a batch holding
# one is unknown here, and takes the per-record path), nor the columns they are stored in.
_KNOWN = {stream: set(COLUMNS[stream]) - {"prompt_format", "extra", *_RATING} for stream in COLUMNS}
_FAST_KINDS = ("thumb", "edit")
# One thread: a batch is one block (16 MB at most), which Arrow's thread pool would only hand
# over to another thread (a third more CPU per batch, measured); the read releases the GIL either way.
_READ = pj.ReadOptions(use_threads=False, block_size=1 << 24)


class _Reject(Exception):
    """This batch needs the per-record path."""


def _parse(stream: str, block: Block, max_record_bytes: int) -> pa.Table:
    lengths = block.value_lengths
    # A null value has length -1: an empty or null value, like an oversized one, is judged per record.
    if not len(block) or lengths.min() <= 0 or lengths.max() > max_record_bytes:
        raise _Reject
    buf = block.values
    if buf.count(b"\n") != len(block) - 1:
        raise _Reject
    # These scans hold the GIL, which the consumer thread needs: the word search and the ASCII
    # check are an order of magnitude cheaper than the pattern and the decode they spare.
    if _NULL.search(buf) and _NULL_MEMBER.search(buf):
        raise _Reject
    if not buf.isascii():
        try:
            buf.decode("utf-8")  # Arrow would silently replace bad bytes with U+FFFD
        except UnicodeDecodeError:
            raise _Reject from None
        if buf.startswith(BOM) or b"\n" + BOM in buf:  # Arrow skips a leading one; it is not JSON
            raise _Reject
    if not _shallow(buf, lengths):
        raise _Reject
    options = pj.ParseOptions(explicit_schema=_EXPLICIT[stream], unexpected_field_behavior="infer")
    try:
        table = pj.read_json(pa.BufferReader(buf), read_options=_READ, parse_options=options)
    except pa.ArrowInvalid:
        raise _Reject from None
    # Blank lines are skipped and "{}{}" makes two rows: the counts must match one to one.
    if table.num_rows != len(block) or not set(table.column_names) <= _KNOWN[stream]:
        raise _Reject
    return table


def _shallow(buf: bytes, lengths: np.ndarray) -> bool:
    """Whether no record holds more than _MAX_OPENERS brackets (and so cannot nest deeper)."""
    # In numpy, which releases the GIL the consumer thread needs, and costs a few ms per 10 MB
    # (bytes.count holds the GIL, and would have to count record by record).
    # "[" is 0x5B, "{" 0x7B: they differ in bit 0x20 alone
    where = np.flatnonzero((np.frombuffer(buf, np.uint8) | 0x20) == ord("{"))
    if len(where) <= _MAX_OPENERS:
        return True
    ends = np.cumsum(lengths + 1)  # each record's end, past its newline
    per_record = np.diff(np.searchsorted(where, ends), prepend=0)
    return int(per_record.max()) <= _MAX_OPENERS


def _const(n: int, text: str) -> pa.Array:
    # Not pa.array(np.full(..., dtype=object)): object arrays make pyarrow import pandas.
    return pa.nulls(n, pa.string()).fill_null(text)


def _all(mask: Any) -> bool:
    return bool(pc.all(mask).as_py()) if len(mask) else True


def _string(table: pa.Table, name: str) -> pa.ChunkedArray:
    col = table.column(name)
    if col.type != pa.string():
        raise _Reject
    return col


def _event_time(table: pa.Table) -> pa.ChunkedArray:
    col = _string(table, "event_time")
    if col.null_count or not _all(pc.match_substring_regex(col, _PLAIN_TIME)):
        raise _Reject
    try:
        times = pc.cast(col, TS_US)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _Reject from None
    # The same bounds as schema.parse_time: the instant in UTC, whatever the offset it was given in.
    bounds = pc.min_max(times.cast(pa.int64()))
    if bounds["min"].as_py() < MIN_TIME_US or bounds["max"].as_py() >= END_TIME_US:
        raise _Reject
    return times


def _prompt(table: pa.Table, block: Block, max_record_bytes: int, required: bool) -> tuple[Any, Any]:
    n = table.num_rows
    if "prompt" not in table.column_names:
        if required:
            raise _Reject
        return pa.nulls(n, pa.string()), pa.nulls(n, pa.string())
    col = table.column("prompt")
    if required and col.null_count:
        raise _Reject
    if pa.types.is_list(col.type):
        return _messages(col, block, max_record_bytes)
    if col.type != pa.string():
        raise _Reject  # a wrong type: the per-record path names it
    fmt = pc.if_else(pc.is_null(col), pa.scalar(None, pa.string()), pa.scalar("text"))
    return col, fmt


_PROMPT_KEY = b'"prompt":'


def _messages(col: pa.ChunkedArray, block: Block, max_record_bytes: int) -> tuple[Any, Any]:
    """Chat prompts (lists of messages, every prompt of the batch), stored as the contract stores them:
    compact JSON written by ``json.dumps`` (``prompt_columns``), byte for byte the per-record path's.

    Arrow has read the rest of each row. A prompt is first written in Arrow as ``json.dumps`` would
    write it (`_written_as_dumps`); when the record holds exactly that text after ``"prompt":``, it
    is the prompt's text, since parsing it and writing it again gives it back; the same with
    json.dumps's default separators. A prompt written otherwise (other escapes or spacing, keys in
    another order) is parsed and written by the contract's own code, about 10 us a record in Python, the rest about 1 us."""
    n = len(col)
    present = np.asarray(pc.is_valid(col))
    written = _written_as_dumps(col)
    found = np.zeros(n, bool)
    if written is not None:
        # Where each record's "prompt" key ends (the first such text: inside a string its quotes would
        # be escaped, and no other object of a row this path takes holds a list), and whether the
        # prompt as json.dumps writes it starts there, within the record: loops in C over the batch's
        # buffer, without a Python object per record. A key written with escapes is not found; a
        # null prompt's candidate, a newline, starts no value (_parse counted the newlines).
        buf = block.values
        starts = block.value_starts()
        ends = (starts[:-1] + block.value_lengths).tolist()
        keys = np.fromiter(
            map(buf.find, itertools.repeat(_PROMPT_KEY), starts[:-1].tolist(), ends), np.int64, n
        )
        after_key = np.where(keys >= 0, keys + len(_PROMPT_KEY), len(buf) + 1).tolist()

        def found_as(candidates: pa.Array) -> np.ndarray:
            texts = candidates.cast(pa.binary()).fill_null(b"\n").to_pylist()
            return np.fromiter(map(buf.startswith, texts, after_key, ends), bool, n)

        found = found_as(written)
        # Producers that call json.dumps with its default separators (", " and ": ") write the same
        # messages with spaces: found that way, the prompt is the same list, stored compact.
        spaced = None if not (present & ~found).any() else _written_as_dumps(col, spaced=True)
        if spaced is not None:
            found |= found_as(pc.binary_join_element_wise(" ", spaced, ""))
    missing = np.flatnonzero(present & ~found)
    if written is not None and not len(missing):
        prompts = written
    else:
        # The rest: parsed and written by the contract's own code, one by one.
        texts: list[str | None] = [None] * n if written is None else written.to_pylist()
        values = block.values.split(b"\n")
        problems: list[tuple[str | None, str]] = []
        for i in missing.tolist():
            try:
                texts[i], _ = prompt_columns(
                    parse_json(values[i], max_record_bytes).get("prompt"), False, problems
                )
            except InvalidRecord:
                raise _Reject from None
            if problems:
                raise _Reject
        prompts = pa.array(texts, pa.string())
    fmt = pc.if_else(pc.is_null(prompts), pa.scalar(None, pa.string()), pa.scalar("messages"))
    return prompts, fmt


# What json.dumps(..., ensure_ascii=False) escapes with a backslash and a letter; the backslash first,
# so that the others' backslashes are not doubled.
_SHORT_ESCAPES = (
    ("\\", "\\\\"),
    ('"', '\\"'),
    ("\n", "\\n"),
    ("\r", "\\r"),
    ("\t", "\\t"),
    ("\b", "\\b"),
    ("\f", "\\f"),
)
# The other control characters, which json.dumps writes as \u00XX: left to json.dumps itself.
_OTHER_CONTROLS = np.array([c for c in range(0x20) if chr(c) not in "\n\r\t\b\f"])


def _as_json_strings(values: pa.Array) -> pa.Array | None:
    """Each string's inside as json.dumps(ensure_ascii=False) writes it between its quotes (nulls
    stay null); None if one holds a control character that json.dumps writes as \\u00XX. A count of
    the characters json.dumps escapes, then a replacement only for those present."""
    if not len(values) or values.buffers()[2] is None:  # no characters at all
        return values
    offsets = np.frombuffer(values.buffers()[1], np.int32)[values.offset : values.offset + len(values) + 1]
    data = np.frombuffer(values.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    # Comparisons over the bytes, not a histogram of them: a tenth of the time (most text has no
    # control character but a newline, and few quotes).
    low = data < 0x20
    controls = np.bincount(data[low], minlength=0x20) if low.any() else np.zeros(0x20, np.int64)
    if controls[_OTHER_CONTROLS].any():
        return None
    for raw, escaped in _SHORT_ESCAPES:
        code = ord(raw)
        if controls[code] if code < 0x20 else np.count_nonzero(data == code):
            values = pc.replace_substring(values, raw, escaped)
    return values


def _written_as_dumps(col: pa.ChunkedArray, spaced: bool = False) -> pa.Array | None:
    """Each prompt as ``json.dumps(messages, separators=(",", ":"), ensure_ascii=False)`` writes it
    (``spaced``: with json.dumps's default separators, ", " and ": "), for messages of two string
    keys, role and content, in the order Arrow met them (null where the prompt is null); None when
    the batch's messages have another shape or a rare control character."""
    item, colon = (", ", ": ") if spaced else (",", ":")
    lists = col.combine_chunks()
    kind = lists.type.value_type
    if not pa.types.is_struct(kind) or sorted(f.name for f in kind) != ["content", "role"]:
        return None
    if any(f.type != pa.string() for f in kind):
        return None
    offsets = lists.offsets
    first, last = offsets[0].as_py(), offsets[-1].as_py()
    messages = lists.values.slice(first, last - first)  # the messages of every row, nulls' included
    pieces: list[Any] = []
    for i, field in enumerate(kind):
        field_values = pc.struct_field(messages, [i])
        values = None if field_values.null_count else _as_json_strings(field_values)
        if values is None:
            return None
        pieces += [("{" if i == 0 else item) + json.dumps(field.name) + colon + '"', values, '"']
    objects = pc.binary_join_element_wise(*pieces, "}", "")
    rows = pa.ListArray.from_arrays(pc.subtract(offsets, first), objects, mask=lists.is_null())
    return pc.binary_join_element_wise("[", pc.binary_join(rows, item), "]", "")


def _tags(table: pa.Table, n: int) -> Any:
    """The tags object as compact JSON with sorted keys, exactly as schema._extra/json.dumps write it."""
    if "tags" not in table.column_names:
        return _const(n, "{}")
    col = table.column("tags").combine_chunks()
    if not pa.types.is_struct(col.type) or not all(f.type == pa.string() for f in col.type):
        raise _Reject
    parts = []
    for i, field in sorted(enumerate(col.type), key=lambda p: p[1].name):
        # unlike .field(i), struct_field honours rows where tags is absent
        values = _as_json_strings(pc.struct_field(col, [i]))
        if values is None:
            raise _Reject
        key = json.dumps(field.name, ensure_ascii=False)
        piece = pc.binary_join_element_wise(f',{key}:"', values, '"', "")
        parts.append(pc.if_else(pc.is_null(values), "", piece))
    # Each part starts with ","; drop the first one.
    body = pc.utf8_slice_codeunits(pc.binary_join_element_wise(*parts, ""), 1) if parts else _const(n, "")
    return pc.binary_join_element_wise("{", body, "}", "")


def _schema_version(table: pa.Table, n: int) -> Any:
    col = table.column("schema_version")
    if col.null_count == n:
        return pa.array(np.ones(n, dtype=np.int32))
    if col.null_count or pc.min(col).as_py() < 1 or pc.max(col).as_py() >= 2**31:
        raise _Reject
    return pc.cast(col, pa.int32())


def _columns(stream: str, table: pa.Table, block: Block, max_record_bytes: int) -> dict[str, Any]:
    n = table.num_rows
    for name in _STRING_FIELDS[stream]:
        _string(table, name)
    for name in _REQUIRED[stream]:
        col = table.column(name)
        if col.null_count or not _all(pc.greater(pc.utf8_length(col), 0)):
            raise _Reject
    out: dict[str, Any] = {name: table.column(name) for name in _STRING_FIELDS[stream]}
    out["event_time"] = _event_time(table)
    out["schema_version"] = _schema_version(table, n)
    out["extra"] = _const(n, "{}")
    if stream == "traces":
        if table.column("completion").null_count:
            raise _Reject
        out["prompt"], out["prompt_format"] = _prompt(table, block, max_record_bytes, required=True)
        out["tags"] = _tags(table, n)
        return out
    kind = pc.fill_null(table.column("kind"), "thumb")
    label, edited = table.column("label"), table.column("edited_completion")
    if not _all(pc.is_in(kind, pa.array(_FAST_KINDS))):
        raise _Reject
    if label.null_count < n and not _all(pc.or_(pc.is_null(label), pc.is_in(label, pa.array(LABELS)))):
        raise _Reject
    thumbs = pc.equal(kind, "thumb")
    if not _all(pc.or_(pc.invert(thumbs), pc.is_valid(label))):
        raise _Reject
    if not _all(pc.or_(thumbs, pc.is_valid(edited))):
        raise _Reject
    out["kind"] = kind
    for name in _RATING:
        out[name] = pa.nulls(n, pa.float64())
    out["prompt"], out["prompt_format"] = _prompt(table, block, max_record_bytes, required=False)
    return out


def bulk_table(
    stream: str,
    topic: str,
    partition: int,
    records: Block | Sequence[Any],
    max_record_bytes: int,
    ingested_at_ms: int,
) -> pa.Table | None:
    """The batch's lake table if every record is valid and plain, else None (use the per-record path).

    ``records``: a Block, or records with ``value``, ``key``, ``offset`` and ``timestamp``."""
    block = records if isinstance(records, Block) else Block.from_records(records)
    try:
        table = _parse(stream, block, max_record_bytes)
        columns = _columns(stream, table, block, max_record_bytes)
    except _Reject:
        return None
    timestamps = pa.array(block.timestamps, pa.int64(), mask=block.timestamp_mask())
    arrays = coordinates(topic, partition, block.offsets, timestamps, ingested_at_ms)
    arrays += [columns[name] for name in COLUMNS[stream]]
    chunked = [a if isinstance(a, pa.ChunkedArray) else pa.chunked_array([a]) for a in arrays]
    return pa.Table.from_arrays(chunked, schema=SCHEMAS[stream])
