"""The `flywheel` command line: parse, resolve the config, call the stage, map errors to exit codes.

Commands stay thin: each handler resolves the
configuration (defaults < --config file < FLYWHEEL_* environment < flags) and
calls one function of a stage. Stage modules are imported lazily so that
`flywheel status` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import ExitCode, FlywheelError
from flywheel import __version__

if TYPE_CHECKING:
    from flywheel.config import Config

# Exit codes of the public interface.
EXIT_OK = ExitCode.OK
EXIT_REJECTED = ExitCode.REJECTED
EXIT_INTERRUPTED = ExitCode.INTERRUPTED

Handler = Callable[[argparse.Namespace, Any], int]


def _set_pairs(pairs: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise FlywheelError(
                f"--set {pair!r} is not section.key=value", hint="e.g. --set ingest.group_id=etl"
            )
        key, value = pair.split("=", 1)
        out[key.strip()] = value
    return out


def _config(args: argparse.Namespace) -> Any:
    from flywheel import config as cfg

    overrides: dict[str, Any] = _set_pairs(getattr(args, "set", None))
    # Flags that name a config key carry it in their `dest` as "section.key".
    for dest, value in vars(args).items():
        if "." in dest and value is not None:
            overrides[dest] = value
    return cfg.load(args.config or os.environ.get("FLYWHEEL_CONFIG") or None, overrides=overrides)


def _note(message: str, level: str = "info") -> None:
    """A line for the operator on stderr (stdout holds only the result): as printed, or through
    the logger when the logs are JSON, so every stderr line is then a JSON object."""
    import logging

    from core.logs import json_logs

    if json_logs():
        getattr(logging.getLogger("flywheel.cli"), level)(message)
    else:
        print(message, file=sys.stderr)


def _libraries() -> None:
    """Commands that load the ML libraries route their logs and progress bars through ours."""
    from core.logs import adopt_libraries

    adopt_libraries()


# ---------------------------------------------------------------------------
# Handlers. Each imports its stage lazily and returns an exit code.


def _broker(args: argparse.Namespace, config: Config) -> int:
    from flywheel.dev.broker import serve

    serve(config, port=args.port)
    return EXIT_OK


def _ingest(args: argparse.Namespace, config: Config) -> int:
    from ingest.service import run

    stats = run(config)
    print(stats.summary())
    return EXIT_OK


def _simulate(args: argparse.Namespace, config: Config) -> int:
    from flywheel.dev.simulate import run

    stats = run(config)
    print(stats.summary())
    return EXIT_OK


def _curate(args: argparse.Namespace, config: Config) -> int:
    from curation.run import run

    snapshot = run(config, as_of=args.as_of)
    print(snapshot)
    return EXIT_OK


def _report(args: argparse.Namespace, config: Config) -> int:
    from curation.docs import render

    line = render(args.snapshot)
    print(line)
    return EXIT_OK if line.startswith("done") else ExitCode.FAILED


def _forget(args: argparse.Namespace, config: Config) -> int:
    from curation.forget import forget

    done = forget(config.paths.lake, args.user_id, compact=not args.no_compact)
    print(done.tombstone)
    for path in done.files_rewritten:
        _note(f"rewrote {path}")
    removed = ", ".join(f"{n} {stream} rows" for stream, n in done.rows_removed.items())
    _note(f"removed {removed} from {len(done.files_rewritten)} files")
    return EXIT_OK


def _snapshot_given(snapshot: str | None) -> None:
    """A wrong --snapshot fails at once, before torch is imported (seconds)."""
    if snapshot is not None:
        from core.snapshot import check

        check(snapshot)


def _train(args: argparse.Namespace, config: Config) -> int:
    _snapshot_given(args.snapshot)
    from training.config import report_targets

    report_targets(config.training)  # a tracker's missing package, before torch is imported
    _libraries()
    from training.run import run

    version = run(config, snapshot=args.snapshot, base_model=args.base_model)
    print(version)
    return EXIT_OK


def _eval(args: argparse.Namespace, config: Config) -> int:
    _snapshot_given(args.snapshot)
    _libraries()
    from evals.run import run

    decision = run(config, candidate=args.candidate, snapshot=args.snapshot)
    print(decision.summary())
    return EXIT_OK if decision.promote else EXIT_REJECTED


def _register(args: argparse.Namespace, config: Config) -> int:
    from core.registry import Registry

    registry = Registry.from_config(config)
    previous = registry.champion() if args.champion else None
    version = registry.register(
        args.path, champion=args.champion, version=args.version, aliases=tuple(args.alias or ())
    )
    print(version)
    if args.champion:
        _hand_off(config, version, previous, f"registered from {args.path} as champion", "promote")
    return EXIT_OK


def _promote(args: argparse.Namespace, config: Config) -> int:
    from core.registry import Registry

    registry = Registry.from_config(config)
    previous = registry.champion()
    registry.promote(args.version, reason=args.reason)
    print(f"champion is now {args.version}")
    _hand_off(config, args.version, previous, args.reason, "promote")
    return EXIT_OK


def _rollback(args: argparse.Namespace, config: Config) -> int:
    from core.registry import Registry

    registry = Registry.from_config(config)
    previous = registry.champion()
    version = registry.rollback(reason=args.reason)
    print(f"rolled back; champion is now {version}")
    _hand_off(config, version, previous, args.reason, "rollback")
    return EXIT_OK


def _hand_off(config: Config, version: str, previous: str | None, reason: str, action: str) -> None:
    """Promotion hooks (serving.*) after a switch; a failed one is reported on stderr, the switch
    stands (exit 0)."""
    from flywheel.hooks import on_promote

    for result in on_promote(config, version, previous, reason, action):
        if not result.ok:
            _note(
                f"flywheel: warning: {result.kind} hook {result.target} failed after {result.attempts} "
                f"attempt(s): {result.detail}; the champion is {version} regardless",
                "warning",
            )


def _status(args: argparse.Namespace, config: Config) -> int:
    from core.registry import Registry

    print(Registry.from_config(config).status_text())
    return EXIT_OK


def _nightly(args: argparse.Namespace, config: Config) -> int:
    from training.config import report_targets

    report_targets(config.training)
    _libraries()
    from flywheel.nightly import run

    try:
        result = run(config)
        print(result.summary())
        return result.exit_code
    finally:
        if args.metrics_textfile:  # also after a failed or interrupted round
            from flywheel.monitor import write_textfile

            write_textfile(config.paths.runs, args.metrics_textfile)


def _gc(args: argparse.Namespace, config: Config) -> int:
    from flywheel.gc import collect

    report = collect(config, keep_last=args.keep, dry_run=args.dry_run)
    for path in report.versions + report.checkpoints + report.temp_folders:
        print(path)
    _note(report.summary())
    return EXIT_OK


def _schedule(args: argparse.Namespace, config: Config) -> int:
    if args.next is not None:
        from flywheel.cronspec import next_fires

        if args.next < 1:
            raise FlywheelError(f"--next {args.next}: give a count of 1 or more", hint="e.g. --next 5")
        for fire in next_fires(config.scheduler.cron, config.scheduler.timezone, args.next):
            print(f"{fire.isoformat()} {fire:%a}")
        return EXIT_OK
    _libraries()
    from flywheel.scheduler import run

    run(config)
    return EXIT_OK


def _demo(args: argparse.Namespace, config: Config) -> int:
    _libraries()
    from flywheel.dev.demo import run

    return run(config)


def _collect(args: argparse.Namespace, config: Config) -> int:
    from collect.app import Settings
    from collect.serve import load_keys, serve

    settings = Settings(
        api_keys=load_keys(args.api_keys_file),
        allowed_origins=tuple(o.strip() for o in (args.allow_origin or []) if o.strip()),
        max_body_bytes=args.max_body_bytes,
        max_events=args.max_events,
        rate_per_s=args.rate,
        burst=args.burst,
        max_record_bytes=config.ingest.max_record_bytes,
    )
    serve(config, args.host, args.port, settings)
    return EXIT_OK


def _show_config(args: argparse.Namespace, config: Config) -> int:
    import json

    from flywheel.config import explain, explain_text

    rows = explain(config, args.section)
    print(json.dumps(rows, indent=1) if args.json else explain_text(rows))
    return EXIT_OK


def _tiny_world(args: argparse.Namespace, config: Config) -> int:
    from flywheel.dev.tiny_world import build

    path = build(config, force=args.force)
    print(path)
    return EXIT_OK


def _export(args: argparse.Namespace, config: Config) -> int:
    from pathlib import Path

    from flywheel.export import export

    snapshot = Path(args.snapshot)
    out = args.out or str(Path(config.paths.lake) / "exports" / snapshot.name / args.format)
    folder, written = export(snapshot, args.format, out)
    for name, n in written.items():
        _note(f"{name}: {n}")
    print(folder)
    return EXIT_OK


# ---------------------------------------------------------------------------
# Parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML configuration file (or FLYWHEEL_CONFIG)")
    common.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override any configuration key, e.g. --set training.beta=0.2 (repeatable)",
    )
    common.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (or FLYWHEEL_LOG_LEVEL)")
    common.add_argument("--log-format", default=None, choices=["text", "json"], help="log format")

    parser = argparse.ArgumentParser(
        prog="flywheel",
        description="Production feedback (thumbs, edits) to a better model, every night, safely.",
        epilog="Settings: `flywheel config` lists every key with its value, default, where the value "
        "came from (default, file, env, flag) and its help; `--set SECTION.KEY=VALUE` or "
        "FLYWHEEL_SECTION__KEY sets any of them.",
    )
    parser.add_argument("--version", action="version", version=f"flywheel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = cmd(
        "broker", _broker, "run the embedded Kafka-compatible broker on loopback (development, demos, tests)"
    )
    p.add_argument("--port", type=int, default=9092, help="port on 127.0.0.1 (default 9092)")

    p = cmd("ingest", _ingest, "the always-on consumer: Kafka traces and feedback to the Parquet lake")
    p.add_argument("--bootstrap-servers", dest="kafka.bootstrap_servers", metavar="S", help="host:port,...")
    p.add_argument("--lake", dest="paths.lake", metavar="DIR", help="root of the lake")
    p.add_argument(
        "--max-messages", dest="ingest.max_messages", type=int, metavar="N", help="stop after N records"
    )
    p.add_argument(
        "--idle-timeout", dest="ingest.idle_timeout_s", type=float, metavar="SEC", help="stop after SEC idle"
    )

    p = cmd("simulate", _simulate, "send simulated production traffic (traces and feedback) to Kafka")
    p.add_argument("--bootstrap-servers", dest="kafka.bootstrap_servers", metavar="S", help="host:port,...")
    p.add_argument("--seed", dest="simulate.seed", type=int, help="random seed")
    p.add_argument("--count", dest="simulate.count", type=int, metavar="N", help="responses to simulate")
    p.add_argument(
        "--rate", dest="simulate.rate", type=float, metavar="R", help="records per second (0 = max)"
    )
    p.add_argument("--users", dest="simulate.users", type=int, metavar="N", help="distinct users")

    p = cmd("curate", _curate, "build a curated KTO snapshot from the raw lake; prints its path")
    p.add_argument("--lake", dest="paths.lake", metavar="DIR", help="root of the lake")
    p.add_argument(
        "--as-of", default=None, metavar="TIME", help="rebuild the snapshot as of this RFC 3339 time"
    )

    p = cmd(
        "report",
        _report,
        "render a snapshot's Great Expectations Data Docs now (what curation.data_docs = after does in "
        "the background) and print quality/gx.status: done (GX agrees with every check) or failed",
    )
    p.add_argument(
        "snapshot",
        metavar="SNAPSHOT",
        help="snapshot folder (printed by `flywheel curate`, or _rejected-<id>)",
    )

    p = cmd(
        "forget",
        _forget,
        "a user's deletion request: a tombstone the next curations honour, and the raw lake files "
        "holding the user's rows rewritten without them; prints the tombstone's path",
    )
    p.add_argument("--user-id", required=True, metavar="ID", help="the user_id the events carry")
    p.add_argument("--lake", dest="paths.lake", metavar="DIR", help="root of the lake")
    p.add_argument(
        "--no-compact", action="store_true", help="only record the tombstone; rewrite no lake file"
    )

    p = cmd("train", _train, "train a KTO candidate on a snapshot; prints its registry version")
    p.add_argument("--snapshot", default=None, metavar="DIR", help="snapshot folder (default: the newest)")
    p.add_argument("--base-model", default=None, metavar="PATH", help="base model (default: the champion)")

    p = cmd("eval", _eval, "gate a candidate against the champion; exit 0 = promote, 3 = rejected")
    p.add_argument("--candidate", default=None, metavar="VERSION", help="registry version (default: newest)")
    p.add_argument("--snapshot", default=None, metavar="DIR", help="snapshot whose eval slice to use")

    p = cmd("register", _register, "add a model (a base or SFT checkpoint) to the registry as a version")
    p.add_argument(
        "path",
        metavar="PATH",
        help="folder that AutoModelForCausalLM.from_pretrained loads (safetensors weights; pickle files refused)",
    )
    p.add_argument("--champion", action="store_true", help="make it the champion")
    p.add_argument(
        "--alias",
        action="append",
        metavar="NAME",
        help="a name the app serves this version under (the model_version its traces carry); repeatable",
    )
    p.add_argument("--version", default=None, help="version name (default: derived from time and content)")

    p = cmd("promote", _promote, "make VERSION the champion (atomic switch, recorded in the history)")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--reason", default="manual promotion", help="recorded in the history")

    p = cmd("rollback", _rollback, "return to the previous champion in one command")
    p.add_argument("--reason", default="manual rollback", help="recorded in the history")

    cmd("status", _status, "show the champion, the candidates and the last decisions")
    p = cmd("nightly", _nightly, "one whole round: curate, train, gate, promote")
    p.add_argument(
        "--metrics-textfile",
        default=None,
        metavar="PATH",
        help="after the round, write the scheduler's metrics there for node-exporter's textfile "
        "collector (CronJob mode), e.g. /var/lib/node-exporter/flywheel.prom",
    )
    p = cmd(
        "gc",
        _gc,
        "remove all but the newest registry.keep_last versions (never a champion, past or present), "
        "finished training checkpoints and temporary report folders; prints what it removed",
    )
    p.add_argument("--keep", type=int, default=None, metavar="N", help="keep the newest N versions")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed; remove nothing")
    p = cmd("schedule", _schedule, "the always-on scheduler that runs `nightly` on its cron")
    p.add_argument(
        "--next",
        type=int,
        default=None,
        metavar="N",
        help="print the next N fire times of scheduler.cron in scheduler.timezone and exit",
    )
    cmd("demo", _demo, "the whole loop on embedded defaults, on this machine")

    p = cmd(
        "config",
        _show_config,
        "show every setting: its value, default, where it came from (default, file, env, flag) and its help",
    )
    p.add_argument("--section", default=None, metavar="NAME", help="only this section, e.g. training")
    p.add_argument("--json", action="store_true", help="one JSON list of {key, value, default, source, help}")

    p = cmd(
        "tiny-world",
        _tiny_world,
        "build (or reuse) the tiny local tokenizer and model for tests and the demo",
    )
    p.add_argument("--force", action="store_true", help="rebuild even if cached")

    p = cmd(
        "export",
        _export,
        "write a snapshot for other trainers: OpenAI fine-tuning JSONL (SFT or preference) or a "
        "Hugging Face datasets folder; prints the folder",
    )
    p.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot folder (printed by `flywheel curate`)")
    p.add_argument(
        "--format",
        required=True,
        choices=["openai-sft", "openai-dpo", "hf"],
        help="openai-sft (desirable rows), openai-dpo (pairs) or hf (save_to_disk)",
    )
    p.add_argument(
        "--out", default=None, metavar="DIR", help="folder to write (default: <lake>/exports/<id>/<format>)"
    )

    p = cmd(
        "collect",
        _collect,
        "HTTP collector: JSON traces and feedback from any app or browser, validated, produced with acks=all",
    )
    p.add_argument("--bootstrap-servers", dest="kafka.bootstrap_servers", metavar="S", help="host:port,...")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument(
        "--api-keys-file",
        metavar="FILE",
        help="name=sha256:<hex> (or name=key) per line; also COLLECT_API_KEYS",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        metavar="ORIGIN",
        help="browser origin allowed by CORS (repeatable)",
    )
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, metavar="N", help="request size limit")
    p.add_argument("--max-events", type=int, default=500, metavar="N", help="events per request at most")
    p.add_argument("--rate", type=float, default=200.0, metavar="R", help="events per second per API key")
    p.add_argument("--burst", type=float, default=1000.0, metavar="N", help="events a key may send at once")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from core.logs import setup_logging

    setup_logging(args.log_level, args.log_format)
    try:
        config = _config(args)
        code: int = args.handler(args, config)
        return code
    except FlywheelError as exc:
        _note(f"flywheel {args.command}: {exc}", "error")
        return exc.exit_code
    except KeyboardInterrupt:
        _note(f"flywheel {args.command}: interrupted", "error")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
