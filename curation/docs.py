"""Great Expectations Data Docs for a snapshot, rendered off the round's critical path.

The curation decides its checks in Python (``curation.quality.evaluate``) and writes what GX
needs into the snapshot's ``quality/gx-input/``: the suite (``suite.json``: each expectation with
its check and severity, and the curation's own outcome of it) and the two frames it reads
(``measures.parquet``, ``curated_rows.parquet``). :func:`render` builds the GX suite from them,
runs it, writes the Data Docs into ``quality/gx/`` and GX's verdicts into
``quality/gx-verdicts.json``, and compares GX's outcome of every expectation with the curation's:
a disagreement is a failure, said as such.

``curation.data_docs`` picks when: ``after`` (default) starts :func:`launch` once the snapshot is
published (or rejected), so ``flywheel curate`` returns when the snapshot is durable and the docs
follow; ``inline`` renders them before ``flywheel curate`` returns; ``off`` leaves them to
``flywheel report SNAPSHOT``. Where they stand is one line in ``quality/gx.status``:

    queued since <time>                 the renderer is being started
    waiting (pid N, since <time>)       for the renderer of another snapshot of this lake to end
    rendering (pid N, since <time>)     GX is running
    done: <what GX confirmed>           quality/gx/index.html is there
    failed: <why> (log: quality/gx.log) nothing is lost: `flywheel report SNAPSHOT` renders again
    off: <how to render them>

and ``quality/summary.html`` says the same in its ``data-docs`` paragraph, rewritten at each step.
Renderers started in the background take turns, one per lake (a lock on ``curated/.data-docs.lock``):
a backfill that curates thirty days starts thirty, and thirty GX processes at once would take the
machine's memory and cores from the round that follows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd

from core.files import atomic_write_json, atomic_write_text
from curation import quality, summary
from curation.errors import CurationError

log = logging.getLogger(__name__)

STATUS = "gx.status"
LOG = "gx.log"
INPUT = "gx-input"
VERDICTS = "gx-verdicts.json"
# A renderer that has not said it started after this long never will (see gx.log).
START_GRACE_S = 120.0

# Runs as its own short-lived process: starts the renderer in a session of its own (so it
# outlives the caller and no terminal signal reaches it), prints its pid and exits. The caller
# waits for it, and the renderer, orphaned, is reaped by init: no zombie either way.
_LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,"
    " start_new_session=True, close_fds=True)\n"
    "print(p.pid)\n"
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, tuple):
        return list(value)
    return value


def _decode(field: str, value: Any) -> Any:
    if isinstance(value, dict) and "datetime" in value:
        return dt.datetime.fromisoformat(value["datetime"])
    if field == "value_set" and value is not None:
        return tuple(value)
    return value


def prepare(
    folder: Path,
    suite: list[quality.Expectation],
    data: dict[str, pd.DataFrame],
    metrics: dict[str, float],
) -> list[quality.Check]:
    """Decide the suite in Python and write GX's inputs under ``folder/quality/gx-input``;
    returns the checks (the verdicts that publish or reject the snapshot)."""
    outcomes = [quality.decide(e, data[e.frame]) for e in suite]
    target = folder / "quality" / INPUT
    target.mkdir(parents=True, exist_ok=True)
    for name, frame in data.items():
        frame.to_parquet(target / f"{name}.parquet", index=False)
    doc = {
        "metrics": metrics,
        "expectations": [
            {
                **{k: _encode(v) for k, v in dataclasses.asdict(o.expectation).items()},
                "curation": {"success": o.success, "unexpected_count": o.unexpected_count},
            }
            for o in outcomes
        ],
    }
    atomic_write_json(target / "suite.json", doc)
    return quality.summarise(outcomes, metrics)


def _load(folder: Path) -> tuple[list[quality.Expectation], list[dict[str, Any]], dict[str, Any], dict]:
    source = folder / "quality" / INPUT
    if not (source / "suite.json").is_file():
        raise FileNotFoundError(
            f"{source / 'suite.json'} is missing: this folder is not a snapshot written by "
            "`flywheel curate` (or predates quality/gx-input); curate it again"
        )
    doc = json.loads((source / "suite.json").read_text(encoding="utf-8"))
    fields = {f.name for f in dataclasses.fields(quality.Expectation)}
    suite = [
        quality.Expectation(**{k: _decode(k, v) for k, v in e.items() if k in fields})
        for e in doc["expectations"]
    ]
    ours = [e["curation"] for e in doc["expectations"]]
    data = {name: pd.read_parquet(source / f"{name}.parquet") for name in quality.FRAMES}
    return suite, ours, data, doc["metrics"]


def set_status(folder: Path, line: str) -> None:
    """Write the marker, then the summary's paragraph (the marker is the one to trust)."""
    atomic_write_text(folder / "quality" / STATUS, line + "\n")
    page = folder / "quality" / "summary.html"
    if page.is_file():
        atomic_write_text(page, summary.with_docs_status(page.read_text(encoding="utf-8"), line))


