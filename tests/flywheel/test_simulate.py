"""`flywheel simulate` sends realistic, reproducible traffic that ingest sorts into lake and dead letters."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from flywheel.dev.simulate import MALFORMED_KINDS
from flywheel.dev.simulate import run as simulate
from ingest.service import run as ingest
from tests.fixtures_broker import fresh_topics
from tests.ingest.lakeutil import read

pytestmark = pytest.mark.broker

SIM = {
    "simulate.count": 400,
    "simulate.seed": 7,
    "simulate.malformed_share": 0.1,
    "simulate.duplicate_share": 0.1,
    "simulate.flip_share": 0.2,
    "simulate.late_share": 0.1,
    "simulate.start_time": "2025-06-01T12:00:00Z",
    "ingest.max_record_bytes": 4096,
    "ingest.idle_timeout_s": 1.5,
}


def _lake(broker, lake: Path):
    config = fresh_topics(broker, lake, **SIM)
    stats = simulate(config)
    ingest(config)
    return stats, read(lake, "raw", "traces").to_pylist(), read(lake, "raw", "feedback").to_pylist(), lake


def test_simulated_traffic_has_every_feature_and_every_bad_kind(broker, tmp_path):
    stats, traces, feedback, lake = _lake(broker, tmp_path / "lake")
    assert len(traces) == stats.traces == 400
    assert len(feedback) == stats.feedback
    assert len({t["model_version"] for t in traces}) == 3
    assert len({t["user_id"] for t in traces}) > 30
    labels = Counter(f["label"] for f in feedback if f["kind"] == "thumb")
    assert labels["down"] > labels["up"] > 0
    assert stats.edits == len({f["event_id"] for f in feedback if f["kind"] == "edit"}) > 0
    # Client retries: the same event id twice.
    repeats = Counter(f["event_id"] for f in feedback)
    assert sum(n - 1 for n in repeats.values()) == stats.duplicates > 0
    # Changed votes: one user, one trace, both labels, the later one last.
    votes = defaultdict(set)
    for f in feedback:
        if f["kind"] == "thumb":
            votes[(f["user_id"], f["trace_id"])].add(f["label"])
    assert sum(len(v) == 2 for v in votes.values()) == stats.flips > 0
    # Late feedback: an hour or more after the response.
    served = {t["trace_id"]: t["event_time"] for t in traces}
    assert (
        sum(f["event_time"] - served[f["trace_id"]] > dt.timedelta(hours=1) for f in feedback)
        >= stats.late
        > 0
    )
    # Every malformed kind reached the dead-letter lake with a reason.
    letters = read(lake, "dlq", "*").to_pylist()
    assert set(stats.malformed) == set(MALFORMED_KINDS)
    assert len(letters) == sum(stats.malformed.values())
    assert all(row["reason"] for row in letters)
    assert any("over the limit of 4096" in row["reason"] for row in letters)
    assert "simulated 400 responses" in stats.summary()


def test_the_same_seed_sends_the_same_traffic(broker, tmp_path):
    _, traces_a, feedback_a, _ = _lake(broker, tmp_path / "a")
    _, traces_b, feedback_b, _ = _lake(broker, tmp_path / "b")

    def key(rows, id_column):
        return sorted((r[id_column], r["event_time"], r.get("completion"), r.get("label")) for r in rows)

    assert key(traces_a, "trace_id") == key(traces_b, "trace_id")
    assert key(feedback_a, "event_id") == key(feedback_b, "event_id")
    assert json.loads(traces_a[0]["tags"])["workload"] == "chat"
