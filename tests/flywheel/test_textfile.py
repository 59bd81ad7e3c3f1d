"""CronJob mode: `flywheel nightly --metrics-textfile PATH` leaves the scheduler's metrics for
node-exporter's textfile collector, counted by outcome over the ledger."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from flywheel import cli
from flywheel.monitor import write_textfile
from flywheel.nightly import run
from tests.flywheel.nightly_standins import make_config, seed_champion, stages


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def test_textfile_holds_the_last_round_and_rounds_by_outcome(tmp_path: Path) -> None:
    seed_champion(tmp_path)
    config = make_config(tmp_path)
    run(config, stages=stages(tmp_path))  # promoted
    run(config, stages=stages(tmp_path))  # same snapshot: skipped
    out = tmp_path / "textfile" / "flywheel.prom"  # a folder that does not exist yet is made
    write_textfile(config.paths.runs, out)
    got = _samples(out)
    assert got[("flywheel_nightly_runs_total", (("outcome", "promoted"), ("result", "ok")))] == 1
    assert got[("flywheel_nightly_runs_total", (("outcome", "skipped"), ("result", "ok")))] == 1
    assert got[("flywheel_nightly_last_success", ())] == 1
    assert got[("flywheel_nightly_last_exit_code", ())] == 0
    assert got[("flywheel_nightly_last_run_timestamp_seconds", ())] > 1.7e9
    assert list(out.parent.iterdir()) == [out]  # written by rename, no temporary file left


def test_nightly_writes_the_textfile_even_when_the_round_fails(tmp_path: Path) -> None:
    out = tmp_path / "flywheel.prom"
    flags = [f"--set=paths.{k}={tmp_path / k}" for k in ("lake", "registry", "runs")]
    code = cli.main(["nightly", "--metrics-textfile", str(out), *flags])  # no champion: fails
    assert code != 0
    got = _samples(out)
    assert got[("flywheel_nightly_last_success", ())] == 0
    assert got[("flywheel_nightly_runs_total", (("outcome", "failed"), ("result", "failed")))] == 1
