"""One nightly round: curate -> train -> gate -> promote, recorded step by step in the run ledger.

Safety rests on three facts. Only the promote step touches the champion, through
``Registry.promote`` (an atomic pointer switch), so a crash anywhere leaves the
champion as it was. Curation's snapshot ids derive from content and training's
versions are deterministic, so re-running a step after a crash reproduces its
output; the next round goes further and *re-uses* the snapshot and candidate
that an interrupted round left (``nightly.resume``). And a ``flock`` on
``runs/round.lock`` keeps two rounds from running at once.

Exit codes (``RoundResult.exit_code``, from ``core.errors.ExitCode``): 0 when the round completed
(promoted or rejected) or was skipped for lack of fresh data, the error's code when it failed
(4 for a failed data-quality check, 75 when another round holds the lock, 130 when stopped by a
signal, 1 for an unexpected error).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from core import snapshot as snapshots
from core.errors import ExitCode, FlywheelError, TerminalError
from core.registry import Registry
from core.signals import two_stage
from flywheel.config import Config, write_resolved
from flywheel.ledger import Ledger, interrupted, records, round_lock
from flywheel.roundinfo import RoundResult

log = logging.getLogger("flywheel.nightly")


@dataclasses.dataclass(frozen=True)
class Stages:
    """The stage entry points a round calls (docs/contracts.md); tests pass stand-ins."""

    curate: Callable[[Config, datetime | None], Path]
    train: Callable[[Config, Path], str]
    gate: Callable[[Config, str, Path], Any]  # -> evals Decision (promote, reasons, report_path, metrics)


def real_stages() -> Stages:
    # Imported when called: `flywheel status` and the scheduler never pay for torch.
    def curate(config: Config, as_of: datetime | None) -> Path:
        from curation.run import run

        return Path(run(config, as_of=as_of))

    def train(config: Config, snapshot: Path) -> str:
        from training.run import run

        return run(config, snapshot=str(snapshot))

    def gate(config: Config, candidate: str, snapshot: Path) -> Any:
        from evals.run import run

        return run(config, candidate=candidate, snapshot=str(snapshot))

    return Stages(curate=curate, train=train, gate=gate)


class _Terminated(KeyboardInterrupt):
    """SIGTERM turned into an exception so the ledger records why the round stopped."""


def _terminated(signum: int) -> None:
    raise _Terminated(f"signal {signum}")


def _sigterm_raises() -> contextlib.AbstractContextManager[None]:
    """SIGTERM, first or later, raises in the round's thread, so the ledger records why it stopped."""
    return two_stage(_terminated, second=None, signals=(signal.SIGTERM,))


def run(config: Config, stages: Stages | None = None, as_of: datetime | None = None) -> RoundResult:
    """Run one round under the round lock; every outcome is in the returned record and on disk.

    ``as_of`` curates as of that time instead of now (backfills, and the demo's compressed days).
    """
    stages = stages or real_stages()
    runs = Path(config.paths.runs)
    registry = Registry.from_config(config)
    with round_lock(runs), _sigterm_raises():
        prior = interrupted(runs) if config.nightly.resume else None
        ledger = Ledger(runs)
        write_resolved(config, ledger.path.with_suffix(".config.toml"))
        ledger.set(
            champion_before=registry.champion(),
            resumed_from=prior["run_id"] if prior else None,
            as_of=as_of.isoformat() if as_of else None,
        )
        if prior:
            log.info("resuming after interrupted round %s (%s)", prior["run_id"], prior.get("status"))
        step = "curate"

        def enter(name: str) -> None:
            nonlocal step
            step = name
            log.info("round %s: %s", ledger.run_id, name)
            ledger.begin(name)

        try:
            _round(config, stages, ledger, registry, prior, enter, as_of)
        except FlywheelError as exc:
            ledger.end(step, "failed", exc.message)
            ledger.doc["exit_code"] = exc.exit_code
            ledger.set(champion_after=registry.champion())
            ledger.finish("failed", "failed", f"{step} failed: {exc.message}; the champion is unchanged", exc)
        except Exception as exc:
            # A bug or a library failure (e.g. out of memory): record it, keep the champion, report.
            log.error("round %s: %s failed\n%s", ledger.run_id, step, traceback.format_exc())
            ledger.end(step, "failed", f"{type(exc).__name__}: {exc}")
            ledger.doc["exit_code"] = int(ExitCode.FAILED)
            ledger.set(champion_after=registry.champion())
            ledger.finish("failed", "failed", f"{step} failed: {type(exc).__name__}: {exc}", exc)
        except KeyboardInterrupt as exc:
            ledger.end(step, "failed", "interrupted")
            ledger.doc["exit_code"] = int(ExitCode.INTERRUPTED)
            ledger.finish("failed", "failed", f"interrupted during {step}; the next round resumes", exc)
            raise
        if config.nightly.gc and ledger.doc.get("status") != "failed":
            _collect_garbage(config, ledger)
        return RoundResult(dict(ledger.doc))


def _collect_garbage(config: Config, ledger: Ledger) -> None:
    """``nightly.gc``: remove old versions, finished checkpoints and temporary report folders after
    the round; recorded as the record's ``gc``. A failure is logged and recorded, never the round's."""
    from flywheel.gc import collect

    try:
        report = collect(config)
        ledger.set(gc=report.to_dict())
    except Exception as exc:  # gc never turns a good round into a failed one
        log.warning("round %s: gc failed: %s: %s", ledger.run_id, type(exc).__name__, exc)
        ledger.set(gc={"error": f"{type(exc).__name__}: {exc}"})


