"""The event contract (docs/contracts.md): one Kafka record in, one lake row out.

This module is the contract's only implementation: ingest imports it as ``ingest.schema``
(a re-export), and apps get it from the light ``flywheel-events`` distribution without
anything else of flywheel. It imports only the standard library.

`decode(stream, value)` turns the raw bytes of one record into a tuple in the
column order of its stream (`TRACE_COLUMNS` or `FEEDBACK_COLUMNS`), or raises
:class:`InvalidRecord` naming every problem it found: the field and what is
wrong with it. Unknown extra fields are kept, as a JSON object in `extra`.
`to_event` is the inverse, used by the round-trip property test and by anyone
who wants an event back from a lake row.

This runs once per record on the ingest hot path, so it is written as flat
code over one dict (fields are popped as they are checked; what remains is
`extra`) rather than as a generic schema walker.

The limits are part of the contract (docs/contracts.md), so that every record
the validator accepts is one the writer can store: strict JSON (no NaN,
Infinity or -Infinity, no byte order mark, no number that overflows a 64-bit
float), integers of at most MAX_INT_DIGITS digits, nesting of at most
MAX_DEPTH levels, event times in RFC 3339 whose instant in UTC lies in
MIN_YEAR..MAX_YEAR. Ingest's bulk path (ingest/fastpath.py) applies the same rules.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any, NoReturn

STREAMS = ("traces", "feedback")
TRACE_COLUMNS = (
    "trace_id",
    "event_time",
    "model_version",
    "prompt",
    "prompt_format",
    "completion",
    "session_id",
    "user_id",
    "tags",
    "schema_version",
    "extra",
)
FEEDBACK_COLUMNS = (
    "event_id",
    "trace_id",
    "event_time",
    "kind",
    "label",
    "edited_completion",
    "user_id",
    "comment",
    "prompt",
    "prompt_format",
    "completion",
    "model_version",
    "score",
    "scale_min",
    "scale_max",
    "schema_version",
    "extra",
)
COLUMNS = {"traces": TRACE_COLUMNS, "feedback": FEEDBACK_COLUMNS}

# Years outside this range are clock bugs or unit mix-ups (seconds vs milliseconds), not events.
# The range holds for the instant in UTC (the lake stores UTC and files it by its UTC date), so
# 1999-12-31T23:30:00-01:00 (2000-01-01T00:30:00Z) is in it and 2000-01-01T00:30:00+01:00 is not.
MIN_YEAR = 2000
MAX_YEAR = 2100
KINDS = ("thumb", "edit", "rating")
LABELS = ("up", "down")  # of a thumb or an edit; a rating's label is a category (any non-empty string)
# Limits every record must keep, whichever path decodes it (docs/contracts.md, "Limits").
MAX_DEPTH = 64  # levels of nesting; the record's own object is level 1
MAX_INT_DIGITS = 100  # digits of an integer literal (sign not counted)
BOM = b"\xef\xbb\xbf"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_US = dt.timedelta(microseconds=1)
# First and one past the last microsecond of the accepted range, in UTC, since the epoch.
MIN_TIME_US = (dt.datetime(MIN_YEAR, 1, 1, tzinfo=dt.UTC) - _EPOCH) // _ONE_US
END_TIME_US = (dt.datetime(MAX_YEAR + 1, 1, 1, tzinfo=dt.UTC) - _EPOCH) // _ONE_US
# RFC 3339 section 5.6 date-time: "T" or "t" (or a space, its section 5.6 note) between date and
# time, any number of fraction digits (past the sixth dropped: the lake stores microseconds), and
# Z, z or +HH:MM/-HH:MM with HH 00-23 and MM 00-59 (RFC 3339's time-numoffset; Python's
# fromisoformat would take +01:60 as +02:00). Only ASCII digits: Python's \d would take other
# scripts' digits too.
_DATE_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
_RFC3339 = re.compile(_DATE_TIME + r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])")
_LOCAL_TIME = re.compile(_DATE_TIME)
_COMPACT = (",", ":")


class InvalidRecord(ValueError):
    """A record that breaks the contract: `reason` is readable, `field` names the culprit (or None)."""

    def __init__(self, problems: list[tuple[str | None, str]], event_time: int | None = None) -> None:
        self.problems = problems
        self.event_time = event_time  # microseconds, when the record's own time could be read
        self.reason = "; ".join(f"{f}: {m}" if f else m for f, m in problems)
        fields = [f for f, _ in problems if f]
        self.field = ",".join(dict.fromkeys(fields)) if fields else None
        super().__init__(self.reason)


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _refuse(message: str) -> NoReturn:
    raise InvalidRecord([(None, message)])


def _parse_int(literal: str) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_INT_DIGITS:
        _refuse(
            f"an integer of {digits} digits, over the limit of {MAX_INT_DIGITS}; "
            "send a number that large as a string"
        )
    return int(literal)


def _parse_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        _refuse(f"the number {literal[:32]} is out of the range of a 64-bit float; send it as a string")
    return number


def _parse_constant(name: str) -> NoReturn:
    _refuse(f"{name} is not JSON (RFC 8259 has no NaN or Infinity); send null or a string instead")


# Strict JSON: Python's decoder alone takes NaN and Infinity, and integers of any length up to
# the interpreter's limit (4300 digits), over which it raises a ValueError that is not a JSON error.
_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels, the limit (the record's object is level 1)"


def _depth_over(doc: Any, limit: int) -> bool:
    """Whether ``doc`` nests more than ``limit`` levels (iterative: no recursion limit to hit)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if type(value) is dict:
            stack.extend((v, depth + 1) for v in value.values() if type(v) in (dict, list))
        elif type(value) is list:
            stack.extend((v, depth + 1) for v in value if type(v) in (dict, list))
    return False


