"""A simulated production app and its users, for the demo and the tests.

The app serves the registry's current champion (reloaded when the champion changes) and sends
one trace per response to Kafka. Its users share the tiny world's hidden preference
(:meth:`flywheel.dev.world.World.approves`) and have the habits real users have:

* most never vote; unhappy users vote more often than happy ones;
* some votes disagree with what the user actually wanted (noise);
* some unhappy users fix the answer instead (an ``edit`` with the corrected completion);
* the client retries some sends (same ``event_id``), a few users change their mind later;
* some feedback comes hours after the response, often after that night's round, and some
  waits a day on an offline client before it is delivered (its event time stays in the past);
* a few records are malformed (broken JSON, missing fields, bad labels) and belong in the
  dead-letter lake.

Event times are set by the producer, so a "day" of traffic is sent in seconds and the nightly
rounds run in compressed time. The approval rate of a day is what every user would have said,
voting or not: the number the flywheel should raise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import random
import uuid
from typing import Any

from core.registry import Registry

SECONDS_PER_DAY = 86_400


@dataclasses.dataclass(frozen=True)
class Habits:
    """How simulated users behave (shares of responses, votes or records)."""

    vote_if_happy: float = 0.15
    vote_if_unhappy: float = 0.4
    edit_share: float = 0.2  # of unhappy voters, who edit instead of voting down
    noise: float = 0.05  # a vote that disagrees with the user's own preference
    retry: float = 0.05  # a feedback send repeated by the client with the same event_id
    change_mind: float = 0.02  # a second, opposite thumb by the same user later
    late: float = 0.15  # feedback given hours after the response (often after that night's round)
    offline: float = 0.05  # feedback queued on an offline client and delivered a day later
    malformed: float = 0.01  # records that break the event contract
    chat_share: float = 0.3  # prompts sent as chat messages rather than text


@dataclasses.dataclass
class DayStats:
    day: int
    version: str
    served: int = 0
    approved: int = 0
    votes_up: int = 0
    votes_down: int = 0
    edits: int = 0
    retries: int = 0
    late_sent: int = 0
    malformed: int = 0
    records: int = 0

    @property
    def approval(self) -> float:
        return self.approved / self.served if self.served else 0.0


class ProductionApp:
    """Serves the champion of ``registry``; reloads it when the champion pointer moves."""

    def __init__(self, registry: Registry, max_new_tokens: int = 24) -> None:
        self.registry = registry
        self.max_new_tokens = max_new_tokens
        self.version: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None

    def refresh(self) -> str:
        champion = self.registry.champion()
        if champion is None:
            raise RuntimeError("the registry has no champion to serve")
        if champion != self.version:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            path = self.registry.path(champion)
            self._model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)  # never pickle
            self._tokenizer = AutoTokenizer.from_pretrained(path)
            self.version = champion
        return champion

    def serve(self, prompts: list[Any], seed: int) -> list[str]:
        from flywheel.dev.sampling import generate

        self.refresh()
        return generate(
            self._model,
            self._tokenizer,
            prompts,
            temperature=1.0,
            max_new_tokens=self.max_new_tokens,
            seed=seed,
        )


class Simulation:
    """Simulated users of ``app``, sending traces and feedback through ``producer``."""

    def __init__(
        self,
        app: ProductionApp,
        producer: Any,
        kafka: Any,
        world: Any,
        seed: int = 0,
        habits: Habits | None = None,
        prompts: str = "all",
    ) -> None:
        self.app, self.producer, self.kafka, self.world = app, producer, kafka, world
        # "all" also asks the 40 prompts the tiny world keeps out of its fine-tuning tests: every
        # distinct prompt counts, since curation holds out whole prompts and the world has only 200.
        self.prompt_split = prompts
        self.habits = habits or Habits()
        self.rng = random.Random(seed)
        # Trace and event ids from their own seeded stream: the same seed sends the same ids, so a
        # snapshot (ordered by its rows' ids) and every round after it are the same run to run,
        # and drawing ids does not shift the users' own random choices.
        self.ids = random.Random(f"ids-{seed}")
        self.seed = seed
        self.users = [f"user-{i:04d}" for i in range(300)]
        # (delivery time, event time, event): what has not been delivered yet.
        self.pending: list[tuple[dt.datetime, dt.datetime, dict[str, Any]]] = []

    def day(self, index: int, start: dt.datetime, requests: int) -> DayStats:
        """Serve ``requests`` responses spread over the day from ``start``; send what users do."""
        h, rng = self.habits, self.rng
        end = start + dt.timedelta(days=1)
        version = self.app.refresh()
        stats = DayStats(day=index, version=version)
        prompts = self.world.sample_prompts(requests, split=self.prompt_split, rng=rng)
        asked: list[Any] = [
            [{"role": "user", "content": p}] if rng.random() < h.chat_share else p for p in prompts
        ]
        completions = self.app.serve(asked, seed=self.seed * 1000 + index)
        feedback: list[tuple[dt.datetime, dt.datetime, dict[str, Any]]] = []
        for prompt, sent_prompt, completion in zip(prompts, asked, completions, strict=True):
            user = rng.choice(self.users)
            served_at = start + dt.timedelta(seconds=rng.uniform(0, SECONDS_PER_DAY - 1))
            trace_id = self.producer.send_trace(
                trace_id=self._new_id(),
                prompt=sent_prompt,
                completion=completion,
                model_version=version,
                event_time=served_at,
                user_id=user,
                session_id=f"{user}-d{index}",
                tags={"workload": "arithmetic", "client": rng.choice(("web", "ios", "android"))},
            )
            stats.served += 1
            stats.records += 1
            happy = self.world.approves(prompt, completion)
            stats.approved += happy
            feedback.extend(self._reactions(prompt, completion, trace_id, user, happy, served_at, stats))
        stats.records += self._send_due(feedback, start, end, stats)
        stats.records += self._malformed(requests, stats)
        self.producer.flush()
        return stats

    def _reactions(
        self,
        prompt: str,
        completion: str,
        trace_id: str,
        user: str,
        happy: bool,
        at: dt.datetime,
        stats: DayStats,
    ) -> list[tuple[dt.datetime, dt.datetime, dict[str, Any]]]:
        h, rng = self.habits, self.rng
        if rng.random() >= (h.vote_if_happy if happy else h.vote_if_unhappy):
            return []
        late = rng.random() < h.late
        delay = rng.uniform(2, 30) * 3600 if late else rng.uniform(5, 600)
        when = at + dt.timedelta(seconds=delay)
        deliver = when + dt.timedelta(days=1) if rng.random() < h.offline else when
        base = {"trace_id": trace_id, "user_id": user}
        if not happy and rng.random() < h.edit_share:
            stats.edits += 1
            fixed = self.world.answers(prompt)["concise"]
            return [(deliver, when, {**base, "kind": "edit", "edited_completion": fixed})]
        label_up = happy if rng.random() >= h.noise else not happy
        stats.votes_up += label_up
        stats.votes_down += not label_up
        out = [(deliver, when, {**base, "kind": "thumb", "label": "up" if label_up else "down"})]
        if rng.random() < h.change_mind:
            later = when + dt.timedelta(minutes=rng.uniform(1, 120))
            out.append((later, later, {**base, "kind": "thumb", "label": "down" if label_up else "up"}))
        return out

    def _new_id(self) -> str:
        return uuid.UUID(int=self.ids.getrandbits(128)).hex

    def _send_due(
        self,
        new: list[tuple[dt.datetime, dt.datetime, dict[str, Any]]],
        start: dt.datetime,
        end: dt.datetime,
        stats: DayStats,
    ) -> int:
        waiting = [*self.pending, *new]
        due = [item for item in waiting if item[0] < end]
        self.pending = [item for item in waiting if item[0] >= end]
        sent = 0
        for _, when, event in sorted(due, key=lambda item: item[0]):
            if when < start:
                stats.late_sent += 1  # delivered a day after it happened
            event_id = self.producer.send_feedback(event_time=when, event_id=self._new_id(), **event)
            sent += 1
            if self.rng.random() < self.habits.retry:
                # The client did not see the acknowledgement and sent the same event again.
                self.producer.send_feedback(event_time=when, event_id=event_id, **event)
                stats.retries += 1
                sent += 1
        return sent

    def _malformed(self, requests: int, stats: DayStats) -> int:
        from flywheel.dev.simulate import MALFORMED_KINDS, malformed

        # Every kind `flywheel simulate` sends but "oversize": a record past the ingest limit is
        # also past the producer's default max_request_size, and the app's producer keeps it.
        kinds = [k for k in MALFORMED_KINDS if k != "oversize"]
        count = max(1, round(requests * self.habits.malformed))
        for i in range(count):
            kind = kinds[(i + stats.day) % len(kinds)]
            topic, value = malformed(kind, self.rng, self.kafka.traces_topic, self.kafka.feedback_topic, 0)
            self.producer.send_raw(topic, value)
        stats.malformed += count
        return count


@functools.lru_cache(maxsize=1)
def _world() -> Any:
    from flywheel.dev.world import World

    return World()


def rubric(prompt: str, completion: str) -> float:
    """The tiny world's hidden preference as a gate judge (``evals.rubric = "flywheel.dev.app_sim:rubric"``).

    Accepts the prompt as text or as curated chat messages (a JSON list); an unknown prompt scores 0.
    """
    text = prompt
    if prompt.lstrip().startswith("["):
        try:
            messages = json.loads(prompt)
            text = next(m["content"] for m in reversed(messages) if m.get("role") == "user")
        except (ValueError, StopIteration, KeyError, TypeError, AttributeError):
            return 0.0
    try:
        score: float = _world().rubric(text, completion)
    except KeyError:
        return 0.0
    return score
