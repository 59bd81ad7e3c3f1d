"""The registry: validated names, checksums checked on promote, one-command rollback, status, and
a champion that survives a crash between writing a version and switching to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flywheel import cli
from flywheel.registry import MANIFEST, Registry, RegistryError, validate_version


def fake_checkpoint(folder: Path, payload: bytes) -> Path:
    """A folder shaped like save_pretrained's output (the registry checks files, not tensors)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(payload)
    (folder / "tokenizer.json").write_text("{}")
    return folder


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "registry")
    reg.register(fake_checkpoint(tmp_path / "base", b"base-weights"), champion=True, version="v1")
    for name in ("v2", "v3"):
        with reg.stage(name, {"kind": "candidate", "snapshot_id": "snap"}) as folder:
            (folder / "model.safetensors").write_bytes(name.encode() * 100)
            (folder / "config.json").write_text("{}")
    return reg


@pytest.mark.parametrize("bad", ["", "../evil", "a/b", ".hidden", "x" * 65, "sp ace", "..", "-lead"])
def test_invalid_version_names_are_refused(bad: str, registry: Registry) -> None:
    with pytest.raises(RegistryError, match="invalid version name"):
        validate_version(bad)
    with pytest.raises(RegistryError):
        registry.promote(bad, reason="x")
    assert registry.champion() == "v1"


def test_promote_switches_and_records_evidence(registry: Registry) -> None:
    registry.promote("v2", reason="gate passed", evidence={"auc": 0.8, "report": "evals/v2-vs-v1"})
    assert registry.champion() == "v2"
    last = registry.history()[-1]
    assert (last.action, last.version, last.previous, last.reason) == ("promote", "v2", "v1", "gate passed")
    assert last.evidence == {"auc": 0.8, "report": "evals/v2-vs-v1"}
    with pytest.raises(RegistryError, match="already the champion"):
        registry.promote("v2", reason="again")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda f: (f / "model.safetensors").write_bytes(b"v2" * 100 + b"!"), "bytes, expected"),
        (lambda f: (f / "model.safetensors").write_bytes(b"V2" * 100), "sha256"),
        (lambda f: (f / "config.json").unlink(), "missing"),
        (lambda f: (f / MANIFEST).write_text("{not json"), "not valid JSON"),
    ],
)
def test_promote_refuses_damaged_versions(registry: Registry, damage, problem: str) -> None:
    damage(registry.models / "v2")
    with pytest.raises(RegistryError, match=problem):
        registry.promote("v2", reason="x")
    assert registry.champion() == "v1"
    assert [e.action for e in registry.history()].count("promote") == 1


def test_incomplete_versions_are_invisible_and_refused(registry: Registry) -> None:
    # A folder without MANIFEST.json (what a crash mid-copy would leave) is not a version.
    (registry.models / "v9").mkdir()
    (registry.models / "v9" / "model.safetensors").write_bytes(b"x")
    assert "v9" not in registry.versions()
    with pytest.raises(RegistryError, match="not in the registry"):
        registry.promote("v9", reason="x")
    with pytest.raises(RegistryError, match="already exists"), registry.stage("v2"):
        pass


def test_rollback_restores_the_previous_champion_in_one_command(registry: Registry, tmp_path: Path) -> None:
    registry.promote("v2", reason="r1")
    registry.promote("v3", reason="r2")
    config = tmp_path / "c.toml"
    config.write_text(f'[paths]\nregistry = "{registry.root}"\n')
    assert cli.main(["rollback", "--config", str(config), "--reason", "bad answers"]) == 0
    assert registry.champion() == "v2"
    assert registry.history()[-1].action == "rollback" and registry.history()[-1].reason == "bad answers"
    assert registry.rollback("again") == "v1"
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback("once more")
    assert registry.champion() == "v1"
    # A promotion after rollbacks starts a new lineage from v1.
    registry.promote("v3", reason="r3")
    assert registry.rollback("r4") == "v1"


def test_status_shows_champion_candidates_and_decisions(registry: Registry, capsys, tmp_path: Path) -> None:
    registry.reject("v3", reason="primary:auc CI does not exclude 0.5", evidence={"report": "x"})
    config = tmp_path / "c.toml"
    config.write_text(f'[paths]\nregistry = "{registry.root}"\n[registry]\nstatus_last = 2\n')
    assert cli.main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "champion: v1" in out
    assert "v2  [candidate] pending" in out
    assert "v3  [candidate] rejected (primary:auc CI does not exclude 0.5)" in out
    decisions = out.split("last decisions:")[1].strip().splitlines()
    assert len(decisions) == 2 and "reject" in decisions[-1]


def test_failure_between_staging_and_switch_leaves_the_champion(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def failing_replace(src: object, dst: object) -> None:
        if Path(str(dst)).name == "champion":
            raise OSError("disk full")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        registry.promote("v2", reason="x")
    monkeypatch.undo()
    assert registry.champion() == "v1"
    assert [e.action for e in registry.history()].count("promote") == 1
    registry.promote("v2", reason="retry")
    assert registry.champion() == "v2"


def test_a_process_killed_mid_write_leaves_no_version_and_the_champion(registry: Registry) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from flywheel.registry import Registry
        reg = Registry({str(registry.root)!r})
        with reg.stage("v4", {{"kind": "candidate"}}) as folder:
            (folder / "model.safetensors").write_bytes(b"half-written")
            os.kill(os.getpid(), signal.SIGKILL)  # dies after writing, before the rename and any switch
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert registry.champion() == "v1"
    assert "v4" not in registry.versions()
    assert list(registry.models.glob(".staging-v4-*"))  # the debris is there...
    with registry.stage("v5", {"kind": "candidate"}) as folder:
        (folder / "model.safetensors").write_bytes(b"ok")
    assert not list(registry.models.glob(".staging-v4-*"))  # ...and swept by the next writer
    with pytest.raises(RegistryError):
        registry.promote("v4", reason="x")


def test_history_is_append_only_json_lines(registry: Registry) -> None:
    registry.promote("v2", reason="a")
    registry.reject("v3", reason="b")
    lines = (registry.root / "history.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["action"] for e in events] == [
        "register",
        "promote",
        "register",
        "register",
        "promote",
        "reject",
    ]
    assert all({"ts", "action", "version", "previous", "reason", "evidence"} <= set(e) for e in events)
