"""PII redaction against a labelled corpus (``pii_corpus.jsonl``, written by make_pii_corpus.py),
run through the curation's own fetch (a lake of traces, the SQL chain, the snapshot's rows), and
the checks behind the checked kinds (Luhn, mod-97, the SSA's rules)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from curation import pii
from tests.curation import make_pii_corpus
from tests.curation.lakes import LakeBuilder
from tests.curation.test_options import _curate

MIN_RECALL = 0.97
MAX_FALSE_POSITIVES = 0.02


def load_corpus() -> list[dict[str, Any]]:
    with make_pii_corpus.CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def redact_through_curation(tmp_path: Path, texts: list[str]) -> list[tuple[str, list[str]]]:
    """Each text as it comes out of a snapshot (the even ones as prompts, the odd ones as
    completions), with the kinds the row's `redacted` column names."""
    b = LakeBuilder()
    for i, text in enumerate(texts):
        prompt, completion = (text, "ok") if i % 2 == 0 else ("please help", text)
        b.trace(f"T{i}", "2026-03-30T08:00:00Z", prompt, completion, session_id=f"s{i}")
        b.feedback(f"e{i}", f"T{i}", "2026-03-30T09:00:00Z", "up" if i % 3 else "down", f"u{i}")
    opts = {"curation.max_per_prompt": 0, "curation.max_per_user": 0, "curation.eval_fraction": 0.0}
    _, rows = _curate(tmp_path, b, **opts)
    by_trace = {r["trace_id"]: r for r in rows}
    out = []
    for i in range(len(texts)):
        row = by_trace[f"T{i}"]
        text = row["prompt"] if i % 2 == 0 else row["completion"]
        out.append((text, [k for k in row["redacted"].split(",") if k]))
    return out


def score(corpus: list[dict[str, Any]], redacted: list[tuple[str, list[str]]]) -> dict[str, dict[str, Any]]:
    """Per category: recall (the value gone and its kind named) and exact (nothing else touched)
    for positives, false positives (any change) for negatives, and the failures."""
    stats: dict[str, dict[str, Any]] = defaultdict(lambda: {"n": 0, "hits": 0, "exact": 0, "misses": []})
    for row, (text, kinds) in zip(corpus, redacted, strict=True):
        s = stats[row["category"]]
        s["n"] += 1
        if row["kind"] is None:
            if text != row["text"] or kinds:
                s["misses"].append((row["text"], text, kinds))
            continue
        hit = row["value"] not in text and row["kind"] in kinds
        exact = text == row["text"].replace(row["value"], pii.TOKENS[row["kind"]])
        s["hits"] += hit
        s["exact"] += exact
        if not (hit and exact):
            s["misses"].append((row["text"], text, kinds))
    for s in stats.values():
        s["recall"] = s["hits"] / s["n"]
        s["exact_share"] = s["exact"] / s["n"]
        s["false_positives"] = len(s["misses"]) / s["n"]
    return dict(stats)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    corpus = load_corpus()
    redacted = redact_through_curation(tmp_path_factory.mktemp("pii"), [r["text"] for r in corpus])
    return score(corpus, redacted)


def test_the_corpus_is_the_generators_and_big_enough() -> None:
    corpus = load_corpus()
    assert corpus == json.loads(json.dumps(make_pii_corpus.build()))  # regenerate with its __main__
    positives = [r for r in corpus if r["kind"] is not None]
    assert len(positives) >= 300 and len(corpus) - len(positives) >= 300
    assert {r["kind"] for r in positives} == set(pii.KINDS)


def _positive_categories() -> set[str]:
    return {r["category"] for r in load_corpus() if r["kind"] is not None}


def test_recall_per_category_through_the_curation(scored: dict[str, dict[str, Any]]) -> None:
    """Each positive category: the PII gone, its kind named in `redacted`, and nothing else in
    the text changed, for at least MIN_RECALL of its texts."""
    positive = _positive_categories()
    assert positive <= set(scored)
    low = {
        c: (round(scored[c]["recall"], 3), round(scored[c]["exact_share"], 3), scored[c]["misses"][:3])
        for c in positive
        if scored[c]["recall"] < MIN_RECALL or scored[c]["exact_share"] < MIN_RECALL
    }
    assert not low, low


