"""The names the app serves (traces' model_version) stand for registry versions in curation's
age-out by version: set in the config (`registry.aliases`) or on `flywheel register --alias`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.registry import Registry, RegistryError
from flywheel import config as cfg
from flywheel.cli import main
from tests.curation.lakes import LakeBuilder
from tests.flywheel.nightly_standins import fake_model

AS_OF = "2026-03-15T00:00:00Z"


def _lake(root: Path, served: str) -> None:
    lake = LakeBuilder()
    for i in range(24):
        day = f"2026-03-{10 + i % 4:02d}T"
        lake.trace(f"T{i}", day + "08:00:00Z", f"prompt {i}", f"answer {i}", served, session_id=f"s{i}")
        lake.feedback(f"F{i}", f"T{i}", day + "09:00:00Z", "up" if i % 2 else "down", f"u{i}")
    lake.write(root / "lake")


def _config(root: Path, **overrides: object) -> cfg.Config:
    return cfg.load(
        None,
        env={},
        overrides={
            "paths.lake": str(root / "lake"),
            "paths.registry": str(root / "registry"),
            "curation.keep_last_champions": 1,
            "curation.eval_fraction": 0.25,
            **overrides,
        },
    )


def _champion(root: Path, aliases: tuple[str, ...] = ()) -> str:
    registry = Registry(root / "registry")
    version = registry.register(fake_model(root / "m", "m"), version="v3", aliases=aliases)
    # promoted before the window, so the age-out by version applies at AS_OF
    (root / "registry" / "history.jsonl").write_text(
        json.dumps(
            {
                "ts": "2026-03-01T00:00:00Z",
                "action": "promote",
                "version": version,
                "previous": None,
                "reason": "t",
                "evidence": {},
            }
        )
        + "\n"
    )
    return version


def test_config_alias_keeps_the_served_names_rows(tmp_path: Path) -> None:
    from curation.run import run

    _lake(tmp_path, "qwen-prod")
    _champion(tmp_path)
    snapshot = run(_config(tmp_path, **{"registry.aliases": {"qwen-prod": "v3"}}), as_of=AS_OF)
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["model_versions"]["kept"] == ["v3", "qwen-prod"]
    assert "qwen-prod" in manifest["model_versions"]["note"]
    assert sum(manifest["class_counts"]["train"].values()) > 0


def test_register_alias_is_recorded_and_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from curation.run import run

    _lake(tmp_path, "sim-v1")
    _champion(tmp_path, aliases=("sim-v1",))
    registry = Registry(tmp_path / "registry")
    assert registry.aliases() == {"sim-v1": "v3"}
    assert registry.aliases({"sim-v1": "v9"}) == {"sim-v1": "v9"}  # the config wins
    snapshot = run(_config(tmp_path), as_of=AS_OF)
    assert json.loads((snapshot / "manifest.json").read_text())["model_versions"]["kept"] == ["v3", "sim-v1"]
    # through the command line
    code = main(
        [
            "register",
            str(fake_model(tmp_path / "m2", "m2")),
            "--version",
            "v4",
            "--alias",
            "qwen-prod",
            "--set",
            f"paths.registry={tmp_path / 'registry'}",
        ]
    )
    assert code == 0 and capsys.readouterr().out.strip() == "v4"
    assert registry.aliases()["qwen-prod"] == "v4"
    with pytest.raises(RegistryError, match="alias"):
        registry.register(fake_model(tmp_path / "m3", "m3"), version="v5", aliases=(" ",))


@pytest.mark.slow  # one more curation (~12 s): the failure the alias prevents
def test_without_an_alias_the_served_names_rows_are_aged_out(tmp_path: Path) -> None:
    from curation.errors import DataQualityError
    from curation.run import run

    _lake(tmp_path, "qwen-prod")
    _champion(tmp_path)
    with pytest.raises(DataQualityError):
        run(_config(tmp_path), as_of=AS_OF)


def test_bad_aliases_in_the_config_are_refused() -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="aliases"):
        cfg.load(None, env={}, overrides={"registry.aliases": {"qwen-prod": ""}})
