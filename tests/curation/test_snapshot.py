"""The hand-built scenario curated end to end: counts, rows, weights, files, immutability, --as-of."""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core.snapshot import latest_snapshot, load_manifest
from curation.run import run
from flywheel.config import Config
from tests.curation import scenario
from tests.curation.conftest import make_config


def _rows(path: Path) -> list[tuple[str, str, bool, str]]:
    table = pq.read_table(path).to_pylist()
    return [(r["prompt"], r["completion"], r["label"], r["source"]) for r in table]


def test_counts_after_every_step_are_the_expected_ones(scenario_snapshot: tuple[Config, Path]) -> None:
    _, path = scenario_snapshot
    counts = load_manifest(path)["counts"]
    assert {k: counts[k] for k in scenario.EXPECTED_COUNTS} == scenario.EXPECTED_COUNTS


def test_rows_are_the_expected_ones(scenario_snapshot: tuple[Config, Path]) -> None:
    _, path = scenario_snapshot
    rows = _rows(path / "train.parquet")
    assert _rows(path / "eval.parquet") == []
    counted = Counter(rows)
    assert counted[("p6", "c6", True, "thumb")] == 2  # the majority of the p6/c6 conflict, both voters
    assert set(rows) - scenario.CAPPED_PROMPT - scenario.HEAVY == scenario.EXPECTED_FIXED
    assert len([r for r in rows if r in scenario.CAPPED_PROMPT]) == 2
    assert len([r for r in rows if r in scenario.HEAVY]) == 4
    assert len(rows) == 14


def test_snapshot_columns_follow_the_contract(scenario_snapshot: tuple[Config, Path]) -> None:
    _, path = scenario_snapshot
    schema = pq.read_schema(path / "train.parquet")
    types = {f.name: str(f.type) for f in schema}
    for name in (
        "prompt",
        "prompt_format",
        "completion",
        "trace_id",
        "model_version",
        "source",
        "session_id",
        "user_id",
        "tags",
    ):
        assert types[name] in ("string", "large_string"), name
    assert types["label"] == "bool"
    assert types["event_time"] == "timestamp[us, tz=UTC]"
    row = next(r for r in pq.read_table(path / "train.parquet").to_pylist() if r["source"] == "edit")
    assert (row["trace_id"], row["model_version"], row["session_id"], row["user_id"]) == (
        "T9",
        "v2",
        "s9",
        "u8",
    )


def test_manifest_has_weights_classes_hashes_and_config(scenario_snapshot: tuple[Config, Path]) -> None:
    _, path = scenario_snapshot
    manifest = load_manifest(path)
    assert manifest["snapshot_id"] == path.name
    assert manifest["as_of"] == "2026-03-31T12:00:00+00:00"
    assert manifest["class_counts"] == {
        "train": {"desirable": 12, "undesirable": 2},
        "eval": {"desirable": 0, "undesirable": 0},
    }
    # 12 desirable vs 2 undesirable: undesirable up-weighted, desirable fixed at 1, ratio in [1, 4/3]
    kto = manifest["kto"]
    assert kto["desirable_weight"] == 1.0
    assert kto["undesirable_weight"] == pytest.approx(36 / 7, abs=1e-6)
    assert 1 <= 12 * kto["desirable_weight"] / (2 * kto["undesirable_weight"]) <= 4 / 3
    assert manifest["model_versions"]["kept"] == ["v2", "v1"]
    # one row held every kind (scenario.PII_PROMPT, PII_COMPLETION)
    redaction = manifest["redaction"]
    assert redaction["rows"] == dict.fromkeys(("email", "card", "ip", "phone", "ssn", "iban", "secret"), 1)
    assert (redaction["enabled"], redaction["rows_any"], redaction["phone_regions"]) == (
        True,
        1,
        ["US", "GB", "DE", "FR", "IN"],
    )
    assert set(manifest["hashes"]["files"]) == {
        "train.parquet",
        "eval.parquet",
        "pairs.parquet",
        "pairs_eval.parquet",
    }
    resolved = tomllib.loads((path / "config.toml").read_text())
    assert resolved["curation"]["max_per_user"] == 4
    assert manifest["config"]["max_per_prompt"] == 2
    assert (path / "quality" / "gx" / "index.html").is_file()
    assert (path / "quality" / "summary.html").is_file()


def test_warning_is_reported_and_does_not_stop_the_round(scenario_snapshot: tuple[Config, Path]) -> None:
    _, path = scenario_snapshot
    checks = {c["name"]: c for c in load_manifest(path)["quality"]}
    assert checks["orphan_rate"]["success"] is False
    assert checks["orphan_rate"]["severity"] == "warning"
    assert "orphan_rate = 0.0454545" in checks["orphan_rate"]["observed"]
    assert all(c["success"] for c in checks.values() if c["severity"] == "critical")
    page = (path / "quality" / "summary.html").read_text()
    assert "orphan_rate" in page and "FAIL" in page


def test_same_input_gives_the_same_snapshot_and_never_rewrites_it(
    scenario_snapshot: tuple[Config, Path],
) -> None:
    config, path = scenario_snapshot
    before = (path / "manifest.json").stat().st_mtime_ns
    again = run(config, as_of=scenario.AS_OF)
    assert again == path
    assert (path / "manifest.json").stat().st_mtime_ns == before
    assert latest_snapshot(config.paths.lake) == path
    assert [p.name for p in (path.parent).iterdir() if not p.name.startswith(".")] == [path.name]


def test_as_of_rebuilds_what_was_built_then(scenario_snapshot: tuple[Config, Path], tmp_path: Path) -> None:
    """The lake as it stood at AS_OF and today's lake read --as-of AS_OF give the same snapshot."""
    _, path = scenario_snapshot
    scenario.build(known_only=True).write(tmp_path / "lake")
    scenario.write_history(tmp_path / "registry", ["v0", "v1", "v2"])
    then = run(make_config(tmp_path, **scenario.OVERRIDES), as_of="2026-03-31T14:00:00+02:00")
    assert then.name == path.name
    assert load_manifest(then)["counts"]["after_as_of"] == 0


def test_cli_curate_prints_the_snapshot_path(
    scenario_snapshot: tuple[Config, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from flywheel.cli import main

    config, path = scenario_snapshot
    sets = [f"--set={k}={v}" for k, v in scenario.OVERRIDES.items()]
    code = main(
        [
            "curate",
            "--lake",
            config.paths.lake,
            "--as-of",
            scenario.AS_OF,
            f"--set=paths.registry={config.paths.registry}",
            *sets,
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == str(path)


def test_manifest_is_plain_json(scenario_snapshot: tuple[Config, Path]) -> None:
    _, path = scenario_snapshot
    data = json.loads((path / "manifest.json").read_text())
    assert data["counts"]["train"] == 14
