"""PII that takes more than a pattern to tell apart from other numbers.

The fetch (``sql/13_fetch.sql``) redacts in two stages. DuckDB's RE2 macros (``sql/00_macros.sql``)
replace what a pattern alone identifies: secrets (API keys, JWTs, private-key blocks), emails and
IPv4 addresses, on every thread. The texts still holding a long run of digits, a hex group followed
by a colon or the start of an IBAN (``pii_py_candidate``) then go, a vector at a time, through
:func:`redact_batch`, a vectorized Arrow UDF registered as ``pii_checked``, which redacts, in
this order:

- IPv6 addresses (``[IP]``): what parses as one (:mod:`ipaddress`), with a decimal digit in it;
- IBANs (``[IBAN]``): a known country's length and the ISO 13616 mod-97 checksum;
- card numbers (``[CARD]``): 12-19 digits written whole or in the groups cards are printed in
  (4-4-4-4, 4-6-5, ...), an issuer's prefix and length, and the Luhn checksum, so ISBNs and order
  ids such as ``907-4583985-8330056`` stay;
- US social security numbers (``[SSN]``): ``AAA-GG-SSSS`` (or spaced, or nine digits right after
  "SSN"), never area 000, 666 or 900-999, group 00 or serial 0000;
- phone numbers (``[PHONE]``): Google's libphonenumber (the ``phonenumbers`` package), numbers in
  international format and national numbers of each region in ``curation.pii_phone_regions``,
  valid for their region and grouped as that region writes them (``Leniency.STRICT_GROUPING``).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import phonenumbers
import pyarrow as pa
from phonenumbers import Leniency, PhoneNumberMatcher, PhoneNumberType

# Every kind, in the order the snapshot's `redacted` column lists them (sql/13_fetch.sql).
KINDS = ("email", "card", "ip", "phone", "ssn", "iban", "secret")
# The kinds this module finds (the rest are RE2 macros), in the order it replaces them.
CHECKED_KINDS = ("ip", "iban", "card", "ssn", "phone")
TOKENS = {kind: f"[{kind.upper()}]" for kind in KINDS}
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN")

# ---------------------------------------------------------------------------------------------
# IP addresses. IPv6: hex groups and colons (perhaps ending in an IPv4 address, perhaps with a
# %zone), parsed by ipaddress. IPv4: four decimal octets, not inside a longer dotted number.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?"
    r"(?:%[0-9A-Za-z_.]+)?(?![\w:]|\.\d)"
)


def _ipv6(match: re.Match[str]) -> bool:
    text = match.group(0)
    if not any(c.isdigit() for c in text):
        return False  # `cafe::bad`, `a::b`: names in code, not addresses anyone was given
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# IBAN: the lengths of the IBAN registry (SWIFT, ISO 13616), and the mod-97 check.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
# (Patterns start with a character class, not a lookbehind, so that `re` skips ahead to it; the
# lookbehind follows the first character.)
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}")


def iban_valid(compact: str) -> bool:
    """``compact`` (no spaces) has its country's length and passes the ISO 13616 mod-97 check."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum() or not compact.isascii():
        return False
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def _iban_end(match: re.Match[str]) -> int | None:
    """Where the IBAN starting at ``match`` ends, or None: the match runs greedily over the groups
    that follow, so it is cut at its country's length (at a group's end)."""
    text = match.group(0)
    length = IBAN_LENGTHS.get(text[:2])
    if length is None:
        return None
    seen = 0
    for i, c in enumerate(text):
        if c != " ":
            seen += 1
        if seen == length:
            end = i + 1
            if end < len(text) and text[end] != " ":
                return None  # the country's length ends inside a group: not an IBAN as written
            return match.start() + end if iban_valid(text[:end].replace(" ", "")) else None
    return None


