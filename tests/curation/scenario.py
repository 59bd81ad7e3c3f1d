"""The hand-built lake whose correct snapshot is known row by row.

As of 2026-03-31T12:00Z with max_age_days=30 (cutoff 2026-03-01T12:00Z), grace 6 h,
the last 2 champions (v1, v2; v0 is older), max 50 completion characters, at most 2 rows
per prompt and 4 per user. Every event is listed with what must become of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.curation.lakes import LakeBuilder

AS_OF = "2026-03-31T12:00:00Z"
PII_PROMPT = (
    "mail me at jane.doe@example.com or call +1 415 555 0100 or 06 12 34 56 78; IBAN"
    " DE89 3704 0044 0532 0130 00, SSN 078-05-1120, key AKIAIOSFODNN7EXAMPLE, host 2001:db8::1"
)
PII_COMPLETION = "card 4111 1111 1111 1111 from 192.168.1.20"

OVERRIDES: dict[str, Any] = {
    "curation.max_age_days": 30,
    "curation.grace_hours": 6.0,
    "curation.keep_last_champions": 2,
    "curation.max_completion_chars": 50,
    "curation.max_per_prompt": 2,
    "curation.max_per_user": 4,
    "curation.eval_fraction": 0.0,
    "curation.max_orphan_rate": 0.01,  # the one orphan makes this warning fail; it must not stop the round
}

# (prompt, completion, label, source) of every row the snapshot must hold, except the two
# capped groups, whose members are chosen by the seeded rank (checked by count and membership).
EXPECTED_FIXED = {
    ("p1", "c1", True, "thumb"),
    ("p2", "c2", True, "thumb"),
    ("p5", "c5", False, "thumb"),
    ("p6", "c6", True, "thumb"),  # twice: T6 by u5 and T7 by u6
    ("p9", "c9 better", True, "edit"),
    ("p9", "c9", False, "edit_original"),
    (
        "mail me at [EMAIL] or call [PHONE] or [PHONE]; IBAN [IBAN], SSN [SSN], key [SECRET], host [IP]",
        "card [CARD] from [IP]",
        True,
        "thumb",
    ),
}
CAPPED_PROMPT = {("pc", f"c{i}", True, "thumb") for i in (16, 17, 18)}  # 2 of these 3
HEAVY = {(f"p{i}", f"c{i}", True, "thumb") for i in range(20, 25)}  # 4 of these 5

EXPECTED_COUNTS = {
    "read": 26,
    "after_as_of": 2,  # F30 happened after --as-of, F31 arrived after it
    "aged_out_by_date_folders": 1,  # F10, in a folder wholly before the window
    "after_dedupe": 25,
    "duplicates": 1,  # F1 sent twice
    "after_latest_action": 24,
    "superseded": 1,  # u2 flipped F2a (down) to F2b (up)
    "aged_out_by_date": 1,  # F11, in the first folder but before the cutoff time
    "after_age_date": 23,
    "joined": 20,
    "self_contained": 1,  # F5
    "orphaned": 1,  # F3
    "pending": 1,  # F4, still within the grace window
    "invalid": 0,
    "after_join": 21,
    "aged_out_by_version": 1,  # F12 on v0
    "after_age_version": 20,
    "edits": 1,
    "after_edits": 21,
    "conflict_minority": 1,  # F6c
    "conflict_ties": 2,  # F8a, F8b
    "conflict_dropped": 0,
    "after_conflicts": 18,
    "dropped_empty": 1,  # F13
    "dropped_too_long": 1,  # F14
    "after_filters": 16,
    "capped_per_prompt": 1,
    "capped_per_user": 1,
    "after_caps": 14,
    "moved_to_train_shared_prompt": 0,
    "after_balance": 14,
    "downsampled": 0,
    "pii_email": 1,
    "pii_phone": 1,
    "pii_card": 1,
    "pii_ip": 1,
    "pii_ssn": 1,
    "pii_iban": 1,
    "pii_secret": 1,
    "pii_any": 1,
    "train": 14,
    "eval": 0,
}


def build(known_only: bool = False) -> LakeBuilder:
    """The scenario; ``known_only`` leaves out what had not arrived by AS_OF (the lake as it was then)."""
    b = LakeBuilder()
    day = "2026-03-30T"
    b.trace("T1", day + "08:00:00Z", "p1", "c1", "v1", session_id="s1")
    b.feedback("F1", "T1", day + "09:00:00Z", "up", "u1")
    b.feedback("F1", "T1", day + "09:00:00Z", "up", "u1", ingested=day + "09:30:00Z")  # a retried send
    b.trace("T2", day + "08:00:00Z", "p2", "c2", "v2", session_id="s2")
    b.feedback("F2a", "T2", day + "10:00:00Z", "down", "u2")
    b.feedback("F2b", "T2", day + "11:00:00Z", "up", "u2")
    b.feedback("F3", "T-missing", day + "00:00:00Z", "up", "u3")
    b.feedback("F4", "T-missing-2", "2026-03-31T10:00:00Z", "up", "u3")
    b.feedback("F5", "T5", day + "12:00:00Z", "down", "u4", prompt="p5", completion="c5", model_version="v2")
    b.trace("T6", day + "08:00:00Z", "p6", "c6", "v2", session_id="s6")
    b.trace("T7", day + "08:05:00Z", "p6", "c6", "v2", session_id="s7")
    b.feedback("F6a", "T6", day + "13:00:00Z", "up", "u5")
    b.feedback("F6b", "T7", day + "13:00:00Z", "up", "u6")
    b.feedback("F6c", "T6", day + "13:00:00Z", "down", "u7")
    b.trace("T8", day + "08:00:00Z", "p8", "c8", "v2", session_id="s8")
    b.feedback("F8a", "T8", day + "14:00:00Z", "up", "u5")
    b.feedback("F8b", "T8", day + "14:00:00Z", "down", "u6")
    b.trace("T9", day + "08:00:00Z", "p9", "c9", "v2", session_id="s9")
    b.feedback("F9", "T9", day + "15:00:00Z", None, "u8", kind="edit", edited_completion="c9 better")
    b.trace("T10", "2026-02-20T08:00:00Z", "p10", "c10", "v1")
    b.feedback("F10", "T10", "2026-02-20T09:00:00Z", "up", "u1")
    b.trace("T11", "2026-03-01T05:00:00Z", "p11", "c11", "v2")
    b.feedback("F11", "T11", "2026-03-01T06:00:00Z", "up", "u1")
    b.trace("T12", day + "08:00:00Z", "p12", "c12", "v0", session_id="s12")
    b.feedback("F12", "T12", day + "16:00:00Z", "down", "u2")
    b.trace("T13", day + "08:00:00Z", "   ", "c13", "v2")
    b.feedback("F13", "T13", day + "16:00:00Z", "up", "u3")
    b.trace("T14", day + "08:00:00Z", "p14", "x" * 100, "v2")
    b.feedback("F14", "T14", day + "16:00:00Z", "down", "u3")
    b.trace("T15", day + "08:00:00Z", PII_PROMPT, PII_COMPLETION, "v2", session_id="s15")
    b.feedback("F15", "T15", day + "17:00:00Z", "up", "u4")
    for i, user in zip((16, 17, 18), ("u1", "u2", "u3"), strict=True):
        b.trace(f"T{i}", day + "08:00:00Z", "pc", f"c{i}", "v2", session_id=f"s{i}")
        b.feedback(f"F{i}", f"T{i}", day + "18:00:00Z", "up", user)
    for i in range(20, 25):
        b.trace(f"T{i}", day + "08:00:00Z", f"p{i}", f"c{i}", "v2", session_id=f"s{i}")
        b.feedback(f"H{i}", f"T{i}", day + "19:00:00Z", "up", "heavy")
    if not known_only:
        b.feedback("F30", "T1", "2026-03-31T13:00:00Z", "down", "u9")
        b.feedback("F31", "T2", day + "20:00:00Z", "down", "u9", ingested="2026-03-31T15:00:00Z")
    return b


def write_history(registry: Path, versions: list[str]) -> None:
    """A registry history in which ``versions`` were promoted in turn (the format Registry reads)."""
    registry.mkdir(parents=True, exist_ok=True)
    previous = None
    with (registry / "history.jsonl").open("w", encoding="utf-8") as log:
        for i, version in enumerate(versions):
            event = {
                "ts": f"2026-03-0{i + 1}T00:00:00Z",
                "action": "promote",
                "version": version,
                "previous": previous,
                "reason": "test",
                "evidence": {},
            }
            log.write(json.dumps(event) + "\n")
            previous = version
