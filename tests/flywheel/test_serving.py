"""Serving hand-off: files a serving user can read, a stable path to the champion."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from flywheel.registry import Registry
from tests.flywheel.nightly_standins import fake_model


@pytest.fixture
def strict_umask():
    old = os.umask(0o077)  # what a hardened container (or a library writing via tempfile) gives
    try:
        yield
    finally:
        os.umask(old)


def test_versions_are_readable_by_other_users_whatever_the_umask(tmp_path: Path, strict_umask: None) -> None:
    reg = Registry(tmp_path / "registry")
    reg.register(fake_model(tmp_path / "base", "base"), champion=True, version="v1")
    with reg.stage("v2", {"kind": "candidate"}) as folder:
        fake_model(folder, "v2")
        (folder / "adapter").mkdir()
        (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"a" * 64)
    for version in ("v1", "v2"):
        root = reg.models / version
        assert stat.S_IMODE(root.stat().st_mode) == 0o755
        for path in root.rglob("*"):
            want = 0o755 if path.is_dir() else 0o644
            assert stat.S_IMODE(path.stat().st_mode) == want, path
    assert stat.S_IMODE((reg.root / "champion").stat().st_mode) == 0o644


def test_serving_current_follows_the_champion_atomically(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    reg.register(fake_model(tmp_path / "base", "base"), champion=True, version="v1")
    link = reg.root / "serving" / "current"
    assert link.is_symlink() and os.readlink(link) == "../models/v1"
    assert (link / "model.safetensors").read_bytes() == (reg.models / "v1" / "model.safetensors").read_bytes()
    with reg.stage("v2", {"kind": "candidate"}) as folder:
        fake_model(folder, "v2")
    reg.promote("v2", reason="gate passed")
    assert link.resolve() == (reg.models / "v2").resolve()
    reg.rollback(reason="regression")
    assert link.resolve() == (reg.models / "v1").resolve()
    # relative: the registry volume may be mounted elsewhere in the serving pod
    moved = tmp_path / "mounted-elsewhere"
    reg.root.rename(moved)
    assert (moved / "serving" / "current" / "config.json").is_file()
    assert not list((moved / "serving").glob(".current.*"))
