"""Configuration precedence and validation: defaults < file < environment < flags; unknown keys fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel import config as cfg
from flywheel.errors import ConfigError


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[kafka]\nbootstrap_servers = "file:1"\nclient_id = "from-file"\n[paths]\nlake = "/file/lake"\n'
    )
    env = {"FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": "env:2", "FLYWHEEL_PATHS__LAKE": "/env/lake"}
    c = cfg.load(f, env=env, overrides={"paths.lake": "/flag/lake"})
    assert c.kafka.client_id == "from-file"
    assert c.kafka.bootstrap_servers == "env:2"
    assert c.paths.lake == "/flag/lake"
    assert cfg.defaults().paths.lake == "lake"


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[kafka]\nnope = 1\n[nosuch]\nx = 1\n[ingest]\nmax_messages = "ten"\n')
    with pytest.raises(ConfigError) as info:
        cfg.load(f, env={"FLYWHEEL_INGEST__NOPE": "1"})
    text = str(info.value)
    assert len(info.value.problems) == 4, text
    assert (
        "kafka.nope" in text
        and "[nosuch]" in text
        and "ingest.max_messages" in text
        and "FLYWHEEL_INGEST__NOPE" in text
    )


def test_env_text_is_coerced_to_field_types() -> None:
    c = cfg.load(
        None, env={"FLYWHEEL_INGEST__MAX_MESSAGES": "1_000", "FLYWHEEL_KAFKA__SSL_CHECK_HOSTNAME": "no"}
    )
    assert c.ingest.max_messages == 1000
    assert c.kafka.ssl_check_hostname is False


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    c = cfg.load(None, env={}, overrides={"kafka.client_id": "x", "ingest.idle_timeout_s": 2.5})
    out = cfg.write_resolved(c, tmp_path / "resolved.toml")
    again = cfg.load(out, env={})
    expected = c.replace(
        **{
            f"{s}.{k}": str(Path(getattr(c, s).__dict__[k]).absolute())
            for s, k in [
                ("paths", "lake"),
                ("paths", "registry"),
                ("paths", "runs"),
                ("paths", "cache"),
                ("demo", "out"),
            ]
        }
    )
    assert again.to_dict() == expected.to_dict()  # paths written absolute: the same from any folder


def test_invalid_file_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        cfg.load(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        cfg.load(bad, env={})
