"""The lake in an object store (S3 through moto's real server on loopback): one object per batch and
date under the same deterministic name, no temporary objects, the same replay and offset-restart
guarantees as the local writer, and `flywheel ingest` killed with -9 mid-stream loses and doubles
nothing there either."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core import lake as lake_layout
from core.errors import ConfigError, TerminalError
from core.lake import ObjectLake, open_lake
from flywheel.config import load, write_resolved
from ingest.producer import EventProducer
from ingest.schema import decode
from ingest.service import run as ingest
from ingest.writer import DeadLetter, good_table, write_batch
from tests.ingest.lakeutil import committed, trace_event, wait_for
from tests.ingest.s3util import moto_server_fixture, object_names, s3_bucket_fixture  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_740_787_200_000  # 2025-03-01 00:00 UTC, in ms
DAY = 86_400_000


def _table(
    offsets: list[int], stamps: list[int], day_shift: list[int] | None = None, ingested_at: int = T0 + 10
) -> pa.Table:
    rows = [decode("traces", trace_event(o)) for o in offsets]
    if day_shift:  # move some events to the next day: the batch then spans two date folders
        rows = [
            decode("traces", trace_event(o, event_time="2025-03-02T10:00:00Z")) if o in day_shift else r
            for o, r in zip(offsets, rows, strict=True)
        ]
    return good_table("traces", "t", 0, offsets, list[int | None](stamps), rows, ingested_at)


def _lake(bucket: str) -> ObjectLake:
    lake = open_lake(f"s3://{bucket}/lake/")
    assert isinstance(lake, ObjectLake)
    return lake


def test_a_batch_is_one_object_per_date_under_its_name_and_a_replay_rewrites_it(s3_bucket: str) -> None:
    lake = _lake(s3_bucket)
    assert str(lake) == f"s3://{s3_bucket}/lake" and lake.root == f"{s3_bucket}/lake"
    letter = DeadLetter(3, T0 + 3, b"k", b"{not json", "not JSON", None, T0 // DAY)
    table = _table([0, 1, 2], [T0, T0 + 1, T0 + 2], day_shift=[2])
    written = write_batch(lake, "traces", "t", 0, 0, 3, table, [letter], T0 + 10)
    assert written.rows == 3 and written.dead_letters == 1
    names = [
        "dlq/traces/dt=2025-03-01/t-0-0-3.parquet",
        "raw/traces/dt=2025-03-01/t-0-0-3.parquet",
        "raw/traces/dt=2025-03-02/t-0-0-3.parquet",
    ]
    assert object_names(lake.fs, lake.root) == names  # nothing else: no temporary object
    assert sorted(written.paths) == sorted(f"s3://{s3_bucket}/lake/{n}" for n in names)
    day1 = pq.read_table(lake.path(names[1]), filesystem=lake.fs)
    assert day1.column("_offset").to_pylist() == [0, 1] and day1.schema == table.schema
    dead = pq.read_table(lake.path(names[0]), filesystem=lake.fs)
    assert dead.column("value").to_pylist() == [b"{not json"]
    # the consumer finds the batch when it takes the partition again; there are no temps to remove
    assert lake_layout.existing_batches(lake, "traces", "t", [0, 1]) == {0: {0: 3}, 1: {}}
    assert lake_layout.existing_batches(lake, "traces", "other", [0]) == {0: {}}
    assert lake_layout.remove_stale_temps(lake, "traces", "t", 0) == 0
    # a replay after a crash: the same log, one record fewer (a newer validator) -> rewritten in place
    again = write_batch(
        lake, "traces", "t", 0, 0, 3, _table([0, 2], [T0, T0 + 2], [2], T0 + 99), [letter], T0 + 99
    )
    assert sorted(again.paths) == sorted(written.paths)
    assert object_names(lake.fs, lake.root) == names
    day1 = pq.read_table(lake.path(names[1]), filesystem=lake.fs)
    assert day1.column("_offset").to_pylist() == [0]
    assert day1.column("_ingested_at").cast(pa.int64()).to_pylist() == [T0 + 99]


def test_other_records_under_an_objects_name_are_refused_and_nothing_is_written(s3_bucket: str) -> None:
    lake = _lake(s3_bucket)
    write_batch(lake, "traces", "t", 0, 0, 2, _table([0, 2], [T0, T0 + 2]), [], T0 + 10)
    path = lake.path("raw/traces/dt=2025-03-01/t-0-0-2.parquet")
    before = lake.fs.open_input_file(path).read()
    # the partition's offsets restarted: the same offsets with other Kafka timestamps; this batch
    # also has a dead letter, which must not be written either
    letter = DeadLetter(1, T0 + 5001, b"k", b"[]", "not an object", None, T0 // DAY)
    with pytest.raises(TerminalError) as info:
        write_batch(lake, "traces", "t", 0, 0, 2, _table([0, 2], [T0 + 5000, T0 + 5002]), [letter], T0 + 99)
    assert "offsets restarted" in info.value.message and f"s3://{s3_bucket}/lake/raw" in info.value.message
    assert "offset 0 was written at 2025-03-01 00:00:00+00:00" in info.value.message
    assert lake.fs.open_input_file(path).read() == before
    assert object_names(lake.fs, lake.root) == ["raw/traces/dt=2025-03-01/t-0-0-2.parquet"]


def test_a_failed_upload_raises_an_os_error_and_leaves_no_object(s3_bucket: str) -> None:
    lake = _lake(f"{s3_bucket}-missing")  # no such bucket: the store refuses the upload
    with pytest.raises(OSError):
        write_batch(lake, "traces", "t", 0, 0, 2, _table([0, 2], [T0, T0 + 2]), [], T0 + 10)


def test_lake_urls(tmp_path: Path, s3_bucket: str) -> None:
    assert open_lake(tmp_path / "lake") == tmp_path / "lake"
    assert open_lake(f"file://{tmp_path}/lake") == tmp_path / "lake"
    with pytest.raises(ConfigError) as info:
        open_lake("hdfs://namenode/lake")
    assert "hdfs:// is not a lake" in str(info.value) and "s3://bucket/prefix" in str(info.value)
    # an object-store URL in a config file is taken as it is, not as a path relative to the file
    toml = tmp_path / "flywheel.toml"
    toml.write_text(f'[paths]\nlake = "local"\nraw_lake = "s3://{s3_bucket}/lake"\n', encoding="utf-8")
    config = load(toml, env={})
    assert config.paths.raw_lake == f"s3://{s3_bucket}/lake"
    assert config.paths.lake == str(tmp_path / "local")
    reread = load(write_resolved(config, tmp_path / "resolved.toml"), env={})
    assert reread.paths.raw_lake == f"s3://{s3_bucket}/lake"


def _objects_read(lake: ObjectLake, kind: str) -> pa.Table | None:
    names = [n for n in object_names(lake.fs, lake.root) if n.startswith(f"{kind}/")]
    if not names:
        return None
    return pa.concat_tables([pq.read_table(lake.path(n), filesystem=lake.fs) for n in names])


def _offsets(lake: ObjectLake) -> dict[tuple[str, int], list[int]]:
    out: dict[tuple[str, int], list[int]] = {}
    for kind in ("raw", "dlq"):
        table = _objects_read(lake, kind)
        if table is None:
            continue
        cols = (table.column(c).to_pylist() for c in ("_topic", "_partition", "_offset"))
        for topic, part, off in zip(*cols, strict=True):
            out.setdefault((topic, part), []).append(off)
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing_on_s3(
    broker_config: Any, tmp_path: Path, s3_bucket: str, mode: str
) -> None:
    n = 6000
    url = f"s3://{s3_bucket}/lake"
    config = broker_config.replace(
        **{
            "paths.lake": url,
            "ingest.batch_max_records": 150,
            "ingest.batch_max_age_s": 3600.0,
            "ingest.writer_mode": mode,
        }
    )
    lake = _lake(s3_bucket)
    with EventProducer(config.kafka) as out:
        for i in range(n):
            out.send_raw(config.kafka.traces_topic, trace_event(i), key=f"k{i}".encode())
            if i % 500 == 0:  # a few dead letters, so the dlq objects take part
                out.send_raw(config.kafka.traces_topic, b"{broken", key=f"k{i}".encode())
    path = write_resolved(config, tmp_path / "doomed.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flywheel.cli", "ingest", "--config", str(path)],
        cwd=ROOT,
        env=dict(os.environ, FLYWHEEL_LOG_FORMAT="json"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: len(object_names(lake.fs, lake.root + "/raw")) >= 8, 90, "some batches in S3")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    before = set(object_names(lake.fs, lake.root))
    table = _objects_read(lake, "raw")
    written_before = 0 if table is None else table.num_rows
    assert written_before < n, "the kill came too late to interrupt anything"
    stats = ingest(config.replace(**{"ingest.idle_timeout_s": 1.5}))
    assert stats.consumed <= n + n // 500
    raw = _objects_read(lake, "raw")
    assert raw is not None
    trace_ids = Counter(raw.column("trace_id").to_pylist())
    assert set(trace_ids) == {f"tr-{i}" for i in range(n)}, "an event is missing"
    assert max(trace_ids.values()) == 1, "an event was written twice"
    dead = _objects_read(lake, "dlq")
    assert dead is not None and dead.num_rows == n // 500
    assert before <= set(object_names(lake.fs, lake.root)), "a replay wrote a different name"
    disk = _offsets(lake)
    for tp, offset in committed(config).items():
        assert disk.get(tp, []) == list(range(offset)), tp
    assert sum(committed(config).values()) == n + n // 500
