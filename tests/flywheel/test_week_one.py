"""What a first week in production trips on (issue 16, item 6): cron weekdays, Kubernetes'
service-link variables, paths relative to the config file, a read-only `status`, `--as-of`
against the history of its time, ingest's give-up time, cheap checks before torch."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flywheel import config as cfg
from flywheel.cli import main
from flywheel.cronspec import cron_problem, cron_trigger
from tests.flywheel.nightly_standins import fake_model

REPO = Path(__file__).resolve().parents[2]
MONDAY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a real Monday


def _fires(expr: str, n: int = 14, after: datetime = MONDAY) -> list[datetime]:
    trigger = cron_trigger(expr)
    out, prev, now = [], None, after
    for _ in range(n):
        fire = trigger.get_next_fire_time(prev, now)
        out.append(fire)
        prev = now = fire
    return out


def _days(expr: str, n: int = 14) -> set[str]:
    return {f.strftime("%a") for f in _fires(expr, n)}


def test_cron_weekdays_are_crontabs_sunday_zero() -> None:
    sundays = _fires("0 2 * * 0", 3)
    assert [f.date().isoformat() for f in sundays] == ["2026-12-06", "2026-12-13", "2026-12-20"]
    assert all(f.strftime("%a %H:%M") == "Sun 02:00" for f in sundays)
    assert _days("0 2 * * 7") == {"Sun"}
    assert _days("0 2 * * 1-5") == {"Mon", "Tue", "Wed", "Thu", "Fri"}
    assert _fires("0 2 * * 1-5", 1)[0].date().isoformat() == "2026-12-01"  # Monday 02:00 has passed
    assert _days("0 2 * * 6") == {"Sat"}
    assert _days("0 2 * * 5-7") == {"Fri", "Sat", "Sun"}
    assert _days("0 2 * * */2") == {"Sun", "Tue", "Thu", "Sat"}
    assert _days("0 2 * * mon,WED,5") == {"Mon", "Wed", "Fri"}
    assert _days("0 0 2 * * 0") == {"Sun"}  # six fields, seconds first: the same weekday numbers


def test_cron_refuses_what_it_would_read_differently_from_crontab() -> None:
    both = cron_problem("0 2 1 * 1")
    assert both is not None and "either matches" in both
    assert "0-7" in (cron_problem("0 2 * * 8") or "")
    assert "backwards" in (cron_problem("0 2 * * 5-1") or "")


def test_schedule_next_prints_the_next_fires(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["schedule", "--next", "4", "--set", "scheduler.cron=0 2 * * 1-5"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 4
    fires = [datetime.fromisoformat(line.split()[0]) for line in lines]
    assert all(f.weekday() < 5 and f.hour == 2 and f > datetime.now(UTC) for f in fires)
    assert fires == sorted(fires) and [line.split()[1] for line in lines] == [f"{f:%a}" for f in fires]


def test_kubernetes_service_link_variables_are_warned_about_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {
        "FLYWHEEL_SCHEDULER_PORT": "tcp://10.0.0.7:9464",
        "FLYWHEEL_SCHEDULER_PORT_9464_TCP_ADDR": "10.0.0.7",
        "FLYWHEEL_SCHEDULER_SERVICE_HOST": "10.0.0.7",
        "FLYWHEEL_KAFKA__CLIENT_ID": "from-env",
    }
    with caplog.at_level(logging.WARNING, logger="flywheel.config"):
        config = cfg.load(None, env=env)
    assert config.kafka.client_id == "from-env"
    assert config.scheduler.metrics_port == 9464  # untouched
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "ignoring FLYWHEEL_SCHEDULER_PORT:" in warned and "enableServiceLinks" in warned
    assert "FLYWHEEL_SCHEDULER_SERVICE_HOST" in warned


def test_relative_paths_in_a_file_are_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    f = conf / "config.toml"
    f.write_text('[paths]\nlake = "data/lake"\nregistry = "../reg"\nruns = "/abs/runs"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = cfg.load(f, env={"FLYWHEEL_PATHS__CACHE": "cache"})
    assert config.paths.lake == str(conf / "data" / "lake")
    assert Path(config.paths.registry).resolve() == tmp_path / "reg"
    assert config.paths.runs == "/abs/runs"
    assert config.paths.cache == "cache"  # the environment and flags stay relative to the working folder
    # The resolved file holds absolute paths, so it means the same wherever it is read from.
    resolved = cfg.write_resolved(config, tmp_path / "deep" / "down" / "resolved.toml")
    again = cfg.load(resolved, env={})
    assert again.paths.cache == str(elsewhere / "cache")
    assert again.paths.lake == config.paths.lake


def test_status_from_another_folder_reads_the_registry_next_to_the_config(tmp_path: Path) -> None:
    from core.registry import Registry

    conf = tmp_path / "deploy"
    Registry(conf / "registry").register(fake_model(tmp_path / "m", "m"), champion=True, version="base-1")
    (conf / "config.toml").write_text('[paths]\nregistry = "registry"\n')
    out = subprocess.run(
        [sys.executable, "-m", "flywheel.cli", "status", "--config", str(conf / "config.toml")],
        cwd="/",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    ).stdout
    assert "champion: base-1" in out


def test_status_writes_nothing_and_says_the_registry_is_missing(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flywheel.cli", "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    ).stdout
    assert list(tmp_path.iterdir()) == []
    assert "no such folder" in out and "champion: (none)" in out


@pytest.mark.parametrize("command", ["train", "eval"])
def test_a_wrong_snapshot_fails_before_torch_is_imported(tmp_path: Path, command: str) -> None:
    probe = (
        "import sys\nfrom flywheel.cli import main\n"
        f"code = main([{command!r}, '--snapshot', {str(tmp_path / 'nope')!r}])\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    took = time.monotonic() - t0
    assert done.stdout.split() == ["1", "False"], done.stderr
    assert "is not a curated snapshot" in done.stderr and took < 5


def test_ingest_gives_up_after_give_up_after_s(tmp_path: Path) -> None:
    import socket

    from core.errors import TransientError
    from ingest.service import IngestService

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = cfg.load(
        None,
        env={},
        overrides={
            "kafka.bootstrap_servers": f"127.0.0.1:{port}",
            "paths.lake": str(tmp_path / "lake"),
            "ingest.give_up_after_s": 2.0,
            "ingest.retry_backoff_s": 0.5,
        },
    )
    t0 = time.monotonic()
    with pytest.raises(TransientError, match="connecting to Kafka"):
        IngestService(config).connect()
    took = time.monotonic() - t0
    assert took < 2.0 + 2.0, f"gave up after {took:.1f}s with give_up_after_s = 2"


def test_as_of_ages_out_by_the_champion_history_of_that_time(tmp_path: Path) -> None:
    from curation.run import run
    from tests.curation.lakes import LakeBuilder

    lake = LakeBuilder()
    for i in range(24):
        day = f"2026-03-{10 + i % 4:02d}T"
        lake.trace(f"T{i}", day + "08:00:00Z", f"prompt {i}", f"answer {i}", "v1", session_id=f"s{i}")
        lake.feedback(f"F{i}", f"T{i}", day + "09:00:00Z", "up" if i % 2 else "down", f"u{i}")
    lake.write(tmp_path / "lake")
    registry = tmp_path / "registry"
    registry.mkdir()
    events = [("2026-03-01T00:00:00Z", "v1", None), ("2026-03-20T00:00:00Z", "v2", "v1")]
    (registry / "history.jsonl").write_text(
        "".join(
            json.dumps(
                {"ts": t, "action": "promote", "version": v, "previous": p, "reason": "t", "evidence": {}}
            )
            + "\n"
            for t, v, p in events
        )
    )
    config = cfg.load(
        None,
        env={},
        overrides={
            "paths.lake": str(tmp_path / "lake"),
            "paths.registry": str(registry),
            "curation.keep_last_champions": 1,
            "curation.eval_fraction": 0.25,
        },
    )
    snapshot = run(config, as_of="2026-03-15T00:00:00Z")  # v2 was promoted five days later
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["model_versions"]["kept"] == ["v1"]
    assert sum(manifest["class_counts"]["train"].values()) > 0
