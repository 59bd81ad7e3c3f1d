"""Hand-built raw lakes with the ingest contract's schema (docs/contracts.md), for curation tests."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.lake import SCHEMAS

UTC = dt.UTC
# tiny_world_day: of the unhappy users, the share who fix the answer instead of a thumbs-down; the
# share of chat prompts.
EDIT_SHARE = 0.3
CHAT_SHARE = 0.2


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class LakeBuilder:
    """Collects trace and feedback events, then writes them as the ingest would."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {"traces": [], "feedback": []}
        self._offset = 0

    def _common(self, stream: str, event_time: dt.datetime, ingested: dt.datetime | None) -> dict[str, Any]:
        self._offset += 1
        arrived = ingested or event_time + dt.timedelta(seconds=5)
        return {
            "_topic": f"llm.{stream}",
            "_partition": 0,
            "_offset": self._offset,
            "_kafka_timestamp": arrived,
            "_ingested_at": arrived,
            "schema_version": 1,
            "extra": "{}",
        }

    def trace(
        self,
        trace_id: str,
        when: str,
        prompt: str,
        completion: str,
        model_version: str = "v1",
        session_id: str | None = None,
        user_id: str | None = None,
        ingested: str | None = None,
        prompt_format: str = "text",
    ) -> None:
        t = ts(when)
        self.rows["traces"].append(
            {
                **self._common("traces", t, ts(ingested) if ingested else None),
                "trace_id": trace_id,
                "event_time": t,
                "model_version": model_version,
                "prompt": prompt,
                "prompt_format": prompt_format,
                "completion": completion,
                "session_id": session_id,
                "user_id": user_id,
                "tags": "{}",
            }
        )

    def feedback(
        self,
        event_id: str,
        trace_id: str,
        when: str,
        label: str | None = "up",
        user_id: str | None = "u1",
        kind: str = "thumb",
        edited_completion: str | None = None,
        prompt: str | None = None,
        completion: str | None = None,
        model_version: str | None = None,
        ingested: str | None = None,
    ) -> None:
        t = ts(when)
        self.rows["feedback"].append(
            {
                **self._common("feedback", t, ts(ingested) if ingested else None),
                "event_id": event_id,
                "trace_id": trace_id,
                "event_time": t,
                "kind": kind,
                "label": label,
                "edited_completion": edited_completion,
                "user_id": user_id,
                "comment": None,
                "prompt": prompt,
                "prompt_format": "text" if prompt is not None else None,
                "completion": completion,
                "model_version": model_version,
            }
        )

    def write(self, lake: Path) -> Path:
        """One file per stream and event date, named from Kafka coordinates like the ingest's."""
        for stream, rows in self.rows.items():
            by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in rows:
                by_day[row["event_time"].date().isoformat()].append(row)
            for day, part in by_day.items():
                folder = lake / "raw" / stream / f"dt={day}"
                folder.mkdir(parents=True, exist_ok=True)
                first, last = part[0]["_offset"], part[-1]["_offset"]
                table = pa.Table.from_pylist(part, schema=SCHEMAS[stream])
                pq.write_table(table, folder / f"llm.{stream}-0-{first}-{last}.parquet", compression="zstd")
        return lake


def tiny_world_day(
    world: Any, lake: Path, traces: int = 1000, edits: bool = True, distinct: bool = False, seed: int = 7
) -> Path:
    """A day of the tiny world's champion (``tiny-base``) in the lake: answers drawn from the world's
    style mix, a thumb by the rubric on each (or, for ``EDIT_SHARE`` of the unhappy users, an edit to
    the concise answer), ``CHAT_SHARE`` of the prompts as chat messages. One session per prompt, so
    curation's held-out split is prompt-disjoint; ``distinct`` asks every prompt at most once (no
    two thumbs on one prompt, so with ``edits=False`` no pair can be mined)."""
    rng = random.Random(seed)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=20)
    users = [f"user-{i:03d}" for i in range(120)]
    index = {p: i for i, p in enumerate(world.prompts("all"))}
    builder = LakeBuilder()
    asked = world.prompts("all")[:traces] if distinct else world.sample_prompts(traces, "all", rng)
    for i, prompt in enumerate(asked):
        completion = rng.choice(world.all_answers(prompt)[world.draw_style(rng)])
        chat = rng.random() < CHAT_SHARE
        when = start + dt.timedelta(seconds=60 * i)
        user, trace_id = rng.choice(users), f"t{i:05d}"
        builder.trace(
            trace_id,
            when.isoformat(),
            json.dumps([{"role": "user", "content": prompt}]) if chat else prompt,
            completion,
            model_version="tiny-base",
            session_id=f"s-{index[prompt]:03d}",
            user_id=user,
            prompt_format="messages" if chat else "text",
        )
        happy = world.approves(prompt, completion)
        at = (when + dt.timedelta(seconds=30)).isoformat()
        if edits and not happy and rng.random() < EDIT_SHARE:
            fixed = world.answers(prompt)["concise"]
            builder.feedback(
                f"f{i:05d}", trace_id, at, label=None, user_id=user, kind="edit", edited_completion=fixed
            )
        else:
            builder.feedback(f"f{i:05d}", trace_id, at, label="up" if happy else "down", user_id=user)
    return builder.write(lake)
