"""Hand-built raw lakes with the ingest contract's schema (docs/contracts.md), for curation tests."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curation.lake import SCHEMAS

UTC = dt.UTC


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
    ) -> None:
        t = ts(when)
        self.rows["traces"].append(
            {
                **self._common("traces", t, ts(ingested) if ingested else None),
                "trace_id": trace_id,
                "event_time": t,
                "model_version": model_version,
                "prompt": prompt,
                "prompt_format": "text",
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