def _round(
    config: Config,
    stages: Stages,
    ledger: Ledger,
    registry: Registry,
    prior: dict[str, Any] | None,
    enter: Callable[[str], None],
    as_of: datetime | None,
) -> None:
    # 1. curate, or re-use the interrupted round's snapshot.
    enter("curate")
    if registry.champion() is None:
        raise TerminalError(
            f"the registry at {registry.root} has no champion to improve",
            hint="`flywheel register PATH --champion` adds your base or SFT model as the first champion",
        )
    reused = prior.get("snapshot_path") if prior else None
    if reused and (Path(reused) / "manifest.json").is_file():
        snapshot = Path(reused)
        ledger.end("curate", "done", f"re-used snapshot of interrupted round {prior and prior['run_id']}")
    else:
        snapshot = stages.curate(config, as_of)
        ledger.end("curate", "done", f"snapshot {snapshot}")
    snapshot_id, train_rows = snapshots.facts(snapshot)
    ledger.set(snapshot_id=snapshot_id, snapshot_path=str(snapshot), train_rows=train_rows)

    champion = registry.champion()
    skip = _skip_reason(config, ledger, snapshot_id, train_rows, champion)
    if skip:
        for s in ("train", "gate", "promote"):
            ledger.end(s, "skipped", skip)
        ledger.set(champion_after=champion)
        ledger.finish("skipped", "skipped", skip)
        log.warning("round %s skipped: %s", ledger.run_id, skip)
        return

    # 2. train, or re-use the candidate the interrupted round trained on this very snapshot.
    enter("train")
    candidate = prior.get("candidate") if prior and prior.get("snapshot_id") == snapshot_id else None
    if candidate and candidate in registry.versions():
        ledger.end(
            "train", "done", f"re-used candidate {candidate} of interrupted round {prior and prior['run_id']}"
        )
    else:
        candidate = stages.train(config, snapshot)
        ledger.end("train", "done", f"candidate {candidate}")
    ledger.set(candidate=candidate)

    # 3. gate: candidate against the champion on held-out production traces.
    enter("gate")
    decision = stages.gate(config, candidate, snapshot)
    reasons = [str(r) for r in decision.reasons]
    deciding = getattr(decision, "deciding", None)
    ledger.set(
        decision={
            "promote": bool(decision.promote),
            "deciding_check": deciding.name if deciding is not None else None,
            "reasons": reasons,
            "report_path": str(decision.report_path),
            "metrics": dict(decision.metrics),
        }
    )
    ledger.end("gate", "done", ("promote: " if decision.promote else "reject: ") + "; ".join(reasons))

    # 4. promote (the only step that changes the champion) or record the rejection.
    enter("promote")
    evidence = {
        "run_id": ledger.run_id,
        "snapshot_id": snapshot_id,
        "report": str(decision.report_path),
        "metrics": dict(decision.metrics),
    }
    reason = "; ".join(reasons) or ("gate passed" if decision.promote else "gate failed")
    if decision.promote:
        if registry.champion() == candidate:
            ledger.end("promote", "done", f"{candidate} was already the champion (promoted before a crash)")
        else:
            registry.promote(candidate, reason=f"nightly {ledger.run_id}: {reason}", evidence=evidence)
            ledger.end("promote", "done", f"champion {champion} -> {candidate}")
            _hand_off(config, ledger, candidate, champion, f"nightly {ledger.run_id}: {reason}")
        outcome, message = "promoted", f"promoted {candidate} (was {champion}): {reason}"
    else:
        if not any(e.action == "reject" and e.version == candidate for e in registry.history()):
            registry.reject(candidate, reason=f"nightly {ledger.run_id}: {reason}", evidence=evidence)
        ledger.end("promote", "skipped", f"rejected {candidate}; champion stays {champion}")
        outcome, message = "rejected", f"rejected {candidate}; champion stays {champion}: {reason}"
    ledger.set(champion_after=registry.champion())
    ledger.finish("completed", outcome, message)
    log.info("round %s: %s", ledger.run_id, message)


def _hand_off(config: Config, ledger: Ledger, version: str, previous: str | None, reason: str) -> None:
    """Run the promotion hooks (serving.*) after the switch; their outcome is the record's
    ``hooks``. A failed hook is logged and recorded; the switch stands and the round is promoted."""
    from flywheel.hooks import on_promote

    try:
        results = [r.to_dict() for r in on_promote(config, version, previous, reason)]
    except Exception as exc:  # a hook never undoes or fails a promotion
        log.error("round %s: promote hooks failed: %s: %s", ledger.run_id, type(exc).__name__, exc)
        results = [{"kind": "hooks", "ok": False, "detail": f"{type(exc).__name__}: {exc}"}]
    if results:
        ledger.set(hooks=results)


def _skip_reason(
    config: Config, ledger: Ledger, snapshot_id: str, train_rows: int, champion: str | None
) -> str | None:
    """Why training would be pointless now, or None."""
    if train_rows < config.nightly.min_train_rows:
        return (
            f"only {train_rows} training rows in snapshot {snapshot_id} "
            f"(nightly.min_train_rows = {config.nightly.min_train_rows}): training skipped, champion stays "
            f"{champion}; wait for more feedback or lower nightly.min_train_rows"
        )
    for rec in records(Path(ledger.path).parent.parent):
        if (
            rec["run_id"] != ledger.run_id
            and rec.get("status") == "completed"
            and rec.get("snapshot_id") == snapshot_id
        ):
            return (
                f"snapshot {snapshot_id} was already used by round {rec['run_id']}: no fresh feedback since; "
                f"champion stays {champion}"
            )
    return None
