"""`flywheel simulate`: production-like traffic without a model.

Responses from several model versions to many users; feedback with more
thumbs-down than thumbs-up (later versions answer better, so they get more
ups); edits; users who change their vote; clients that retry a send (same
event id); feedback that arrives hours late; and, now and then, a record that
breaks the contract, every kind in turn. The same seed sends the same traffic
(ids, choices, texts and, with ``start_time`` set, timestamps).

Callers with a model world (the demo) may pass ``prompts``, ``respond`` and
``judge`` to replace the built-in prompts, answers and simulated users' taste.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ingest.producer import EventProducer

if TYPE_CHECKING:
    from flywheel.config import Config
    from flywheel.dev.settings import SimulateConfig

MALFORMED_KINDS = (
    "malformed_json",
    "bad_utf8",
    "not_object",
    "wrong_type",
    "missing_field",
    "unknown_label",
    "unknown_kind",
    "no_offset",
    "absurd_year",
    "oversize",
)
TOPICS = ("Python", "SQL", "Kafka", "Parquet", "gardening", "tax forms", "travel", "recipes")
ASKS = ("How do I get started with {}?", "What is a common mistake with {}?", "Explain {} in two sentences.")
GOOD = "Here is a short, correct answer about {t}: start small, check each step, and read the docs."
BAD = "Well, {t} is complicated and I am not sure; maybe try something else or ask again later?"
# Probability of a thumbs-up for a good and a bad answer; the bad share falls with each version.
P_UP = {True: 0.75, False: 0.1}

Respond = Callable[[str, str, random.Random], str]  # (model_version, prompt, rng) -> completion
Judge = Callable[[str, str], float]  # (prompt, completion) -> probability of a thumbs-up


@dataclasses.dataclass
class SimStats:
    traces: int = 0
    feedback: int = 0
    up: int = 0
    down: int = 0
    edits: int = 0
    flips: int = 0
    duplicates: int = 0
    late: int = 0
    malformed: Counter[str] = dataclasses.field(default_factory=Counter)
    versions: Counter[str] = dataclasses.field(default_factory=Counter)
    elapsed_s: float = 0.0

    def summary(self) -> str:
        sent = self.traces + self.feedback + sum(self.malformed.values())
        return (
            f"simulated {self.traces} responses from {len(self.versions)} model versions and "
            f"{self.feedback} feedback records ({self.up} up, {self.down} down, {self.edits} edits, "
            f"{self.flips} changed votes, {self.duplicates} client retries, {self.late} late), plus "
            f"{sum(self.malformed.values())} malformed records; {sent} records in {self.elapsed_s:.1f}s"
        )


def _default_respond(versions: Sequence[str]) -> Respond:
    def respond(version: str, prompt: str, rng: random.Random) -> str:
        topic = next((t for t in TOPICS if t in prompt), "that")
        bad_share = 0.75 - 0.25 * versions.index(version) / max(1, len(versions) - 1)
        return (BAD if rng.random() < bad_share else GOOD).format(t=topic)

    return respond


def _default_judge(prompt: str, completion: str) -> float:
    return P_UP[completion.startswith("Here is")]


def malformed(
    kind: str, rng: random.Random, traces_topic: str, feedback_topic: str, max_bytes: int
) -> tuple[str, bytes]:
    """One record that breaks the contract in the named way, and the topic to send it to."""
    now = "2025-01-01T00:00:00Z"
    fb = {
        "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "trace_id": "t",
        "event_time": now,
        "label": "up",
    }
    tr = {
        "trace_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "event_time": now,
        "model_version": "v",
        "prompt": "p",
        "completion": "c",
    }
    docs: dict[str, tuple[str, Any]] = {
        "malformed_json": (feedback_topic, b'{"event_id": "x", "label": "up"'),
        "bad_utf8": (traces_topic, b'{"trace_id": "\xff\xfe"}'),
        "not_object": (feedback_topic, b'["up"]'),
        "wrong_type": (traces_topic, {**tr, "completion": 42}),
        "missing_field": (feedback_topic, {k: v for k, v in fb.items() if k != "trace_id"}),
        "unknown_label": (feedback_topic, {**fb, "label": "meh"}),
        "unknown_kind": (feedback_topic, {**fb, "kind": "star"}),
        "no_offset": (traces_topic, {**tr, "event_time": "2025-01-01T00:00:00"}),
        "absurd_year": (feedback_topic, {**fb, "event_time": "0999-01-01T00:00:00Z"}),
        "oversize": (traces_topic, {**tr, "completion": "x" * (max_bytes + 1)}),
    }
    topic, doc = docs[kind]
    return topic, doc if isinstance(doc, bytes) else json.dumps(doc).encode()


def _start(cfg: SimulateConfig) -> dt.datetime:
    if cfg.start_time:
        return dt.datetime.fromisoformat(cfg.start_time).astimezone(dt.UTC)
    return dt.datetime.now(dt.UTC)


def run(
    config: Config,
    *,
    prompts: Sequence[str] | None = None,
    respond: Respond | None = None,
    judge: Judge | None = None,
) -> SimStats:
    """Send the simulated traffic to ``config.kafka``'s topics; returns what was sent."""
    cfg = config.simulate
    rng = random.Random(cfg.seed)
    versions = list(cfg.model_versions)
    prompts = list(prompts) if prompts else [a.format(t) for t in TOPICS for a in ASKS]
    respond = respond or _default_respond(versions)
    judge = judge or _default_judge
    users = [f"user-{i:04d}" for i in range(cfg.users)]
    start, spacing = _start(cfg), dt.timedelta(seconds=1 / cfg.rate if cfg.rate else 0.5)
    stats, late, kinds = SimStats(), [], iter(range(10**12))
    began = time.monotonic()
    max_bytes = config.ingest.max_record_bytes
    # Oversize test records must get past the producer's own request limit to reach ingest.
    with EventProducer(config.kafka, max_request_size=max(1024 * 1024, 2 * max_bytes + 4096)) as out:

        def pace() -> None:
            sent = stats.traces + stats.feedback + sum(stats.malformed.values())
            if cfg.rate and (ahead := sent / cfg.rate - (time.monotonic() - began)) > 0:
                time.sleep(ahead)

        def feedback(trace_id: str, when: dt.datetime, user: str, **fields: Any) -> None:
            event_id = uuid.UUID(int=rng.getrandbits(128)).hex
            copies = 2 if rng.random() < cfg.duplicate_share else 1  # a client retry resends the same id
            for _ in range(copies):
                out.send_feedback(
                    trace_id=trace_id, event_id=event_id, event_time=when, user_id=user, **fields
                )
                stats.feedback += 1
                pace()
            stats.duplicates += copies - 1

        for i in range(cfg.count):
            served = start + i * spacing
            version, prompt, user = rng.choice(versions), rng.choice(prompts), rng.choice(users)
            completion = respond(version, prompt, rng)
            trace_id = uuid.UUID(int=rng.getrandbits(128)).hex
            out.send_trace(
                trace_id=trace_id,
                prompt=prompt,
                completion=completion,
                model_version=version,
                event_time=served,
                user_id=user,
                session_id=f"{user}-s{i // 20}",
                tags={"workload": "chat", "locale": rng.choice(["en", "de", "fr"])},
            )
            stats.traces += 1
            stats.versions[version] += 1
            pace()
            if rng.random() < cfg.malformed_share:
                kind = MALFORMED_KINDS[next(kinds) % len(MALFORMED_KINDS)]
                topic, value = malformed(
                    kind, rng, config.kafka.traces_topic, config.kafka.feedback_topic, max_bytes
                )
                out.send_raw(topic, value)
                stats.malformed[kind] += 1
            if rng.random() >= cfg.feedback_share:
                continue
            acted = served + dt.timedelta(seconds=rng.uniform(5, 600))
            if rng.random() < cfg.late_share:
                late.append(
                    (trace_id, acted + dt.timedelta(hours=rng.uniform(1, 30)), user, prompt, completion)
                )
                continue
            _act(rng, cfg, stats, feedback, trace_id, acted, user, prompt, completion, judge)
        for trace_id, acted, user, prompt, completion in late:
            stats.late += 1
            _act(rng, cfg, stats, feedback, trace_id, acted, user, prompt, completion, judge)
    stats.elapsed_s = time.monotonic() - began
    return stats


def _act(
    rng: random.Random,
    cfg: SimulateConfig,
    stats: SimStats,
    feedback: Callable[..., None],
    trace_id: str,
    acted: dt.datetime,
    user: str,
    prompt: str,
    completion: str,
    judge: Judge,
) -> None:
    """One user's action on one response: an edit, or a thumb that may later be reversed."""
    if rng.random() < cfg.edit_share:
        fixed = f"{completion.split('.')[0]}. (Corrected by the user: keep it short and check each step.)"
        feedback(trace_id, acted, user, kind="edit", edited_completion=fixed)
        stats.edits += 1
        return
    up = rng.random() < judge(prompt, completion)
    feedback(trace_id, acted, user, label="up" if up else "down")
    stats.up += up
    stats.down += not up
    if rng.random() < cfg.flip_share:
        feedback(
            trace_id, acted + dt.timedelta(minutes=rng.uniform(1, 60)), user, label="down" if up else "up"
        )
        stats.flips += 1
