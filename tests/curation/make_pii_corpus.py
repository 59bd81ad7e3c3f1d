"""Writes ``pii_corpus.jsonl``: the labelled PII corpus of the redaction tests.

    .venv/bin/python -m tests.curation.make_pii_corpus

Deterministic (one seeded generator; phone numbers checked valid by libphonenumber, cards by
Luhn, IBANs by mod-97, SSNs by the SSA's rules), so the file it writes is the one committed,
which a test checks. Each line: ``text``, ``category``, ``kind`` (the placeholder's kind; null
for a negative) and ``value`` (the PII in ``text``; null for a negative). Positives are PII
in the formats people write them; negatives are PII-free texts full of numbers (ISBNs, order
ids, versions, dates, prices, arithmetic, identifiers, measurements).
"""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from curation.pii import IBAN_LENGTHS, luhn_valid, ssn_valid

CORPUS = Path(__file__).with_name("pii_corpus.jsonl")
SEED = 13

POSITIVE_TEMPLATES = [
    "{v}",
    "You can reach me at {v} after 6pm.",
    "my details: {v} (please keep this private)",
    "Contact: {v}",
    "Can you format this nicely? {v} thanks",
    "Le client a donné {v} pour le suivi.",
    "Bitte notieren Sie {v} für die Rückfrage.",
    "copy {v}, then paste it into the form",
    "Here it is -> {v}.",
    "I typed {v} but the form said it was wrong, why?",
]


def _text(rng: random.Random, value: str) -> str:
    return rng.choice(POSITIVE_TEMPLATES).format(v=value)


# ---------------------------------------------------------------------------------------------
# positives


def emails(rng: random.Random) -> list[str]:
    names = ["jane.doe", "j.smith", "marie-claire", "raj_kumar99", "li.wei+news", "o.brien", "anna.k"]
    domains = ["example.com", "mail.example.org", "company.co.uk", "uni-berlin.de", "startup.io"]
    return [f"{rng.choice(names)}{i}@{rng.choice(domains)}" for i in range(20)]


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return next(body + d for d in string.digits if luhn_valid(body + d))


def _grouped(digits: str, sizes: list[int], sep: str) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(digits[at : at + size])
        at += size
    return sep.join(parts)


def cards(rng: random.Random) -> list[tuple[str, str]]:
    """(category, number as written)."""
    out = []
    brands = [
        ("card_visa", ["4"], 16, [4, 4, 4, 4]),
        ("card_visa", ["4"], 13, [13]),
        ("card_mastercard", ["51", "52", "53", "54", "55", "2221", "2720"], 16, [4, 4, 4, 4]),
        ("card_amex", ["34", "37"], 15, [4, 6, 5]),
        ("card_discover", ["6011", "65"], 16, [4, 4, 4, 4]),
        ("card_other", ["3530", "3566", "62"], 16, [4, 4, 4, 4]),
        ("card_other", ["36"], 14, [4, 6, 4]),
        ("card_other", ["62"], 19, [4, 4, 4, 4, 3]),
    ]
    for i in range(48):
        category, prefixes, length, sizes = brands[i % len(brands)]
        number = _luhn_complete(rng.choice(prefixes), length, rng)
        style = i // len(brands) % 3
        if style == 0 or len(sizes) == 1:
            written = number
        else:
            written = _grouped(number, sizes, " " if style == 1 else "-")
        out.append((category, written))
    return out


def ipv4(rng: random.Random) -> list[str]:
    return [
        ".".join(str(x) for x in (rng.choice([10, 172, 192, 8, 52, 203]), *rng.sample(range(256), 3)))
        for _ in range(20)
    ]


def ipv6(rng: random.Random) -> list[str]:
    out = []
    for i in range(30):
        groups = [f"{rng.randrange(65536):x}" for _ in range(8)]
        groups[0] = rng.choice(["2001", "2a00", "fe80", "2607", "2400", "fd12"])
        style = i % 6
        if style == 0:
            out.append(":".join(g.zfill(4) for g in groups))
        elif style == 1:
            out.append(":".join(groups))
        elif style == 2:
            out.append(":".join(groups[:3]) + "::" + ":".join(groups[6:]))
        elif style == 3:
            out.append("fe80::" + ":".join(groups[4:]) + "%eth0")
        elif style == 4:
            out.append(":".join(groups[:2]).upper() + "::" + groups[7].upper())
        else:
            out.append("::ffff:" + ".".join(str(rng.randrange(1, 255)) for _ in range(4)))
    return out


