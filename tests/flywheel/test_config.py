"""Configuration precedence and validation: defaults < file < environment < flags; unknown keys fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from flywheel import config as cfg


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


def test_flywheel_config_shows_every_key_with_value_default_source_and_help(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from flywheel.cli import main

    f = tmp_path / "c.toml"
    f.write_text('[training]\nlearning_rate = 2e-5\n[paths]\nlake = "data/lake"\n')
    monkeypatch.setenv("FLYWHEEL_EVALS__JUDGE_CONCURRENCY", "9")
    argv = ["config", "--config", str(f), "--set", "nightly.min_train_rows=5", "--json"]
    assert main(argv) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    every = {f"{name}.{key}" for name, sec in cfg.defaults().sections.items() for key in vars(sec)}
    assert set(rows) == every and len(every) > 150
    assert all(r["help"] for r in rows.values()), "every key has a line of help"
    lr = rows["training.learning_rate"]
    assert (lr["value"], lr["default"], lr["source"], lr["origin"]) == (2e-5, 5e-4, "file", f"file {f}")
    assert rows["paths.lake"]["value"] == str(tmp_path / "data" / "lake")
    assert (rows["evals.judge_concurrency"]["value"], rows["evals.judge_concurrency"]["source"]) == (9, "env")
    assert (rows["nightly.min_train_rows"]["value"], rows["nightly.min_train_rows"]["source"]) == (5, "flag")
    assert rows["training.beta"]["source"] == "default" and rows["training.beta"]["value"] == 0.1
    # The text form: one key a line with where it came from, its help beneath.
    assert main(["config", "--config", str(f), "--section", "training"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("[training]\n") and "[evals]" not in text
    assert f"training.learning_rate = 2e-05    (file {f}; default 0.0005)\n    peak AdamW" in text


def test_misspelt_keys_and_sections_get_a_suggestion(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[trainig]\nbeta = 0.2\n[training]\nlearning_rat = 1e-5\n")
    with pytest.raises(ConfigError) as info:
        cfg.load(f, env={"FLYWHEEL_KAFKA__BOOTSTRAP_SERVER": "x:1"})
    text = str(info.value)
    assert "unknown section [trainig]; did you mean training?" in text
    assert "unknown key training.learning_rat; did you mean training.learning_rate?" in text
    assert "did you mean kafka.bootstrap_servers?" in text
    assert "`flywheel config` lists every key" in text  # the hint
    with pytest.raises(ConfigError, match=r"zzz.*known in \[kafka\]: bootstrap_servers"):
        cfg.load(None, env={}, overrides={"kafka.zzz": "1"})


def test_help_points_to_flywheel_config() -> None:
    from flywheel.cli import build_parser

    assert "`flywheel config` lists every key" in build_parser().format_help().replace("\n", " ")