# ---------------------------------------------------------------------------------------------
# Cards: whole, or in 4-digit groups (4-4-4-4, 4-4-4-4-3, ...), or Amex/Diners' 4-6-5 and 4-6-4,
# with one kind of separator; then an issuer's prefix and length, and Luhn.
_CARD = re.compile(
    r"\d(?<![\w.,/-]\d)(?:\d{11,18}|\d{3}([ -])\d{4}(?:\1\d{4}){1,2}(?:\1\d{1,4})?|\d{3}([ -])\d{6}\2\d{4,5})"
    r"(?![\w-]|[.,/]\d)"
)
# (prefix range, allowed lengths) of the card networks (ISO/IEC 7812 issuer identification numbers)
_ISSUERS: tuple[tuple[int, int, tuple[int, ...]], ...] = (
    (4, 4, (13, 16, 19)),  # Visa
    (51, 55, (16,)),  # Mastercard
    (2221, 2720, (16,)),  # Mastercard 2-series
    (34, 34, (15,)),  # American Express
    (37, 37, (15,)),
    (6011, 6011, (16, 17, 18, 19)),  # Discover
    (644, 649, (16, 17, 18, 19)),
    (65, 65, (16, 17, 18, 19)),
    (3528, 3589, (16, 17, 18, 19)),  # JCB
    (300, 305, (14, 15, 16, 17, 18, 19)),  # Diners Club
    (36, 36, (14, 15, 16, 17, 18, 19)),
    (38, 39, (16, 17, 18, 19)),
    (62, 62, (16, 17, 18, 19)),  # UnionPay
    (50, 50, (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    (56, 58, (12, 13, 14, 15, 16, 17, 18, 19)),
    (6304, 6304, (12, 13, 14, 15, 16, 17, 18, 19)),
    (6759, 6759, (12, 13, 14, 15, 16, 17, 18, 19)),
    (2200, 2204, (16, 17, 18, 19)),  # Mir
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_valid(digits: str) -> bool:
    """An issuer's prefix and length, and the Luhn checksum."""
    issued = any(
        lo <= int(digits[: len(str(lo))]) <= hi and len(digits) in lengths for lo, hi, lengths in _ISSUERS
    )
    return issued and luhn_valid(digits)


def _card(match: re.Match[str]) -> bool:
    return card_valid(match.group(0).replace(" ", "").replace("-", ""))


# ---------------------------------------------------------------------------------------------
# US social security numbers.
_SSN = re.compile(r"\d(?<![\w.,/-]\d)\d\d([- ])(\d{2})\1(\d{4})(?![\w-]|[.,/]\d)")
# nine bare digits are an SSN only right after the words (looked for only in texts that have them)
_SSN_SAID = re.compile(r"(?i:\b(?:ssn|social security)\b)[^\d\n]{0,20}?(?<!\d)(\d{3})(\d{2})(\d{4})(?!\w)")


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """The SSA's rules: no area 000, 666 or 900-999, no group 00, no serial 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ssn_spans(text: str) -> list[tuple[int, int]]:
    spans = [m.span() for m in _SSN.finditer(text) if ssn_valid(m.group(0)[:3], m.group(2), m.group(3))]
    lowered = text.lower()
    if "ssn" in lowered or "social security" in lowered:
        spans += [
            (m.start(1), m.end(3))
            for m in _SSN_SAID.finditer(text)
            if ssn_valid(m.group(1), m.group(2), m.group(3))
        ]
    return _merge(spans)


# ---------------------------------------------------------------------------------------------
# Phone numbers: runs of digits and the separators numbers are written with (with a leading + or
# "(") are handed, with a character on either side, to libphonenumber's matcher.
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015"
_PHONE_RUN = re.compile(rf"[+(\d][\d ()./\-\u00a0{_DASHES}]{{5,}}\d")
# numbers of these types are the only ones written as bare digits (no separator, trunk prefix or +)
_BARE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
_DECIMAL = re.compile(r"\d+[.,]\d+")
_OPERATORS = set("+-*/=^%×÷")
_WORD_OPERATORS = {"mod", "modulo", "plus", "minus", "times"}


def _neighbours(text: str, start: int, end: int) -> tuple[str, str]:
    """The nearest characters (or words) before ``start`` and from ``end`` that are not spaces
    or brackets."""
    before = text[max(start - 20, 0) : start].rstrip(" ()")
    after = text[end : end + 20].lstrip(" ()")
    word_before = re.search(r"[A-Za-z]+$", before)
    word_after = re.match(r"[A-Za-z]+", after)
    return (
        word_before.group(0).lower() if word_before else before[-1:],
        word_after.group(0).lower() if word_after else after[:1],
    )


def _plausible(text: str, start: int, end: int, raw: str) -> bool:
    """What libphonenumber cannot see: the characters around a match. A number inside an
    identifier (`run_4155550132_7`), the fraction of a decimal (`0.4155550132`), a decimal, and
    bare digits in arithmetic (`4155550132 + 7 = ...`) are not phones."""
    if text[start - 1 : start] in ("_", ".", ",") or text[end : end + 1] == "_":
        return False
    if _DECIMAL.fullmatch(raw):
        return False
    if raw.strip("()").isdigit():
        before, after = _neighbours(text, start, end)
        if {before, after} & (_OPERATORS | _WORD_OPERATORS):
            return False
    return True


def check_regions(regions: Iterable[str]) -> tuple[str, ...]:
    """``regions`` as libphonenumber's region codes; raises ValueError naming an unknown one."""
    out = tuple(r.strip().upper() for r in regions)
    unknown = [r for r in out if r not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(
            f"unknown phone regions {unknown}: use ISO 3166 alpha-2 codes libphonenumber supports, "
            "such as US, GB, DE, FR, IN"
        )
    return out


# a run that is wholly a date or a decimal number is not handed to the matcher (which would turn
# it down, but at ~0.1 ms a region)
_NOT_PHONE = re.compile(r"\d{4}-\d\d-\d\d|\d\d?([./-])\d\d?\1\d{2,4}|\d+[.,]\d+")


def _phone_spans(text: str, regions: tuple[str, ...]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for run in _PHONE_RUN.finditer(text):
        digits = sum(c.isdigit() for c in run.group(0))
        if not 7 <= digits <= 17 or _NOT_PHONE.fullmatch(run.group(0).strip(" ()")):
            continue
        lo = max(run.start() - 1, 0)
        for start, end, raw in _phone_window(text[lo : run.end() + 1], regions):
            if _plausible(text, lo + start, lo + end, raw):
                spans.append((lo + start, lo + end))
    return _merge(spans)


@functools.lru_cache(maxsize=1 << 16)
def _phone_window(window: str, regions: tuple[str, ...]) -> tuple[tuple[int, int, str], ...]:
    """The numbers libphonenumber finds in ``window`` (a run with a character either side): a
    number written with + needs no region ("ZZ"); a national one is tried in each region until the
    run is covered. Cached: the same numbers recur (a support line, a shop's number)."""
    found: list[tuple[int, int, str]] = []
    tries = ("ZZ",) if "+" in window else regions
    digits = sum(c.isdigit() for c in window)
    for region in tries:
        for m in PhoneNumberMatcher(window, region, leniency=Leniency.STRICT_GROUPING):
            raw = m.raw_string
            # bare digits: only a mobile number is commonly written so (not counts or ids)
            bare = region != "ZZ" and raw.isdigit() and not raw.startswith("0")
            if bare and phonenumbers.number_type(m.number) not in _BARE_TYPES:
                continue
            found.append((m.start, m.end, raw))
        spans = _merge([(s, e) for s, e, _ in found])
        covered = sum(c.isdigit() for s, e in spans for c in window[s:e])
        if covered == digits:
            break
    return tuple(found)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping spans as one, in order."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


# ---------------------------------------------------------------------------------------------


def _replace(text: str, spans: list[tuple[int, int]], token: str) -> str:
    parts, last = [], 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(token)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _matched(
    pattern: re.Pattern[str], text: str, keep: Callable[[re.Match[str]], bool]
) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text) if keep(m)]


def _ip_spans(text: str) -> list[tuple[int, int]]:
    v6 = _matched(_IPV6, text, _ipv6) if ":" in text else []
    v4 = [m.span() for m in _IPV4.finditer(text)] if "." in text else []
    return _merge(v6 + v4)


def _iban_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _IBAN.finditer(text):
        end = _iban_end(m)
        if end is not None:
            spans.append((m.start(), end))
    return spans


def redact_checked(text: str, regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> tuple[str, list[str]]:
    """``text`` with the checked kinds replaced, and the kinds it held (in CHECKED_KINDS order)."""
    regions = tuple(regions)
    found = []
    steps: tuple[tuple[str, Callable[[str], list[tuple[int, int]]]], ...] = (
        ("ip", _ip_spans),
        ("iban", _iban_spans),
        ("card", lambda t: _matched(_CARD, t, _card)),
        ("ssn", _ssn_spans),
        ("phone", lambda t: _phone_spans(t, regions)),
    )
    for kind, spans_of in steps:
        spans = spans_of(text)
        if spans:
            text = _replace(text, spans, TOKENS[kind])
            found.append(kind)
    return text, found


RESULT_TYPE = pa.struct([("text", pa.string()), *((k, pa.bool_()) for k in CHECKED_KINDS)])


def redact_batch(texts: pa.Array | pa.ChunkedArray, regions: Sequence[str]) -> pa.StructArray:
    """The UDF's body: each text redacted, with a flag per checked kind (NULL stays NULL)."""
    out: list[str | None] = []
    flags: dict[str, list[bool]] = {k: [] for k in CHECKED_KINDS}
    for text in texts.to_pylist():
        redacted, kinds = redact_checked(text, regions) if text is not None else (None, [])
        out.append(redacted)
        for k in CHECKED_KINDS:
            flags[k].append(k in kinds)
    arrays = [pa.array(out, pa.string()), *(pa.array(flags[k], pa.bool_()) for k in CHECKED_KINDS)]
    return pa.StructArray.from_arrays(arrays, fields=list(RESULT_TYPE))


def register(con: object, regions: Sequence[str]) -> None:
    """Register ``pii_checked(VARCHAR) -> STRUCT(text, ip, iban, card, ssn, phone)`` on ``con``."""
    import duckdb

    try:
        from duckdb.func import ARROW
    except ImportError:  # DuckDB before 1.4 named the module `functional`
        from duckdb.functional import ARROW  # type: ignore[no-redef]

    assert isinstance(con, duckdb.DuckDBPyConnection)
    fields = {"text": duckdb.sqltype("VARCHAR"), **{k: duckdb.sqltype("BOOLEAN") for k in CHECKED_KINDS}}
    checked = check_regions(regions)

    def pii_checked(texts: pa.ChunkedArray) -> pa.StructArray:
        return redact_batch(texts, checked)

    con.create_function(
        "pii_checked",
        pii_checked,
        [duckdb.sqltype("VARCHAR")],
        duckdb.struct_type(fields),
        type=ARROW,
        side_effects=False,
    )


def code_digest() -> str:
    """What the snapshot id takes from this stage: its source and libphonenumber's metadata version
    (a new release changes which numbers are valid)."""
    source = Path(__file__).read_bytes()
    return hashlib.sha256(source + phonenumbers.__version__.encode()).hexdigest()[:16]
