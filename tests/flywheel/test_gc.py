"""`flywheel gc`: old versions, finished checkpoints and GX temporary folders removed; the champion,
every former champion and the newest versions kept; `registry.remove` refuses champions."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from core.registry import Registry, RegistryError
from flywheel import cli
from flywheel.gc import GX_MARKER, collect, gx_temp_folders
from flywheel.nightly import run
from tests.flywheel.nightly_standins import fake_model, make_config, seed_champion, stages


def _candidates(registry: Registry, names: list[str]) -> None:
    for name in names:
        with registry.stage(name, {"kind": "candidate"}) as folder:
            fake_model(folder, name)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """base-0 (first champion), c1..c6; c2 was promoted (then rolled back), c4 is the champion."""
    seed_champion(tmp_path)
    reg = Registry(tmp_path / "registry")
    _candidates(reg, ["c1", "c2", "c3"])
    reg.promote("c2", reason="night 2")
    reg.rollback(reason="bad night")
    _candidates(reg, ["c4"])
    reg.promote("c4", reason="night 4")
    _candidates(reg, ["c5", "c6"])
    reg.reject("c5", reason="night 5")
    return reg


def test_remove_refuses_the_champion_and_former_champions(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="it is the champion"):
        registry.remove("c4", reason="test")
    for former in ("base-0", "c2"):
        with pytest.raises(RegistryError, match="champion history"):
            registry.remove(former, reason="test")
    freed = registry.remove("c3", reason="test")
    assert freed > 0
    assert "c3" not in registry.versions()
    assert not (registry.models / "c3").exists()
    assert not list(registry.models.glob(".removing-*"))
    last = registry.history()[-1]
    assert (last.action, last.version, last.evidence["bytes"]) == ("gc", "c3", freed)
    assert registry.champion() == "c4"


def test_gc_keeps_the_newest_n_and_every_champion(tmp_path: Path, registry: Registry) -> None:
    config = make_config(tmp_path, **{"registry.keep_last": 2})
    report = collect(config, temp_dir=tmp_path / "tmp-none")
    # newest two: c5, c6; champions: base-0, c2 (former), c4 (current); c1 and c3 go.
    assert sorted(report.versions) == ["c1", "c3"]
    assert registry.versions() == ["base-0", "c2", "c4", "c5", "c6"]
    assert report.bytes_freed == 2 * (256 + len(json.dumps({"model_type": "fake", "seed": "c1"})))
    assert [e.version for e in registry.history() if e.action == "gc"] == ["c1", "c3"]
    # rollback still works after gc: c4 -> base-0 (c2 was popped by its own rollback)
    assert registry.rollback(reason="after gc") == "base-0"


def test_keep_flag_overrides_the_config_and_dry_run_removes_nothing(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command looks for report folders in the temporary directory: give it one of its own, so
    # the test neither depends on nor touches what other programs left in the machine's.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    config_file = tmp_path / "flywheel.toml"
    config_file.write_text(f'[paths]\nregistry = "{tmp_path / "registry"}"\nruns = "{tmp_path / "runs"}"\n')
    assert cli.main(["gc", "--config", str(config_file), "--keep", "1", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert sorted(Path(line).name for line in out.out.split()) == ["c1", "c3", "c5"]
    assert "would remove 3 version(s)" in out.err
    assert len(registry.versions()) == 7
    assert cli.main(["gc", "--config", str(config_file), "--keep", "1"]) == 0
    assert registry.versions() == ["base-0", "c2", "c4", "c6"]


def test_keep_zero_keeps_every_version(tmp_path: Path, registry: Registry) -> None:
    report = collect(make_config(tmp_path, **{"registry.keep_last": 0}), temp_dir=tmp_path)
    assert report.versions == [] and len(registry.versions()) == 7


def test_finished_checkpoints_go_unfinished_ones_stay(tmp_path: Path, registry: Registry) -> None:
    work = tmp_path / "runs" / "training"
    for name in ("c6", "c1", "cand-in-progress"):
        (work / name / "checkpoint-50").mkdir(parents=True)
        (work / name / "checkpoint-50" / "adapter_model.safetensors").write_bytes(b"x" * 1000)
    report = collect(make_config(tmp_path, **{"registry.keep_last": 2}), temp_dir=tmp_path / "none")
    # c6 is registered (kept), c1 was registered then removed: both runs finished.
    assert sorted(Path(p).name for p in report.checkpoints) == ["c1", "c6"]
    assert sorted(p.name for p in work.iterdir()) == ["cand-in-progress"]


def _gx_folder(root: Path, name: str, age_s: float) -> Path:
    folder = root / name
    (folder / GX_MARKER).parent.mkdir(parents=True)
    (folder / GX_MARKER).write_text("body {}")
    (folder / "index.html").write_text("<html></html>")
    old = time.time() - age_s
    os.utime(folder, (old, old))
    return folder


def test_old_gx_temp_folders_are_collected_young_and_foreign_ones_kept(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    old = _gx_folder(tmp, "tmpold123", 7200)
    _gx_folder(tmp, "tmpyoung45", 10)
    other = tmp / "tmpnotgx99"
    other.mkdir()
    os.utime(other, (time.time() - 7200,) * 2)
    assert gx_temp_folders(tmp) == [old]
    report = collect(make_config(tmp_path), temp_dir=tmp)
    assert report.temp_folders == [str(old)]
    assert sorted(p.name for p in tmp.iterdir()) == ["tmpnotgx99", "tmpyoung45"]


def test_nightly_runs_gc_when_configured_and_records_it(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    reg = Registry(tmp_path / "registry")
    _candidates(reg, ["old-1", "old-2", "old-3"])
    config = make_config(tmp_path, **{"nightly.gc": True, "registry.keep_last": 1})
    result = run(config, stages=stages(tmp_path))
    assert result.outcome == "promoted"
    gc = result.record["gc"]
    assert sorted(gc["versions"]) == ["old-1", "old-2", "old-3"]
    assert reg.versions() == ["base-0", result.record["candidate"]]
    saved = json.loads(next((tmp_path / "runs" / "rounds").glob("*.json")).read_text())
    assert saved["gc"]["versions"] == gc["versions"]


def test_nightly_without_gc_removes_nothing(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    reg = Registry(tmp_path / "registry")
    _candidates(reg, ["old-1", "old-2"])
    result = run(make_config(tmp_path, **{"registry.keep_last": 1}), stages=stages(tmp_path))
    assert "gc" not in result.record
    assert len(reg.versions()) == 4


def test_curation_quality_context_builds_no_temporary_docs_site(tmp_path: Path) -> None:
    """The ephemeral GX context's own Data Docs site (a fresh tmp folder per run) is dropped."""
    from curation import quality

    ctx = quality._context(tmp_path / "docs")
    assert list(ctx.list_data_docs_sites()) == [quality.DOCS_SITE]
