"""Curation of a raw lake in an object store (S3 through moto's real server on loopback): the same
dt= pruning and footer counts as on local disk, and the same snapshot as a local copy of the files;
snapshots stay local (paths.lake), so a URL there is refused with what to set instead."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from core.lake import ObjectLake, open_lake
from core.snapshot import load_manifest
from curation.errors import CurationError
from curation.lake import window_files
from curation.run import run
from flywheel.config import Config
from tests.curation import scenario
from tests.curation.conftest import make_config
from tests.ingest.s3util import moto_server_fixture, s3_bucket_fixture  # noqa: F401 (fixtures)


def _upload(local: Path, bucket: str) -> ObjectLake:
    """The local lake's raw/ (and dlq/) copied to s3://<bucket>/lake, file for file."""
    lake = open_lake(f"s3://{bucket}/lake")
    assert isinstance(lake, ObjectLake)
    for kind in ("raw", "dlq"):
        if (local / kind).is_dir():
            pafs.copy_files(str(local / kind), lake.path(kind), destination_filesystem=lake.fs)
    return lake


@pytest.fixture
def scenario_lakes(tmp_path: Path, s3_bucket: str) -> tuple[Path, ObjectLake]:
    local = scenario.build().write(tmp_path / "lake")
    return local, _upload(local, s3_bucket)


def test_window_files_prune_and_count_the_same_dates_in_s3(scenario_lakes: tuple[Path, ObjectLake]) -> None:
    local, remote = scenario_lakes
    as_of = dt.datetime.fromisoformat(scenario.AS_OF.replace("Z", "+00:00")).date()
    for stream, first in (
        ("feedback", as_of - dt.timedelta(days=30)),
        ("traces", as_of - dt.timedelta(days=2)),
    ):
        here, older_rows, older_files = window_files(local, stream, first, as_of)
        there = window_files(remote, stream, first, as_of)
        prefix = f"s3://{remote.root}/"
        assert there == ([prefix + str(Path(f).relative_to(local)) for f in here], older_rows, older_files)
        assert here, f"the scenario has {stream} in the window"
    # the scenario has feedback folders before the window and after --as-of: both are pruned
    all_dates = window_files(remote, "feedback", dt.date(2000, 1, 1), dt.date(2100, 1, 1))[0]
    window = window_files(remote, "feedback", as_of - dt.timedelta(days=30), as_of)
    assert len(window[0]) < len(all_dates) and window[2] > 0


@pytest.mark.slow
def test_curation_of_the_s3_lake_gives_the_local_copys_snapshot(
    scenario_snapshot: tuple[Config, Path], tmp_path: Path, s3_bucket: str
) -> None:
    local_config, local_snapshot = scenario_snapshot
    remote = _upload(Path(local_config.paths.lake), s3_bucket)
    scenario.write_history(tmp_path / "registry", ["v0", "v1", "v2"])
    config = make_config(tmp_path, **scenario.OVERRIDES, **{"paths.raw_lake": str(remote)})
    snapshot = run(config, as_of=scenario.AS_OF)
    assert snapshot.name == local_snapshot.name  # the snapshot id: same rows, same decisions
    assert snapshot.parent == tmp_path / "lake" / "curated"  # written locally, under paths.lake
    ours, theirs = load_manifest(snapshot), load_manifest(local_snapshot)
    assert ours["counts"] == theirs["counts"]
    assert ours["inputs"]["raw_lake"] == f"s3://{s3_bucket}/lake"
    assert {k: v for k, v in ours["inputs"].items() if "lake" not in k} == {
        k: v for k, v in theirs["inputs"].items() if "lake" not in k
    }
    assert ours["hashes"]["files"] == theirs["hashes"]["files"]


def test_a_url_as_paths_lake_is_refused_with_what_to_set(tmp_path: Path) -> None:
    config = make_config(tmp_path, **{"paths.lake": "s3://bucket/lake"})
    with pytest.raises(CurationError) as info:
        run(config, as_of=scenario.AS_OF)
    assert "must be a local folder" in str(info.value)
    assert "paths.raw_lake = 's3://bucket/lake'" in (info.value.hint or "")