def _valid_numbers(region: str, kind: Any, n: int, rng: random.Random) -> list[phonenumbers.PhoneNumber]:
    example = phonenumbers.example_number_for_type(region, kind)
    nsn = str(example.national_number)
    out: list[phonenumbers.PhoneNumber] = []
    while len(out) < n:
        keep = max(len(nsn) - 6, 2)
        candidate = nsn[:keep] + "".join(rng.choice(string.digits) for _ in range(len(nsn) - keep))
        number = phonenumbers.parse(candidate, region)
        if phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in (
            kind,
            PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            out.append(number)
    return out


def _fmt(number: phonenumbers.PhoneNumber, style: str) -> str:
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    intl = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    code = str(number.country_code)
    rest = intl.split(" ", 1)[1]
    styles = {
        "national": national,
        "intl": intl,
        "e164": e164,
        "dots": national.replace(" ", "."),
        "dashes": national.replace(" ", "-"),
        "compact": national.replace(" ", ""),
        "intl_trunk": f"+{code} (0){rest}",
        "intl_dashes": f"+{code}-{rest.replace(' ', '-')}",
        "intl_00": f"00{code} {rest}",
        "paren_area": "(" + national.replace(" ", ") ", 1),
        "slash": national.replace(" ", "/", 1),
        "no_trunk": national.lstrip("0"),
        "us_dashes": national.replace("(", "").replace(") ", "-"),
        "us_dots": national.replace("(", "").replace(") ", ".").replace("-", "."),
        "us_spaces": national.replace("(", "").replace(") ", " ").replace("-", " "),
        "us_one": "1-" + national.replace("(", "").replace(") ", "-"),
        "us_bare": str(number.national_number),
        "us_intl_paren": f"+1 {national}",
    }
    return styles[style]


PHONE_STYLES = {
    "FR": ["national", "dots", "intl", "intl_trunk", "compact", "dashes", "e164"],
    "DE": ["national", "paren_area", "slash", "intl", "intl_trunk", "dashes", "e164", "intl_00"],
    "GB": ["national", "paren_area", "intl", "intl_trunk", "compact", "e164"],
    "IN": ["national", "no_trunk", "intl", "intl_dashes", "e164", "us_bare"],
    "US": [
        "national",
        "us_dashes",
        "us_dots",
        "us_spaces",
        "intl",
        "us_intl_paren",
        "us_one",
        "e164",
        "us_bare",
    ],
}


def phones(rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for region, styles in PHONE_STYLES.items():
        numbers = _valid_numbers(region, PhoneNumberType.FIXED_LINE, 15, rng)
        numbers += _valid_numbers(region, PhoneNumberType.MOBILE, 15, rng)
        for i, number in enumerate(numbers):
            style = styles[i % len(styles)]
            if style in ("no_trunk", "us_bare") and region == "IN":
                number = numbers[15 + i % 15]  # Indians write mobiles (not landlines) without the 0
            out.append((f"phone_{region.lower()}", _fmt(number, style)))
    for i, region in enumerate(["ES", "IT", "JP", "AU", "BR", "NL", "CN", "RU", "ZA", "MX"] * 3):
        kind = PhoneNumberType.MOBILE if i % 2 else PhoneNumberType.FIXED_LINE
        number = _valid_numbers(region, kind, 1, rng)[0]
        out.append(("phone_international", _fmt(number, "intl" if i < 20 else "e164")))
    return out


def ssns(rng: random.Random) -> list[str]:
    out: list[str] = []
    while len(out) < 30:
        area, group, serial = (
            f"{rng.randrange(1, 900):03d}",
            f"{rng.randrange(100):02d}",
            f"{rng.randrange(10000):04d}",
        )
        if not ssn_valid(area, group, serial):
            continue
        style = len(out) % 3
        out.append(
            f"{area}-{group}-{serial}"
            if style == 0
            else f"{area} {group} {serial}"
            if style == 1
            else f"{area}{group}{serial}"
        )
    return out


def _iban(country: str, rng: random.Random) -> str:
    length = IBAN_LENGTHS[country]
    letters = {"GB": 4, "NL": 4, "IE": 4, "MT": 4, "BG": 4}.get(country, 0)
    bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters))
    bban += "".join(rng.choice(string.digits) for _ in range(length - 4 - letters))
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def ibans(rng: random.Random) -> list[str]:
    countries = ["DE", "FR", "GB", "NL", "ES", "IT", "BE", "CH", "AT", "PL", "IE", "PT", "SE", "NO", "DK"]
    out = []
    for i in range(30):
        iban = _iban(countries[i % len(countries)], rng)
        out.append(" ".join(iban[j : j + 4] for j in range(0, len(iban), 4)) if i % 3 else iban)
    return out