def parse_json(value: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Bytes to a JSON object, or InvalidRecord saying why not."""
    if value is None:
        raise InvalidRecord([(None, "record has no value (a tombstone); every event is a JSON object")])
    if len(value) > max_bytes:
        raise InvalidRecord(
            [(None, f"record is {len(value)} bytes, over the limit of {max_bytes} (ingest.max_record_bytes)")]
        )
    if value.startswith(BOM):
        _refuse(
            "starts with a UTF-8 byte order mark (EF BB BF), which JSON does not allow "
            "(RFC 8259 section 8.1); have the producer send the object without it"
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecord([(None, f"not valid UTF-8: {exc.reason} at byte {exc.start}")]) from None
    try:
        doc = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidRecord(
            [(None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from None
    except RecursionError:
        _refuse(_TOO_DEEP)
    if type(doc) is not dict:
        raise InvalidRecord([(None, f"expected a JSON object, got a JSON {_kind_of(doc)}")])
    # Every level opens a bracket: most records have too few for the walk to be needed.
    if value.count(b"{") + value.count(b"[") > MAX_DEPTH and _depth_over(doc, MAX_DEPTH):
        _refuse(_TOO_DEEP)
    if "\\u" in text:
        # An escaped lone surrogate ("\ud800") is valid JSON but not encodable as UTF-8;
        # Arrow would reject the whole batch later, so find it now (rare: only with escapes).
        problems: list[tuple[str | None, str]] = []
        _check_encodable(doc, problems)
        if problems:
            raise InvalidRecord(problems)
    return doc


def _check_encodable(value: Any, problems: list[tuple[str | None, str]], where: str | None = None) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append((where, "contains an unpaired UTF-16 surrogate escape"))
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_encodable(k, problems, where)
            _check_encodable(v, problems, k if where is None else where)
    elif isinstance(value, list):
        for v in value:
            _check_encodable(v, problems, where)


def parse_time(value: Any, problems: list[tuple[str | None, str]], name: str = "event_time") -> int | None:
    """RFC 3339 with an offset -> microseconds since the epoch (UTC), in MIN_YEAR..MAX_YEAR in UTC."""
    if value is None:
        problems.append((name, "missing (required)"))
        return None
    if type(value) is not str:
        problems.append((name, f"expected an RFC 3339 string, got a JSON {_kind_of(value)}"))
        return None
    if not _RFC3339.fullmatch(value):
        if _LOCAL_TIME.fullmatch(value):
            problems.append((name, f"{value[:64]!r} has no UTC offset; add Z or +HH:MM"))
        else:
            problems.append(
                (name, f"{value[:64]!r} is not an RFC 3339 timestamp (e.g. 2025-01-31T12:00:00Z)")
            )
        return None
    try:
        # fromisoformat takes only "T" and "Z" in capitals, and drops fraction digits past the sixth.
        when = dt.datetime.fromisoformat(value.upper())
    except ValueError as exc:
        problems.append((name, f"{value[:64]!r} is not a valid date and time ({exc})"))
        return None
    micros = (when - _EPOCH) // _ONE_US
    if not MIN_TIME_US <= micros < END_TIME_US:
        try:
            utc = f"{format_time(micros)} in UTC, "
            year = (_EPOCH + micros * _ONE_US).year
        except OverflowError:
            utc, year = "", when.year
        problems.append((name, f"{value[:64]!r} is {utc}year {year}, outside {MIN_YEAR}..{MAX_YEAR} (UTC)"))
        return None
    return micros


def _shown(value: str) -> str:
    return f"{value[:32]!r}" if value else "an empty string"


def _text(
    doc: dict[str, Any], name: str, required: bool, problems: list[tuple[str | None, str]]
) -> str | None:
    value = doc.pop(name, None)
    if type(value) is str:
        if required and not value:
            problems.append((name, "is empty"))
        return value
    if value is None:
        if required:
            problems.append((name, "missing (required)"))
        return None
    problems.append((name, f"expected a string, got a JSON {_kind_of(value)}"))
    return None


def _prompt(doc: dict[str, Any], required: bool, problems: list[tuple[str | None, str]]) -> tuple[Any, Any]:
    return prompt_columns(doc.pop("prompt", None), required, problems)


def prompt_columns(value: Any, required: bool, problems: list[tuple[str | None, str]]) -> tuple[Any, Any]:
    """An event's ``prompt`` as the lake stores it: (text, "text"), (messages as compact JSON,
    "messages"), or (None, None); what is wrong with it is added to ``problems``."""
    if type(value) is str:
        return value, "text"
    if value is None:
        if required:
            problems.append(("prompt", "missing (required)"))
        return None, None
    if type(value) is list:
        for i, msg in enumerate(value):
            if (
                type(msg) is not dict
                or type(msg.get("role")) is not str
                or type(msg.get("content")) is not str
            ):
                problems.append(("prompt", f"message {i} is not an object with string role and content"))
                return None, None
        return json.dumps(value, separators=_COMPACT, ensure_ascii=False), "messages"
    problems.append(("prompt", f"expected a string or a list of messages, got a JSON {_kind_of(value)}"))
    return None, None


def _schema_version(doc: dict[str, Any], problems: list[tuple[str | None, str]]) -> int:
    value = doc.pop("schema_version", None)
    if value is None:
        return 1
    if type(value) is not int or not 1 <= value < 2**31:
        problems.append(("schema_version", f"expected a positive integer, got {json.dumps(value)[:32]}"))
        return 1
    return value


def _extra(doc: dict[str, Any]) -> str:
    # allow_nan=False: should a non-finite number ever get past parse_json, fail rather than store non-JSON.
    return (
        json.dumps(doc, separators=_COMPACT, ensure_ascii=False, sort_keys=True, allow_nan=False)
        if doc
        else "{}"
    )


def decode_trace(doc: dict[str, Any]) -> tuple[Any, ...]:
    """A parsed `llm.traces` object -> a row in TRACE_COLUMNS order (consumes `doc`)."""
    problems: list[tuple[str | None, str]] = []
    trace_id = _text(doc, "trace_id", True, problems)
    event_time = parse_time(doc.pop("event_time", None), problems)
    model_version = _text(doc, "model_version", True, problems)
    prompt, prompt_format = _prompt(doc, True, problems)
    # An empty answer is a real (bad) answer, so only its absence is an error.
    completion = _text(doc, "completion", False, problems)
    if completion is None and "completion" not in {f for f, _ in problems}:
        problems.append(("completion", "missing (required)"))
    session_id = _text(doc, "session_id", False, problems)
    user_id = _text(doc, "user_id", False, problems)
    tags = doc.pop("tags", None)
    if tags is None:
        tags_json = "{}"
    elif type(tags) is dict and all(type(v) is str for v in tags.values()):
        tags_json = json.dumps(tags, separators=_COMPACT, ensure_ascii=False, sort_keys=True)
    else:
        problems.append(("tags", "expected an object of string to string"))
        tags_json = "{}"
    schema_version = _schema_version(doc, problems)
    if problems:
        raise InvalidRecord(problems, event_time)
    return (
        trace_id,
        event_time,
        model_version,
        prompt,
        prompt_format,
        completion,
        session_id,
        user_id,
        tags_json,
        schema_version,
        _extra(doc),
    )


def decode_feedback(doc: dict[str, Any]) -> tuple[Any, ...]:
    """A parsed `llm.feedback` object -> a row in FEEDBACK_COLUMNS order (consumes `doc`)."""
    problems: list[tuple[str | None, str]] = []
    event_id = _text(doc, "event_id", True, problems)
    trace_id = _text(doc, "trace_id", True, problems)
    event_time = parse_time(doc.pop("event_time", None), problems)
    kind = _text(doc, "kind", False, problems)
    if kind is None and "kind" not in {f for f, _ in problems}:
        kind = "thumb"  # absent: a thumb; an empty string is an error like any value not in KINDS
    label = _text(doc, "label", False, problems)
    edited = _text(doc, "edited_completion", False, problems)
    if kind is not None and kind not in KINDS:
        problems.append(("kind", f"{_shown(kind)} is not one of {', '.join(KINDS)}"))
    score, scale_min, scale_max = _rating(doc, kind, label, problems)
    if kind == "rating":
        if label == "":
            problems.append(("label", "is empty (a rating's category is a non-empty string)"))
    elif label is not None and label not in LABELS:
        problems.append(("label", f"{_shown(label)} is not one of {', '.join(LABELS)}"))
    elif label is None and kind == "thumb":
        problems.append(("label", "missing (required for a thumb: up or down)"))
    if kind == "edit" and edited is None:
        problems.append(("edited_completion", "missing (required for an edit)"))
    user_id = _text(doc, "user_id", False, problems)
    comment = _text(doc, "comment", False, problems)
    prompt, prompt_format = _prompt(doc, False, problems)
    completion = _text(doc, "completion", False, problems)
    model_version = _text(doc, "model_version", False, problems)
    schema_version = _schema_version(doc, problems)
    if problems:
        raise InvalidRecord(problems, event_time)
    return (
        event_id,
        trace_id,
        event_time,
        kind,
        label,
        edited,
        user_id,
        comment,
        prompt,
        prompt_format,
        completion,
        model_version,
        score,
        scale_min,
        scale_max,
        schema_version,
        _extra(doc),
    )


def _number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _rating(
    doc: dict[str, Any], kind: str | None, label: str | None, problems: list[tuple[str | None, str]]
) -> tuple[float | None, float | None, float | None]:
    """A rating's `score` on its declared `scale` ({"min": a, "max": b}, a < b, a <= score <= b),
    or its categorical `label`: exactly one of the two. Other kinds carry neither."""
    score, scale = doc.pop("score", None), doc.pop("scale", None)
    if kind != "rating":
        if kind in KINDS:  # a kind outside KINDS is already an error
            for name, value in (("score", score), ("scale", scale)):
                if value is not None:
                    problems.append((name, f'only a rating (kind "rating") carries a {name}, not a {kind}'))
        return None, None, None
    if score is None and scale is None:
        if label is None:
            problems.append(
                (
                    "score",
                    'missing: a rating has a score and its scale, e.g. "score": 4, '
                    '"scale": {"min": 1, "max": 5}, or a categorical label',
                )
            )
        return None, None, None
    if label is not None:
        problems.append(("label", "a rating has a score or a categorical label, not both"))
    ok = True
    if score is None:
        problems.append(("score", "missing (required with a scale)"))
        ok = False
    elif not _number(score):
        problems.append(("score", f"expected a number, got a JSON {_kind_of(score)}"))
        ok = False
    if scale is None:
        problems.append(("scale", 'missing (required with a score), e.g. {"min": 1, "max": 5}'))
        return None, None, None
    if (
        type(scale) is not dict
        or set(scale) != {"min", "max"}
        or not _number(scale["min"])
        or not _number(scale["max"])
    ):
        problems.append(("scale", 'expected {"min": number, "max": number} and nothing else'))
        return None, None, None
    low, high = float(scale["min"]), float(scale["max"])
    if not low < high:
        problems.append(("scale", f"min ({scale['min']}) must be below max ({scale['max']})"))
        return None, None, None
    if ok and not low <= score <= high:
        problems.append(("score", f"{score} is outside its scale {scale['min']}..{scale['max']}"))
    return (float(score) if ok else None), low, high


DECODERS = {"traces": decode_trace, "feedback": decode_feedback}


def decode(stream: str, value: bytes | None, max_bytes: int = 1024 * 1024) -> tuple[Any, ...]:
    """Raw record bytes -> a row of `stream`, or InvalidRecord."""
    return DECODERS[stream](parse_json(value, max_bytes))


def format_time(micros: int) -> str:
    """Microseconds since the epoch -> RFC 3339 in UTC."""
    return (_EPOCH + dt.timedelta(microseconds=micros)).isoformat().replace("+00:00", "Z")


def to_event(stream: str, row: dict[str, Any]) -> dict[str, Any]:
    """A lake row (column name -> value) back to the event it came from, with defaults filled in."""
    event: dict[str, Any] = json.loads(row.get("extra") or "{}")
    for name in COLUMNS[stream]:
        value = row.get(name)
        if name in ("extra", "prompt_format", "scale_max") or value is None:
            continue
        if name == "scale_min":
            event["scale"] = {"min": value, "max": row.get("scale_max")}
            continue
        if name == "event_time":
            value = format_time(value) if isinstance(value, int) else value.isoformat().replace("+00:00", "Z")
        elif name == "prompt" and row.get("prompt_format") == "messages":
            value = json.loads(value)
        elif name == "tags":
            value = json.loads(value)
            if not value:
                continue
        event[name] = value
    return event
