"""Scriptable and observable: stdout carries only a command's result (`VERSION=$(flywheel train)`),
everything else (logs, the trainer's metrics, warnings, progress) goes to stderr through the
logger, as JSON lines with --log-format json; training.report_to names trackers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.registry import Registry
from flywheel import cli
from flywheel import config as cfg
from tests.fixtures_model import snapshot_rows, write_snapshot

REPO = Path(__file__).resolve().parents[2]


def _flywheel(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("FLYWHEEL_LOG_FORMAT", None)
    return subprocess.run(
        [sys.executable, "-m", "flywheel.cli", *args, "--log-format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = stderr.splitlines()
    assert lines, "nothing logged"
    docs = []
    for line in lines:
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"a stderr line is not JSON: {line!r}")
        assert isinstance(doc, dict) and {"ts", "level", "logger", "msg"} <= doc.keys(), line
        docs.append(doc)
    return docs


def _setup(tmp_path: Path, tiny_config: Any, tiny_world: Path, world: Any) -> tuple[Path, list[str]]:
    Registry.from_config(tiny_config).register(tiny_world, champion=True, version="tiny-base")
    snap = write_snapshot(
        tmp_path / "lake" / "curated" / "snap-a",
        snapshot_rows(world, 96, seed=1),
        snapshot_rows(world, 40, seed=2, split="held_out"),
    )
    flags = [
        f"--set=paths.{k}={getattr(tiny_config.paths, k)}" for k in ("lake", "registry", "runs", "cache")
    ]
    return snap, flags


def test_train_stdout_is_the_version_alone(
    tmp_path: Path, tiny_config: Any, tiny_world: Path, world: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    snap, flags = _setup(tmp_path, tiny_config, tiny_world, world)
    code = cli.main(
        ["train", "--snapshot", str(snap), *flags, "--set=training.max_steps=2", "--log-format=json"]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert out.splitlines() == [out.strip()] and out.strip() in Registry.from_config(tiny_config).versions()
    # the trainer's metric dicts (PrinterCallback's print) are log records now
    assert any(d["msg"].startswith("train step") and "loss" in d["metrics"] for d in _json_lines(err))


@pytest.mark.slow  # a fresh interpreter imports torch and trains (~20 s)
def test_train_prints_only_the_version_and_logs_metrics_as_json(
    tmp_path: Path, tiny_config: Any, tiny_world: Path, world: Any
) -> None:
    snap, flags = _setup(tmp_path, tiny_config, tiny_world, world)
    done = _flywheel("train", "--snapshot", str(snap), *flags, "--set=training.max_steps=4")

    assert done.returncode == 0, done.stderr[-2000:]
    version = done.stdout.removesuffix("\n")
    assert done.stdout == version + "\n" and "\n" not in version  # exactly one line: the version
    assert version in Registry.from_config(tiny_config).versions()
    docs = _json_lines(done.stderr)
    # the trainer's metrics and progress, through the logger (they were print()ed dicts on stdout)
    steps = [d for d in docs if d["logger"] == "training.trainer" and d["msg"].startswith("train step")]
    assert steps and steps[0]["max_steps"] == 4
    assert any("loss" in d["metrics"] for d in steps)
    assert not any("%|" in d["msg"] for d in docs)  # no progress bar off a terminal


@pytest.mark.slow  # a fresh interpreter imports DuckDB and Great Expectations (~20 s)
def test_curate_prints_only_the_path_and_reports_progress_on_stderr(tmp_path: Path) -> None:
    from tests.flywheel.test_aliases import AS_OF, _lake

    _lake(tmp_path, "v1")
    done = _flywheel(
        "curate",
        "--lake",
        str(tmp_path / "lake"),
        "--as-of",
        AS_OF,
        f"--set=paths.registry={tmp_path / 'registry'}",
        f"--set=paths.runs={tmp_path / 'runs'}",
    )

    assert done.returncode == 0, done.stderr[-2000:]
    path = Path(done.stdout.removesuffix("\n"))
    assert done.stdout == f"{path}\n" and (path / "manifest.json").is_file()
    docs = _json_lines(done.stderr)
    steps = [d.get("step") for d in docs if d["logger"] == "curation.run"]
    assert steps == ["read", "pipeline", "write", "quality", "done"], steps


def test_errors_are_json_lines_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["train", "--snapshot", str(tmp_path / "nope"), "--log-format", "json"])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    (doc,) = _json_lines(err)
    assert doc["level"] == "ERROR" and "flywheel train:" in doc["msg"]


def test_report_to_is_validated_and_a_missing_package_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.config import report_targets

    assert report_targets(cfg.defaults().training) == []  # none by default
    with pytest.raises(ConfigError, match="report_to is \\['comet'\\]"):
        cfg.load(None, env={}, overrides={"training.report_to": "comet"})
    with pytest.raises(ConfigError, match="report_to"):
        cfg.load(None, env={}, overrides={"training.report_to": "none,wandb"})
    missing = next(t for t in ("tensorboard", "mlflow", "wandb") if not _installed(t))
    config = cfg.load(None, env={}, overrides={"training.report_to": missing})
    with pytest.raises(ConfigError, match=f"pip install {missing}"):
        report_targets(config.training)
    # the command refuses it before training (exit 2, the install command in the message)
    flags = [f"--set=paths.registry={tmp_path / 'r'}", f"--set=training.report_to={missing}"]
    assert cli.main(["train", *flags]) == 2
    assert f"pip install {missing}" in capsys.readouterr().err


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