def render(folder: Path | str) -> str:
    """Run the GX suite over the snapshot's inputs and write its Data Docs, here and now; returns
    the status line it leaves (``done: ...`` or ``failed: ...``). Never raises for GX's sake: a
    failure is the marker, the summary's paragraph and a traceback in ``quality/gx.log``."""
    folder = Path(folder)
    quality_dir = folder / "quality"
    if not quality_dir.is_dir():
        raise CurationError(
            f"{quality_dir} does not exist",
            hint="give a snapshot folder printed by `flywheel curate` (or a _rejected-<id> one beside them)",
        )
    set_status(folder, f"rendering (pid {os.getpid()}, since {_now()})")
    try:
        suite, ours, data, metrics = _load(folder)
        started = time.perf_counter()
        theirs = quality.run_gx(suite, data, quality_dir / "gx")
        seconds = time.perf_counter() - started
        checks = quality.summarise(theirs, metrics)
        atomic_write_json(quality_dir / VERDICTS, [dataclasses.asdict(c) for c in checks])
        differ = [
            f"{t.expectation.check} ({t.expectation.type} on {t.expectation.column}: curation "
            f"{'pass' if o['success'] else 'fail'}/{o['unexpected_count']}, GX "
            f"{'pass' if t.success else 'fail'}/{t.unexpected_count})"
            for t, o in zip(theirs, ours, strict=True)
            if (t.success, t.unexpected_count) != (bool(o["success"]), int(o["unexpected_count"]))
        ]
        if differ:
            line = (
                f"failed: GX and the curation disagree on {len(differ)} expectation(s): {'; '.join(differ)} "
                f"(Data Docs in quality/gx/index.html; log: quality/{LOG})"
            )
        else:
            failed = sum(1 for c in checks if not c.success)
            line = (
                f"done: GX agrees with the curation on all {len(suite)} expectations ({len(checks)} checks, "
                f"{failed} failed) in {seconds:.1f} s; Data Docs in quality/gx/index.html, at {_now()}"
            )
    except Exception as e:  # the report must say it failed, never vanish
        with open(quality_dir / LOG, "a", encoding="utf-8") as log:
            log.write(f"{_now()} rendering Data Docs failed:\n{traceback.format_exc()}\n")
        line = f"failed: {type(e).__name__}: {e} (log: quality/{LOG})"
    set_status(folder, line)
    return line


def launch(folder: Path) -> None:
    """Start :func:`render` for ``folder`` in a process of its own and return at once."""
    set_status(folder, f"queued since {_now()}")
    root = str(Path(quality.__file__).resolve().parent.parent)
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "False"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    worker = [sys.executable, "-m", "curation.docs", str(folder.resolve())]
    try:
        subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(folder / "quality" / LOG), *worker],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or ""
        with open(folder / "quality" / LOG, "a", encoding="utf-8") as log:
            log.write(f"{_now()} starting the renderer failed: {e}\n{detail}\n")
        set_status(folder, f"failed: the renderer did not start: {e} (log: quality/{LOG})")


def status(folder: Path | str) -> str:
    """The marker's line, with a renderer that is gone (or never started) said as a failure."""
    marker = Path(folder) / "quality" / STATUS
    if not marker.is_file():
        return "off: no Data Docs were asked for (a snapshot from before quality/gx.status)"
    line = marker.read_text(encoding="utf-8").strip()
    if line.startswith(("rendering (pid ", "waiting (pid ")):
        pid = int(line.split("(pid ", 1)[1].split(",")[0])
        if not _alive(pid):
            return f"failed: the renderer (pid {pid}) ended without a result (log: quality/{LOG})"
    if line.startswith("queued since "):
        since = dt.datetime.fromisoformat(line.removeprefix("queued since "))
        if (dt.datetime.now(dt.UTC) - since).total_seconds() > START_GRACE_S:
            return f"failed: the renderer never started (log: quality/{LOG})"
    return line


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


def wait(folder: Path | str, timeout: float = 300.0) -> str:
    """Poll the marker until the docs are done or failed (or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    while True:
        line = status(folder)
        if not line.startswith(("queued", "waiting", "rendering")) or time.monotonic() > deadline:
            return line
        time.sleep(0.2)


LOCK = ".data-docs.lock"


@contextlib.contextmanager
def one_at_a_time(folder: Path) -> Any:
    """Hold the lake's renderer lock (beside the snapshots) while rendering ``folder``'s docs; the
    marker says ``waiting`` until the renderer before this one lets go (the kernel releases the
    lock of a renderer that dies, so a crash never blocks the next)."""
    with open(folder.parent / LOCK, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            set_status(
                folder, f"waiting (pid {os.getpid()}, since {_now()}) for the Data Docs of another snapshot"
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: list[str]) -> int:
    """``python -m curation.docs SNAPSHOT``: what :func:`launch` starts (at a lower priority)."""
    if len(argv) != 1:
        print("usage: python -m curation.docs SNAPSHOT", file=sys.stderr)
        return 2
    os.nice(10)
    folder = Path(argv[0])
    try:
        with one_at_a_time(folder):
            line = render(folder)
    except (OSError, CurationError) as e:  # the snapshot was removed: nothing to report into
        print(f"{_now()} {e}", file=sys.stderr)
        return 1
    print(f"{_now()} {line}", flush=True)
    return 0 if line.startswith("done") else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