def test_false_positives_per_category_through_the_curation(scored: dict[str, dict[str, Any]]) -> None:
    negative = set(scored) - _positive_categories()
    assert {"isbn", "order_id", "version", "date", "price", "arithmetic"} <= negative
    high = {
        c: (round(scored[c]["false_positives"], 3), scored[c]["misses"][:3])
        for c in negative
        if scored[c]["false_positives"] > MAX_FALSE_POSITIVES
    }
    assert not high, high


def test_checksums_and_rules_behind_the_checked_kinds() -> None:
    assert pii.luhn_valid("4111111111111111") and not pii.luhn_valid("4111111111111112")
    assert pii.card_valid("378282246310005")  # an Amex test number
    assert not pii.card_valid("9783161484100")  # an ISBN-13 that passes Luhn: no issuer starts with 9
    assert pii.iban_valid("GB82WEST12345698765432") and not pii.iban_valid("GB82WEST12345698765433")
    assert not pii.iban_valid("DE8937040044053201300")  # a digit short of a German IBAN
    assert pii.ssn_valid("078", "05", "1120")
    for bad in (("000", "12", "3456"), ("666", "12", "3456"), ("912", "12", "3456"), ("123", "00", "4567")):
        assert not pii.ssn_valid(*bad)
    assert not pii.ssn_valid("123", "45", "0000")
    text = "order 907-4583985-8330056, SSN 666-12-3456, ref 4111 1111 1111 1112, v1.2.3, 2026-03-31"
    assert pii.redact_checked(text) == (text, [])
    assert pii.redact_checked("ISBN 978-0-306-40615-7 or 9780306406157") == (
        "ISBN 978-0-306-40615-7 or 9780306406157",
        [],
    )


def test_phone_regions_are_checked_and_decide_national_formats(tmp_path: Path) -> None:
    from core.errors import ConfigError
    from tests.curation.conftest import make_config

    with pytest.raises(ConfigError, match="unknown phone regions"):
        make_config(tmp_path, **{"curation.pii_phone_regions": ("US", "XX")})
    # a French national number is a phone where FR is a region, an international one everywhere
    assert pii.redact_checked("appelez le 01 23 45 67 89", ("FR",))[1] == ["phone"]
    assert pii.redact_checked("appelez le 01 23 45 67 89", ("US",))[1] == []
    assert pii.redact_checked("appelez le +33 1 23 45 67 89", ("US",))[1] == ["phone"]


def test_only_candidate_texts_reach_the_python_stage(tmp_path: Path) -> None:
    """The UDF sees the texts with a long digit run (or IPv6 / IBAN shape), not every text."""
    calls: list[int] = []
    original = pii.redact_batch

    def counting(texts: Any, regions: Any) -> Any:
        calls.append(len(texts))
        return original(texts, regions)

    texts = ["no digits here", "order 12 in 2026", "mail a@b.example", "call 020 7946 0958", "fe80::1"]
    pii.redact_batch = counting  # type: ignore[assignment]
    try:
        out = redact_through_curation(tmp_path, texts)
    finally:
        pii.redact_batch = original  # type: ignore[assignment]
    assert sum(calls) == 2
    assert [kinds for _, kinds in out] == [[], [], ["email"], ["phone"], ["ip"]]


if __name__ == "__main__":
    import tempfile

    corpus = load_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        result = score(corpus, redact_through_curation(Path(tmp), [r["text"] for r in corpus]))
    for category, s in sorted(result.items()):
        print(
            f"{category:22} n={s['n']:3}  recall={s['recall']:.3f} exact={s['exact_share']:.3f} bad={len(s['misses'])}"
        )
        for miss in s["misses"][:4]:
            print("     ", repr(miss)[:300])