def _alnum(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def secrets(rng: random.Random) -> list[tuple[str, str]]:
    out = []
    up = string.ascii_uppercase + string.digits
    for i in range(6):
        out.append(("secret_openai", "sk-" + _alnum(rng, 48)))
        out.append(
            ("secret_openai", "sk-proj-" + _alnum(rng, 74, string.ascii_letters + string.digits + "_-"))
        )
        out.append(
            (
                "secret_anthropic",
                "sk-ant-api03-" + _alnum(rng, 93, string.ascii_letters + string.digits + "_-") + "AA",
            )
        )
        out.append(("secret_aws", "AKIA" + _alnum(rng, 16, up)))
        out.append(("secret_github", ("ghp_", "gho_")[i % 2] + _alnum(rng, 36)))
        out.append(("secret_github", "github_pat_" + _alnum(rng, 22) + "_" + _alnum(rng, 59)))
        out.append(
            (
                "secret_slack",
                f"xoxb-{rng.randrange(10**11, 10**12)}-{rng.randrange(10**12, 10**13)}-{_alnum(rng, 24)}",
            )
        )
        out.append(("secret_google", "AIza" + _alnum(rng, 35, string.ascii_letters + string.digits + "_-")))
        header = _b64url({"alg": "HS256", "typ": "JWT"})
        payload = _b64url({"sub": str(rng.randrange(10**9)), "name": "Jane Doe", "iat": 1516239022 + i})
        out.append(
            (
                "secret_jwt",
                f"{header}.{payload}.{_alnum(rng, 43, string.ascii_letters + string.digits + '_-')}",
            )
        )
        kind = ("RSA ", "EC ", "OPENSSH ", "")[i % 4]
        body = base64.b64encode(bytes(rng.randrange(256) for _ in range(300))).decode()
        lines = "\n".join(body[j : j + 64] for j in range(0, len(body), 64))
        out.append(
            (
                "secret_private_key",
                f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----",
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# negatives


def _isbn13(rng: random.Random) -> str:
    body = rng.choice(["978", "979"]) + "".join(rng.choice(string.digits) for _ in range(9))
    check = (10 - sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body)) % 10) % 10
    return body + str(check)


def negatives(rng: random.Random) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for i in range(30):
        isbn = _isbn13(rng)
        written = isbn if i % 2 else f"{isbn[:3]}-{isbn[3]}-{isbn[4:7]}-{isbn[7:12]}-{isbn[12]}"
        out.append(
            (
                "isbn",
                rng.choice(["ISBN {v}", "the book (ISBN-13: {v}) is out of print", "{v}"]).format(v=written),
            )
        )
    for i in range(30):
        style = i % 5
        if style == 0:
            v = f"{rng.randrange(100, 1000)}-{rng.randrange(10**6, 10**7)}-{rng.randrange(10**6, 10**7)}"
        elif style == 1:
            v = f"ORD-{rng.randrange(2019, 2027)}-{rng.randrange(10**6):06d}"
        elif style == 2:
            v = f"#{rng.randrange(10**8, 10**9)}"
        elif style == 3:
            v = f"1Z{_alnum(rng, 6, string.ascii_uppercase + string.digits)}{rng.randrange(10**9, 10**10)}"
        else:
            v = f"INV-{rng.randrange(2019, 2027)}{rng.randrange(10**4):04d}-{rng.randrange(100):02d}"
        out.append(
            (
                "order_id",
                rng.choice(
                    ["order {v} shipped", "where is my order {v}?", "tracking number {v}", "{v}"]
                ).format(v=v),
            )
        )
    for i in range(30):
        a, b, c = rng.randrange(30), rng.randrange(40), rng.randrange(300)
        v = [
            f"{a}.{b}.{c}",
            f"v{a}.{b}.{c}-rc.{rng.randrange(1, 9)}",
            f"Python 3.{rng.randrange(8, 14)}.{rng.randrange(20)}",
            f"Chrome {rng.randrange(100, 130)}.0.{rng.randrange(5000, 7000)}.{rng.randrange(200)}",
            f"build 10.0.{rng.randrange(19000, 26000)}.{rng.randrange(1000, 5000)}",
            f"numpy=={a % 3}.{b}.{c % 10} and torch {a % 3}.{b % 10}.{c % 10}",
        ][i % 6]
        out.append(
            (
                "version",
                rng.choice(
                    ["upgrade to {v}", "fixed in {v}", "{v} changelog", "requires {v} or later"]
                ).format(v=v),
            )
        )
    for i in range(30):
        y, m, d, hh, mm, ss = (
            rng.randrange(1990, 2030),
            rng.randrange(1, 13),
            rng.randrange(1, 29),
            rng.randrange(24),
            rng.randrange(60),
            rng.randrange(60),
        )
        v = [
            f"{y}-{m:02d}-{d:02d}",
            f"{m:02d}/{d:02d}/{y}",
            f"{d:02d}.{m:02d}.{y}",
            f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z",
            f"{y}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}.{rng.randrange(10**6):06d}",
            f"{hh:02d}:{mm:02d}:{ss:02d}",
            f"{d:02d}/{m:02d}/{y} - {d:02d}/{m:02d}/{y + 1}",
            f"{y}{m:02d}{d:02d}",
            f"from {y} to {y + 5}, then {y + 6}-{y + 9}",
            f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}+05:30",
        ][i % 10]
        out.append(
            (
                "date",
                rng.choice(["on {v}", "the meeting is {v}", "log entry {v}: started", "{v}"]).format(v=v),
            )
        )
    for i in range(30):
        whole, cents = rng.randrange(1, 10**7), rng.randrange(100)
        v = [
            f"${whole:,}.{cents:02d}",
            f"€{whole:,}.{cents:02d}".replace(",", " "),
            f"{whole:,}".replace(",", ".") + f",{cents:02d} €",
            f"£{whole}.{cents:02d}",
            f"₹{whole:,}",
            f"USD {whole}.{cents:02d}",
            f"{whole} EUR",
            f"price: {whole // 100}.{cents:02d} (was {whole // 90}.{cents:02d})",
            f"CHF {whole:,}.-",
            f"total {whole:,} yen",
        ][i % 10]
        out.append(
            (
                "price",
                rng.choice(["it costs {v}", "{v}", "budget of {v} for Q3", "paid {v} yesterday"]).format(v=v),
            )
        )
    for i in range(30):
        a, b = rng.randrange(10**3, 10**6), rng.randrange(10**2, 10**5)
        big = rng.randrange(10**9, 10**10)
        v = [
            f"{a} * {b} = {a * b}",
            f"{a} + {b} = {a + b}",
            f"{big} + {a} = {big + a}",
            f"{big} / {b} = {big / b:.4f}",
            f"2^{rng.randrange(30, 40)} = {2 ** rng.randrange(30, 40)}",
            f"({a} - {b}) * 7 = {(a - b) * 7}",
            f"{big} mod 97 = {big % 97}",
            f"sqrt({a * a}) = {a}",
            f"{a}x{b}",
            f"{big}-{a}={big - a}",
        ][i % 10]
        out.append(
            ("arithmetic", rng.choice(["what is {v}?", "check: {v}", "{v}", "so {v}, right?"]).format(v=v))
        )
    for i in range(30):
        v = [
            f"{rng.randrange(10**6, 10**9):,} rows",
            f"population {rng.randrange(10**6, 10**9):,}",
            f"pi = 3.{rng.randrange(10**14, 10**15)}",
            f"{rng.random():.12f}",
            f"{rng.randrange(10**3)}.{rng.randrange(10**6)} ms",
            f"{rng.randrange(10**9, 2 * 10**9)} seconds since the epoch",
            f"{rng.randrange(100)}% of {rng.randrange(10**5, 10**8)}",
            f"{rng.randrange(1, 10)}.{rng.randrange(100)}e-{rng.randrange(1, 12)}",
            f"step {rng.randrange(10**4)}/{rng.randrange(10**4, 10**5)} loss {rng.random():.6f}",
            f"{rng.randrange(10**4)} {rng.randrange(10**4)} {rng.randrange(10**4)} {rng.randrange(10**4)}",
        ][i % 10]
        out.append(
            ("statistic", rng.choice(["we saw {v}", "{v}", "result: {v}", "about {v} in total"]).format(v=v))
        )
    hexd = "0123456789abcdef"
    for i in range(30):
        v = [
            f"{_alnum(rng, 8, hexd)}-{_alnum(rng, 4, hexd)}-{_alnum(rng, 4, hexd)}-{_alnum(rng, 4, hexd)}-{_alnum(rng, 12, hexd)}",
            f"commit {_alnum(rng, 40, hexd)}",
            f"sha256:{_alnum(rng, 64, hexd)}",
            ":".join(_alnum(rng, 2, "0123456789ABCDEF") for _ in range(6)),
            f"localhost:{rng.randrange(1024, 65536)}",
            "std::vector<int> v; a::b::c(); Foo::Bar",
            f"{rng.randrange(24):02d}:{rng.randrange(60):02d}",
            f"ratio {rng.randrange(1, 20)}:{rng.randrange(1, 20)}:{rng.randrange(1, 20)}",
            f"0x{_alnum(rng, 8, hexd)}",
            f"run_{rng.randrange(10**9, 10**10)}_{rng.randrange(10**3)}",
        ][i % 10]
        out.append(
            ("identifier", rng.choice(["id {v}", "{v}", "see {v} in the logs", "value was {v}"]).format(v=v))
        )
    for i in range(30):
        v = [
            f"{rng.uniform(-90, 90):.4f}, {rng.uniform(-180, 180):.4f}",
            f"{rng.randrange(10000, 99999)} Paris",
            f"{rng.randrange(10000, 99999)} Berlin",
            f"PIN code {rng.randrange(100000, 999999)}",
            f"{rng.randrange(1, 100)} kg",
            f"{rng.choice([1280, 1920, 2560, 3840])}x{rng.choice([720, 1080, 1440, 2160])}",
            f"ISO {rng.randrange(1000, 30000)}:{rng.randrange(1990, 2025)}",
            f"RFC {rng.randrange(1000, 9999)} section {rng.randrange(1, 9)}.{rng.randrange(1, 9)}.{rng.randrange(1, 9)}",
            f"pages {rng.randrange(1, 500)}-{rng.randrange(500, 999)}",
            f"room {rng.randrange(100, 999)}, floor {rng.randrange(1, 40)}, building {rng.randrange(1, 9)}",
        ][i % 10]
        out.append(
            ("measurement", rng.choice(["{v}", "located at {v}", "size {v}", "note: {v}"]).format(v=v))
        )
    for _ in range(40):  # several of the above in one text, as a prompt or an answer has them
        parts = rng.sample([text for _, text in out], 3)
        out.append(("mixed", "; ".join(parts)))
    return out


