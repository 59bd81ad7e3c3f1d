"""The batch writer: a replay rewrites its files in place, and never replaces a file that holds
other records of the partition (its offsets restarted: topic recreated, broker log lost)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core import lake as lake_layout
from core.errors import TerminalError
from ingest.schema import decode
from ingest.writer import good_table, write_batch
from tests.ingest.lakeutil import temps, trace_event

T0 = 1_740_787_200_000  # 2025-03-01 00:00 UTC, in ms
FIRST, LAST = 0, 2  # what names the batch's file, whichever of its records are valid


def _write(lake: Path, offsets: list[int], stamps: list[int], ingested_at: int) -> Path:
    rows = [decode("traces", trace_event(o)) for o in offsets]
    table = good_table("traces", "t", 0, offsets, stamps, rows, ingested_at)
    (path,) = write_batch(lake, "traces", "t", 0, FIRST, LAST, table, [], ingested_at).paths
    return path


def test_a_replay_of_the_same_records_rewrites_the_file(tmp_path: Path) -> None:
    first = _write(tmp_path, [0, 1, 2], [T0, T0 + 1, T0 + 2], T0 + 10)
    # the same log; one record fewer (as when a newer validator dead-letters it) is still a replay
    again = _write(tmp_path, [0, 2], [T0, T0 + 2], T0 + 99)
    assert again == first
    assert pq.read_table(first, columns=["_ingested_at"]).column(0)[0].value == T0 + 99


@pytest.mark.parametrize(
    ("offsets", "stamps", "detail"),
    [
        (
            [0, 1, 2],
            [T0 + 5000, T0 + 5001, T0 + 5002],
            "offset 0 was written at 2025-03-01 00:00:00+00:00 and is now 2025-03-01 00:00:05",
        ),
        ([1], [T0 + 1], "the two hold no offset in common"),
    ],
)
def test_other_records_under_a_files_name_are_refused_and_lose_nothing(
    tmp_path: Path, offsets: list[int], stamps: list[int], detail: str
) -> None:
    first = _write(tmp_path, [0, 2], [T0, T0 + 2], T0 + 10)
    before = first.read_bytes()
    with pytest.raises(TerminalError) as info:
        _write(tmp_path, offsets, stamps, T0 + 99)
    assert "offsets restarted" in info.value.message and detail in info.value.message
    assert "the records are still in Kafka" in (info.value.hint or "")
    assert first.read_bytes() == before
    assert not temps(tmp_path)


def test_one_listing_finds_each_partitions_batches_in_raw_and_dlq(tmp_path: Path) -> None:
    for name in [
        "raw/traces/dt=2025-03-01/t-0-0-9.parquet",
        "dlq/traces/dt=2025-02-27/t-0-10-19.parquet",
        "raw/traces/dt=2025-03-02/t-2-5-7.parquet",
        "raw/traces/dt=2025-03-01/t-x-0-40-49.parquet",  # another topic, whose name starts "t-"
        "raw/traces/dt=2025-03-01/.t-0-20-29.parquet.abc.tmp",  # a temporary file: no batch
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    plans = lake_layout.existing_batches(tmp_path, "traces", "t", [0, 1, 2])
    assert plans == {0: {0: 9, 10: 19}, 1: {}, 2: {5: 7}}
    assert lake_layout.existing_batches(tmp_path, "traces", "t-x", [0]) == {0: {40: 49}}
    assert lake_layout.existing_batches(tmp_path, "feedback", "t", [0]) == {0: {}}
