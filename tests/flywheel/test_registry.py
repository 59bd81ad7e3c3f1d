"""The registry: validated names, checksums checked on promote, one-command rollback, status, and
a champion that survives a crash between writing a version and switching to it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.registry import MANIFEST, Registry, RegistryError, validate_version
from flywheel import cli


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
        from core.registry import Registry
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


# -- hardening (issue 13): promote trusts only what its manifest checksummed ----------------------


def _config(tmp_path: Path, registry_root: Path) -> Path:
    config = tmp_path / "c.toml"
    config.write_text(f'[paths]\nregistry = "{registry_root}"\n')
    return config


def _promotions(registry: Registry) -> int:
    return [e.action for e in registry.history()].count("promote")


def test_the_manifest_lists_every_file_and_nothing_else(registry: Registry) -> None:
    with registry.stage("v4", {"kind": "candidate", "files": {}, "version": "forged"}) as folder:
        (folder / "model.safetensors").write_bytes(b"w")
        (folder / "sub").mkdir()
        (folder / "sub" / "tokenizer.json").write_text("{}")
    manifest = registry.manifest("v4")
    assert sorted(manifest["files"]) == ["model.safetensors", "sub/tokenizer.json"]
    assert manifest["version"] == "v4"  # metadata cannot overwrite what the registry records
    assert registry.verify("v4") == []


@pytest.mark.parametrize("name", ["pytorch_model.bin", "notes.txt", "sub/extra.json"])
def test_promote_refuses_a_file_the_manifest_does_not_list(registry: Registry, name: str) -> None:
    extra = registry.models / "v2" / name
    extra.parent.mkdir(exist_ok=True)
    extra.write_bytes(b"\x80\x04K\x01.")  # a pickle of the int 1
    with pytest.raises(RegistryError, match=f"{name} is not listed in the manifest"):
        registry.promote("v2", reason="x")
    with pytest.raises(RegistryError, match="not listed in the manifest"):
        registry.path("v2")  # what training and the gate load from
    assert registry.champion() == "v1" and _promotions(registry) == 1


def test_promote_refuses_a_symlink_even_to_identical_bytes(registry: Registry, tmp_path: Path) -> None:
    weights = registry.models / "v2" / "model.safetensors"
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(weights.read_bytes())  # same bytes: the checksum alone would pass
    weights.unlink()
    weights.symlink_to(outside)
    with pytest.raises(RegistryError, match=r"model\.safetensors is a symlink"):
        registry.promote("v2", reason="x")
    assert registry.champion() == "v1" and _promotions(registry) == 1


def test_promote_refuses_a_symlinked_folder_and_a_symlinked_version(
    registry: Registry, tmp_path: Path
) -> None:
    with registry.stage("v4", {"kind": "candidate"}) as folder:
        (folder / "model.safetensors").write_bytes(b"w")
        (folder / "sub").mkdir()
        (folder / "sub" / "tokenizer.json").write_text("{}")
    sub = registry.models / "v4" / "sub"
    shutil.move(sub, tmp_path / "sub")
    sub.symlink_to(tmp_path / "sub")
    with pytest.raises(RegistryError, match="sub is a symlink"):
        registry.promote("v4", reason="x")
    (registry.models / "v5").symlink_to(registry.models / "v2")
    with pytest.raises(RegistryError, match="v5 is a symlink"):
        registry.promote("v5", reason="x")
    assert registry.champion() == "v1" and _promotions(registry) == 1


def test_promote_refuses_anything_not_a_regular_file(registry: Registry) -> None:
    os.mkfifo(registry.models / "v2" / "tokenizer.json")
    with pytest.raises(RegistryError, match=r"tokenizer\.json is not a regular file"):
        registry.promote("v2", reason="x")
    assert registry.champion() == "v1"


def test_stage_refuses_symlinks_and_special_files_and_leaves_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    (tmp_path / "w.safetensors").write_bytes(b"w")
    with (
        pytest.raises(RegistryError, match=r"model\.safetensors is a symlink"),
        registry.stage("v4") as folder,
    ):
        (folder / "model.safetensors").symlink_to(tmp_path / "w.safetensors")
    with pytest.raises(RegistryError, match="pipe is not a regular file"), registry.stage("v4") as folder:
        (folder / "model.safetensors").write_bytes(b"w")
        os.mkfifo(folder / "pipe")
    assert "v4" not in registry.versions()
    assert not list(registry.models.glob(".staging-*"))


@pytest.mark.parametrize(
    "name", ["pytorch_model.bin", "training_args.bin", "model.pt", "w.pth", "x.pkl", "c.ckpt"]
)
def test_pickle_weights_are_refused_everywhere(registry: Registry, tmp_path: Path, name: str) -> None:
    src = fake_checkpoint(tmp_path / "hf", b"weights")
    (src / name).write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(RegistryError, match=f"pickle.*{name}") as refused:
        registry.register(src, version="v4")
    assert "safetensors" in (refused.value.hint or "")
    with pytest.raises(RegistryError, match=f"pickle.*{name}"), registry.stage("v4") as folder:
        (folder / "model.safetensors").write_bytes(b"w")
        (folder / name).write_bytes(b"\x80\x04K\x01.")
    assert "v4" not in registry.versions()
    # A version written before this check (its manifest lists the pickle) can no longer be promoted.
    folder = registry.models / "v2"
    (folder / name).write_bytes(b"\x80\x04K\x01.")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(b"\x80\x04K\x01.").hexdigest(), "size": 5}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert any("pickle" in p for p in registry.verify("v2"))
    with pytest.raises(RegistryError, match="pickle"):
        registry.promote("v2", reason="x")
    assert registry.champion() == "v1"


def test_a_manifest_naming_files_outside_the_folder_is_refused(registry: Registry, tmp_path: Path) -> None:
    outside = registry.root / "outside.txt"
    outside.write_text("x")
    folder = registry.models / "v2"
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["../../outside.txt"] = {"sha256": hashlib.sha256(b"x").hexdigest(), "size": 1}
    manifest["files"]["config.json"] = {"size": "two"}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    problems = registry.verify("v2")
    assert "../../outside.txt is missing" in problems
    assert "the manifest's entry for config.json has no sha256 and size" in problems


@pytest.mark.parametrize(
    "bad", ["nl\n", "tab\there", "cr\r", "bell\x07", "del\x7f", "v1\n\n", "é", "nul\x00"]
)
def test_version_names_with_control_characters_are_refused(registry: Registry, bad: str) -> None:
    with pytest.raises(RegistryError, match="invalid version name"):
        validate_version(bad)
    with pytest.raises(RegistryError, match="invalid version name"), registry.stage(bad):
        pass
    with pytest.raises(RegistryError, match="invalid version name"):
        registry.reject(bad, reason="x")
    assert registry.champion() == "v1"


def test_register_champion_with_a_newline_in_the_version_fails_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "registry"
    src = fake_checkpoint(tmp_path / "base", b"base-weights")
    code = cli.main(
        [
            "register",
            str(src),
            "--champion",
            "--version",
            "nl\n",
            "--config",
            str(_config(tmp_path, root)),
            "--log-format",
            "text",
        ]
    )
    assert code == 1
    assert "invalid version name 'nl\\n'" in capsys.readouterr().err
    assert not root.exists() or sorted(p.name for p in root.iterdir() if p.name != ".lock") == []


def test_a_champion_pointer_naming_no_valid_version_is_reported_not_trusted(
    registry: Registry, tmp_path: Path, capsys
) -> None:
    (registry.root / "champion").write_text("nl\n\n")
    with pytest.raises(RegistryError, match="champion pointer"):
        registry.champion()
    assert cli.main(["status", "--config", str(_config(tmp_path, registry.root))]) == 0
    assert "champion: (damaged pointer" in capsys.readouterr().out
    registry.promote("v2", reason="repair")  # promote rewrites the pointer
    assert registry.champion() == "v2"


def test_a_torn_last_history_line_is_tolerated_on_read_and_repaired_on_write(
    registry: Registry, tmp_path: Path, capsys, caplog: pytest.LogCaptureFixture
) -> None:
    log = registry.root / "history.jsonl"
    whole = log.read_bytes()
    with log.open("ab") as f:
        f.write(b'{"action": "promote", "evidence": {}, "previous": "v1", "rea')  # killed mid-write
    assert [e.action for e in registry.history()] == ["register", "promote", "register", "register"]
    assert "torn last line" in caplog.text
    capsys.readouterr()
    assert cli.main(["status", "--config", str(_config(tmp_path, registry.root))]) == 0
    out, err = capsys.readouterr()
    assert "champion: v1" in out
    assert err.count("ignoring a torn last line") == 1  # warned once per command, no traceback
    registry.reject("v3", reason="after the crash")
    lines = log.read_bytes().splitlines()
    assert log.read_bytes().startswith(whole) and len(lines) == 5
    assert [json.loads(line)["action"] for line in lines][-1] == "reject"
    assert registry.lineage() == ["v1"]


def test_a_last_history_event_missing_only_its_newline_is_kept(registry: Registry) -> None:
    log = registry.root / "history.jsonl"
    log.write_bytes(log.read_bytes().rstrip(b"\n"))
    assert len(registry.history()) == 4
    registry.promote("v2", reason="next")
    assert [json.loads(line)["action"] for line in log.read_text().splitlines()] == [
        "register",
        "promote",
        "register",
        "register",
        "promote",
    ]


def test_a_damaged_history_line_before_the_last_is_a_clear_error(registry: Registry) -> None:
    log = registry.root / "history.jsonl"
    lines = log.read_text().splitlines()
    lines[1] = lines[1][:20]
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(RegistryError, match=r"history\.jsonl line 2 is not a history event"):
        registry.history()


def test_a_folder_copied_from_another_registry_registers_and_promotes(
    registry: Registry, tmp_path: Path
) -> None:
    copied = tmp_path / "copied"
    shutil.copytree(registry.models / "v1", copied)
    assert (copied / MANIFEST).is_file()
    version = registry.register(copied, version="v1-copy")
    manifest = registry.manifest(version)
    assert MANIFEST not in manifest["files"]
    assert manifest["source"] == str(copied.resolve()) and manifest["version"] == "v1-copy"
    assert registry.verify(version) == []
    registry.promote(version, reason="copied from another registry")
    assert registry.champion() == "v1-copy"


def test_a_version_whose_manifest_lists_itself_is_promotable(registry: Registry) -> None:
    # What register() wrote for a copied folder before it ignored the folder's own MANIFEST.json.
    folder = registry.models / "v2"
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][MANIFEST] = {"sha256": "0" * 64, "size": 1146}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert registry.verify("v2") == []
    registry.promote("v2", reason="copied before the fix")
    assert registry.champion() == "v2"


def test_a_sharded_index_naming_a_shard_that_is_not_safetensors_is_refused(registry: Registry) -> None:
    # transformers reads a shard whose name does not end in .safetensors with torch.load (pickle).
    index = {"metadata": {}, "weight_map": {"a": "model-1.safetensors", "b": "shard-2.dat"}}
    with pytest.raises(RegistryError, match=r"shard-2\.dat"), registry.stage("v4") as folder:
        (folder / "model-1.safetensors").write_bytes(b"w")
        (folder / "shard-2.dat").write_bytes(b"\x80\x04K\x01.")
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "v4" not in registry.versions()
    index["weight_map"]["b"] = "model-2.safetensors"
    with registry.stage("v4") as folder:
        for name in ("model-1.safetensors", "model-2.safetensors"):
            (folder / name).write_bytes(b"w")
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert registry.verify("v4") == []
    # Rewritten afterwards (and listed again) to point at a pickle: verify and path refuse it.
    folder = registry.models / "v4"
    (folder / "shard-2.dat").write_bytes(b"\x80\x04K\x01.")
    index["weight_map"]["b"] = "shard-2.dat"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    manifest = json.loads((folder / MANIFEST).read_text())
    for name in ("shard-2.dat", "model.safetensors.index.json"):
        data = (folder / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert registry.verify("v4") == [
        "model.safetensors.index.json names shards that are not safetensors files of the version: shard-2.dat"
    ]
    with pytest.raises(RegistryError, match=r"shard-2\.dat"):
        registry.path("v4")
