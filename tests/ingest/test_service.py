"""The ingest service against the real embedded broker: nothing lost, nothing doubled, bad records kept apart."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from ingest.producer import EventProducer
from ingest.service import IngestService
from ingest.service import run as ingest
from tests.fixtures_broker import fresh_topics
from tests.ingest.lakeutil import (
    committed,
    feedback_event,
    files,
    ids,
    offsets_on_disk,
    read,
    temps,
    trace_event,
    wait_for,
)

pytestmark = pytest.mark.broker

MODES = ("thread", "process")  # ingest.writer_mode: each guarantee holds in both


def _produce(config, n: int, start: int = 0) -> None:
    with EventProducer(config.kafka) as out:
        for i in range(start, start + n):
            out.send_raw(config.kafka.traces_topic, trace_event(i), key=f"tr-{i}".encode())
            out.send_raw(config.kafka.feedback_topic, feedback_event(i), key=f"tr-{i}".encode())


def _member(event: bytes, raw: bytes) -> bytes:
    """``event`` with one more member, written as raw JSON text (for what json.dumps cannot write)."""
    return event[:-1] + b", " + raw + b"}"


def _assert_offsets_match_disk(config) -> None:
    """Committed offset of every partition == number of records on disk for it, each offset once."""
    disk = offsets_on_disk(Path(config.paths.lake))
    for tp, offset in committed(config).items():
        seen = disk.get(tp, [])
        assert seen == list(range(offset)), f"{tp}: committed {offset}, on disk {len(seen)} offsets"


@pytest.mark.parametrize("mode", MODES)
def test_n_valid_events_give_exactly_n_rows(broker_config, mode):
    config = broker_config.replace(
        **{"ingest.idle_timeout_s": 1.5, "ingest.batch_max_records": 97, "ingest.writer_mode": mode}
    )
    _produce(config, 600)
    stats = ingest(config)
    lake = Path(config.paths.lake)
    assert sorted(ids(lake, "traces", "trace_id")) == sorted(f"tr-{i}" for i in range(600))
    assert sorted(ids(lake, "feedback", "event_id")) == sorted(f"fb-{i}" for i in range(600))
    assert stats.consumed == stats.written == 1200 and stats.dead_lettered == 0
    # the drain (last poll to last commit) is the end of the active span, after the idle wait
    assert 0 < stats.drain_s < stats.active_s
    assert all(p.parent.name == "dt=2025-03-01" for p in files(lake))
    assert not temps(lake)
    _assert_offsets_match_disk(config)


@pytest.mark.parametrize("mode", MODES)
def test_replay_by_another_group_rewrites_the_same_files(broker_config, mode):
    lake = Path(broker_config.paths.lake)
    _produce(broker_config, 400)
    first = broker_config.replace(
        **{"ingest.idle_timeout_s": 1.5, "ingest.batch_max_records": 60, "ingest.writer_mode": mode}
    )
    ingest(first)
    before = {p.name: p.stat().st_mtime_ns for p in files(lake)}
    # A new group starts from offset 0 with other batch limits: the plan on disk decides the cuts.
    again = first.replace(
        **{"ingest.group_id": first.ingest.group_id + "-replay", "ingest.batch_max_records": 23}
    )
    stats = ingest(again)
    after = {p.name: p.stat().st_mtime_ns for p in files(lake)}
    assert stats.written == 800
    assert set(after) == set(before)
    assert all(after[name] > before[name] for name in before), "replayed batches were rewritten in place"
    assert sorted(ids(lake, "traces", "trace_id")) == sorted(f"tr-{i}" for i in range(400))


@pytest.mark.parametrize("mode", MODES)
def test_bad_records_go_to_the_dead_letter_lake_and_the_good_ones_around_them_to_the_lake(
    broker_config, mode
):
    config = broker_config.replace(
        **{"ingest.idle_timeout_s": 1.5, "ingest.max_record_bytes": 8000, "ingest.writer_mode": mode}
    )
    k = config.kafka
    bad = {
        "malformed json": (k.traces_topic, b'{"trace_id": ', None, "not valid JSON"),
        "bad utf-8": (k.traces_topic, b'{"trace_id": "\xc3\x28"}', None, "not valid UTF-8"),
        "wrong type": (k.traces_topic, trace_event(0, trace_id=12), "trace_id", "expected a string"),
        "missing field": (k.feedback_topic, feedback_event(0, trace_id=None), "trace_id", "missing"),
        "unknown label": (k.feedback_topic, feedback_event(0, label="meh"), "label", "not one of up, down"),
        "unknown kind": (k.feedback_topic, feedback_event(0, kind="star"), "kind", "not one of thumb, edit"),
        "no offset": (
            k.traces_topic,
            trace_event(0, event_time="2025-03-01T10:00:00"),
            "event_time",
            "no UTC offset",
        ),
        "absurd year": (
            k.feedback_topic,
            feedback_event(0, event_time="1900-01-01T00:00:00Z"),
            "event_time",
            "year 1900",
        ),
        "oversize": (k.traces_topic, trace_event(0, completion="x" * 9000), None, "over the limit of 8000"),
        # Records the writer used to raise on (ingest exited 1, and again on every restart):
        "huge integer": (
            k.traces_topic,
            _member(trace_event(0), b'"n": ' + b"9" * 5000),
            None,
            "5000 digits",
        ),
        "huge version": (
            k.feedback_topic,
            _member(feedback_event(0), b'"schema_version": ' + b"9" * 5000),
            None,
            "5000 digits",
        ),
        "deep nesting": (
            k.traces_topic,
            _member(trace_event(0), b'"d": ' + b"[" * 990 + b"]" * 990),
            None,
            "nested",
        ),
        # and records that got into the lake although they break the contract:
        "NaN": (k.traces_topic, _member(trace_event(0), b'"x": NaN'), None, "NaN is not JSON"),
        "empty kind": (k.feedback_topic, feedback_event(0, kind=""), "kind", "an empty string is not one of"),
        "byte order mark": (k.traces_topic, b"\xef\xbb\xbf" + trace_event(0), None, "byte order mark"),
    }
    good = 0
    with EventProducer(k) as out:
        for n, (topic, value, _, _) in enumerate(bad.values()):
            for _ in range(3):  # good records before and after each bad one, on every partition
                out.send_raw(topic, trace_event(good) if topic == k.traces_topic else feedback_event(good))
                good += 1
            out.send_raw(topic, value, key=f"bad-{n}".encode())
    stats = ingest(config)
    lake = Path(config.paths.lake)
    dead = read(lake, "dlq", "*")
    assert dead is not None
    letters = dead.to_pylist()
    assert stats.dead_lettered == len(letters) == len(bad)
    by_value = {row["value"]: row for row in letters}
    for kind, (topic, value, field, fragment) in bad.items():
        row = by_value[value]
        assert row["_topic"] == topic, kind
        assert fragment in row["reason"], (kind, row["reason"])
        assert row["field"] == field, kind
    assert stats.written == good
    assert len(ids(lake, "traces", "trace_id")) + len(ids(lake, "feedback", "event_id")) == good
    _assert_offsets_match_disk(config)


@pytest.mark.parametrize("mode", MODES)
def test_two_consumers_split_the_partitions_and_a_leaver_hands_over(broker, tmp_path, mode):
    config = fresh_topics(
        broker, tmp_path / "lake", **{"ingest.batch_max_age_s": 0.3, "ingest.writer_mode": mode}
    )
    lake = tmp_path / "lake"
    stop_a, stop_b = threading.Event(), threading.Event()
    a, b = IngestService(config, stop_a), IngestService(config, stop_b)
    ta = threading.Thread(target=a.run)
    ta.start()
    wait_for(lambda: len(a.batches) == 8, 30, "the first consumer to own all 8 partitions")
    _produce(config, 300, 0)
    tb = threading.Thread(target=b.run)
    tb.start()
    wait_for(lambda: a.batches and b.batches and len(a.batches) + len(b.batches) == 8, 60, "a split")
    assert not set(a.batches) & set(b.batches)
    owned_by_b = set(b.batches)
    _produce(config, 300, 300)
    wait_for(lambda: b.stats.written > 0, 30, "the second consumer to write")
    stop_b.set()
    tb.join(30)
    wait_for(lambda: set(a.batches) >= owned_by_b, 60, "the first consumer to take the leaver's partitions")
    _produce(config, 300, 600)
    wait_for(lambda: len(ids(lake, "traces", "trace_id")) >= 900, 60, "everything on disk")
    stop_a.set()
    ta.join(30)
    traces = Counter(ids(lake, "traces", "trace_id"))
    assert set(traces) == {f"tr-{i}" for i in range(900)}
    assert max(traces.values()) == 1
    assert Counter(ids(lake, "feedback", "event_id")).most_common(1)[0][1] == 1
    assert a.stats.written > 0 and b.stats.written > 0
    _assert_offsets_match_disk(config)


@pytest.mark.parametrize("mode", MODES)
def test_a_broker_that_lost_its_log_is_refused_and_the_lake_keeps_what_it_had(broker_config, mode):
    """Another broker, or the same one restarted without its data, serves the same topic names
    from offset 0 again: the batches it gives have the names of files already in the lake but
    other records. Ingest stops with what to do; no file changes and no offset is committed."""
    from core.errors import TerminalError
    from flywheel.dev.broker import EmbeddedBroker

    config = broker_config.replace(**{"ingest.idle_timeout_s": 1.5, "ingest.writer_mode": mode})
    lake = Path(config.paths.lake)
    _produce(config, 200)
    ingest(config)
    before = {p: p.read_bytes() for p in files(lake)}
    assert len(ids(lake, "traces", "trace_id")) == 200
    topics = (config.kafka.traces_topic, config.kafka.feedback_topic)
    with EmbeddedBroker(topics=topics, partitions=4) as other:
        again = config.replace(
            **{"kafka.bootstrap_servers": other.bootstrap, "ingest.group_id": config.ingest.group_id + "-2"}
        )
        _produce(again, 200, start=1000)
        with pytest.raises(TerminalError, match="offsets restarted") as info:
            ingest(again)
        assert "move the lake's files" in (info.value.hint or "")
        assert not any(committed(again).values())
    assert {p: p.read_bytes() for p in files(lake)} == before
    assert not temps(lake)


def test_unknown_fields_are_kept(broker_config):
    config = broker_config.replace(**{"ingest.idle_timeout_s": 1.5})
    with EventProducer(config.kafka) as out:
        out.send_trace(
            prompt=[{"role": "user", "content": "hi"}], completion="yo", model_version="v2", region="eu"
        )
    ingest(config)
    table = read(Path(config.paths.lake), "raw", "traces")
    assert table is not None
    row = table.to_pylist()[0]
    assert json.loads(row["extra"]) == {"region": "eu"}
    assert row["prompt_format"] == "messages" and json.loads(row["prompt"])[0]["content"] == "hi"


def test_consumer_lag_gauge_is_highwater_minus_position_per_partition(broker_config):
    config = broker_config.replace(**{"ingest.max_messages": 100, "ingest.batch_max_records": 50})
    _produce(config, 300)  # 600 records over both topics
    service = IngestService(config)
    service.run()
    registry = service.metrics.registry
    lags = {
        (s.labels["topic"], s.labels["partition"]): s.value
        for metric in registry.collect()
        if metric.name == "flywheel_ingest_consumer_lag"
        for s in metric.samples
    }
    assert lags, "no lag reported"
    assert {topic for topic, _ in lags} <= {config.kafka.traces_topic, config.kafka.feedback_topic}
    # 600 produced, 100 read: what is left unread is the lag (as of the last fetch, within a poll)
    assert 0 < sum(lags.values()) <= 600 - 100