def build() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    rows: list[dict[str, Any]] = []

    def positive(category: str, kind: str, value: str, text: str | None = None) -> None:
        text = text or _text(rng, value)
        rows.append({"text": text, "category": category, "kind": kind, "value": value})

    for v in emails(rng):
        positive("email", "email", v)
    for category, v in cards(rng):
        positive(category, "card", v)
    for v in ipv4(rng):
        positive("ipv4", "ip", v)
    for v in ipv6(rng):
        positive("ipv6", "ip", v)
    for category, v in phones(rng):
        positive(category, "phone", v)
    for v in ssns(rng):
        # nine bare digits are an SSN only where the text says so
        bare = rng.choice(["SSN {v}", "my social security number is {v}", "SSN: {v}."]).format(v=v)
        positive("ssn", "ssn", v, bare if v.isdigit() else None)
    for v in ibans(rng):
        positive("iban", "iban", v)
    for category, v in secrets(rng):
        positive(category, "secret", v)
    for category, text in negatives(rng):
        rows.append({"text": text, "category": category, "kind": None, "value": None})
    return rows


def main() -> None:
    rows = build()
    with CORPUS.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    positives = sum(r["kind"] is not None for r in rows)
    print(f"{CORPUS}: {positives} positives, {len(rows) - positives} negatives")


if __name__ == "__main__":
    main()
