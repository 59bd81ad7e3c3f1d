"""`flywheel demo` (what `make demo` runs): the whole loop on this machine, in compressed time.

1. Build (or reuse) the tiny world model and register it as the first champion.
2. Start the embedded broker and the always-on ingest service (a thread).
3. Day 0: the simulated app serves the champion to simulated users (flywheel.dev.app_sim).
4. Each night: a nightly round (curate, train, gate, promote) as of 02:00 of the next day,
   then a day of fresh traffic on whatever the champion is now.
5. A table: approval per round, events ingested and dead-lettered, snapshot sizes, gate
   decisions with reasons, report paths; and a plot of approval per round.

Everything is written under ``demo.out`` (``demo/``): lake, registry, runs, report.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import TerminalError
from flywheel.config import Config, write_resolved
from flywheel.dev.demo_report import RoundRow, write_report

# What the demo sets, whatever the configuration says: its own folders, its own broker,
# ingest that flushes within a second, and the tiny world's preference as the gate's judge.
FIXED = {
    "ingest.batch_max_age_s": 1.0,
    "ingest.session_timeout_ms": 6000,  # a group's first assignment waits half of it
    "ingest.metrics_port": 0,
    "evals.judge": "rubric",
    "evals.rubric": "flywheel.dev.app_sim:rubric",
    # The demo's nights move approval by 4-20 points, judged on a few dozen held-out prompts: the
    # judged win rate cannot detect the smaller gains at that size (the gate report states the
    # smallest effect it could), while the agreement with a few hundred held-out thumbs can. So the
    # demo decides on agreement; the judge still controls length and turns drift vetoes into warnings.
    "evals.primary_metric": "auc",
}


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {message}", flush=True)


def demo_config(config: Config, bootstrap: str, extra: dict[str, Any] | None = None) -> Config:
    out = Path(config.demo.out)
    overrides: dict[str, Any] = {
        "paths.lake": str(out / "lake"),
        "paths.registry": str(out / "registry"),
        "paths.runs": str(out / "runs"),
        "kafka.bootstrap_servers": bootstrap,
        # The tiny world repeats its 200 prompts all day and curation keeps every prompt on one side
        # of the split, so the held-out slice needs a larger share of sessions than production would.
        "curation.eval_fraction": config.demo.eval_fraction,
        **FIXED,
        **(extra or {}),
    }
    return config.replace(**overrides)


def run(config: Config, extra: dict[str, Any] | None = None) -> int:
    """Run the demo; 0 when every round completed (promoted, rejected or skipped)."""
    from flywheel.dev.broker import EmbeddedBroker

    d = config.demo
    out = Path(d.out)
    say = Progress()
    for sub in ("lake", "registry", "runs", "report"):
        # A demo starts from nothing but the cached tiny world: stale rounds would muddle the story.
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    topics = (config.kafka.traces_topic, config.kafka.feedback_topic)
    say(f"starting the embedded broker (topics {', '.join(topics)}, {d.partitions} partitions each)")
    with EmbeddedBroker(port=d.broker_port or None, topics=topics, partitions=d.partitions) as broker:
        cfg = demo_config(config, broker.bootstrap, extra)
        write_resolved(cfg, out / "config.toml")
        rows = loop(cfg, say)
    report = write_report(rows, out / "report")
    print(report.table, flush=True)
    say(f"report: {report.markdown}  plot: {report.plot}")
    failed = [r for r in rows if r.outcome == "failed"]
    approvals = [r.approval for r in rows]
    # A rise without a promotion is chance (the same model served), so say how many nights promoted.
    nights = [r for r in rows if r.outcome]
    promoted = sum(r.outcome == "promoted" for r in nights)
    trend = " -> ".join(f"{a:.1%}" for a in approvals)
    if not failed and all(b > a for a, b in itertools.pairwise(approvals)):
        say(
            f"approval rose every round ({trend}); {promoted} of {len(nights)} nights promoted a new champion"
        )
    elif not failed:
        say(
            f"approval did not rise every round ({trend}); {promoted} of {len(nights)} nights promoted: "
            "see the gate's reasons above"
        )
    return 1 if failed else 0


def loop(cfg: Config, say: Callable[[str], None]) -> list[RoundRow]:
    """Days of traffic and nightly rounds on the broker ``cfg.kafka`` names; one row per day."""
    from core.registry import Registry
    from flywheel import nightly
    from flywheel.dev import tiny_world
    from flywheel.dev.app_sim import ProductionApp, Simulation
    from ingest.producer import EventProducer
    from ingest.service import IngestService

    d = cfg.demo
    registry = Registry.from_config(cfg)
    say("building (or reusing) the tiny world model")
    base = tiny_world.build(cfg)
    version = registry.register(base, champion=True, version="tiny-base")
    say(f"registered {version} as the first champion")

    stop = threading.Event()
    service = IngestService(cfg, stop)
    failure: list[BaseException] = []

    def ingest() -> None:
        try:
            service.run()
        except BaseException as exc:  # surfaced by _caught_up
            failure.append(exc)

    thread = threading.Thread(target=ingest, name="ingest", daemon=True)
    thread.start()
    say(f"ingest service running (consumer group {cfg.ingest.group_id})")

    # Simulated days end before today, so every event time is in the past.
    midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = midnight - dt.timedelta(days=d.rounds + 1)
    app = ProductionApp(registry)
    rows: list[RoundRow] = []
    with EventProducer(cfg.kafka) as producer:
        sim = Simulation(app, producer, cfg.kafka, tiny_world.World(), seed=d.seed, prompts=d.prompts)
        try:
            for r in range(d.rounds + 1):
                day = first_day + dt.timedelta(days=r)
                stats = sim.day(r, day, d.requests_per_round)
                say(
                    f"day {r} ({day:%Y-%m-%d}): served {stats.served} answers from {stats.version}, "
                    f"approval {stats.approval:.1%}; {stats.votes_up} up, {stats.votes_down} down, "
                    f"{stats.edits} edits, {stats.retries} retries, {stats.late_sent} late, "
                    f"{stats.malformed} malformed"
                )
                row = RoundRow.from_day(r, stats)
                rows.append(row)
                _caught_up(service, producer, failure, say)
                row.ingested, row.dead_lettered = service.stats.written, service.stats.dead_lettered
                if r == d.rounds:
                    break
                # As of now, not of the simulated night: curation also cuts on when the lake
                # received a record (_ingested_at), and here that is the real clock.
                say(f"night {r + 1}: nightly round (curate, train, gate, promote)")
                result = nightly.run(cfg)
                for line in result.summary().splitlines():
                    say("  " + line)
                row.attach_round(result.record)
        finally:
            stop.set()
            thread.join(60)
    return rows


def _caught_up(service: Any, producer: Any, failure: list[BaseException], say: Callable[[str], None]) -> None:
    """Wait until ingest has written (to the lake or the dead-letter lake) every record sent."""
    deadline = time.monotonic() + 120
    while service.stats.written + service.stats.dead_lettered < producer.sent:
        if failure:
            raise TerminalError(f"the ingest service stopped: {failure[0]}", hint="see the log above")
        if time.monotonic() > deadline:
            raise TerminalError(
                f"ingest wrote {service.stats.written + service.stats.dead_lettered} of {producer.sent} records "
                "in 120 s",
                hint="see the ingest log lines above",
            )
        time.sleep(0.2)
    # Curation cuts on _ingested_at <= as_of with as_of at one-second resolution: a round started
    # in the same second as the last write would not see that write yet.
    time.sleep(1.5)
    say(
        f"ingest caught up: {service.stats.written} rows in the lake, "
        f"{service.stats.dead_lettered} dead-lettered"
    )


if __name__ == "__main__":
    from flywheel import config as _cfg

    sys.exit(run(_cfg.load()))
