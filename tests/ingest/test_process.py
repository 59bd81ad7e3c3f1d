"""`flywheel ingest` as a real process: SIGTERM stops it cleanly, kill -9 loses and doubles nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from flywheel.config import write_resolved
from ingest.producer import EventProducer
from ingest.service import run as ingest
from tests.ingest.lakeutil import (
    committed,
    files,
    free_port,
    ids,
    offsets_on_disk,
    scrape,
    temps,
    trace_event,
    wait_for,
)

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


def _start(config, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    path = write_resolved(config, tmp_path / f"{name}.toml")
    env = dict(os.environ, FLYWHEEL_LOG_FORMAT="json")
    return subprocess.Popen(
        [sys.executable, "-m", "flywheel.cli", "ingest", "--config", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _produce(config, n: int) -> None:
    with EventProducer(config.kafka) as out:
        for i in range(n):
            out.send_raw(config.kafka.traces_topic, trace_event(i), key=f"k{i}".encode())


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_sigterm_finishes_the_batch_commits_and_exits_0(broker_config, tmp_path, mode):
    port = free_port()
    # Batches that never fill or age: only the shutdown path can write them.
    config = broker_config.replace(
        **{
            "ingest.metrics_port": port,
            "ingest.batch_max_records": 10**6,
            "ingest.batch_max_age_s": 3600.0,
            "ingest.writer_mode": mode,
        }
    )
    proc = _start(config, tmp_path, "sigterm")
    try:
        _produce(config, 700)
        wait_for(lambda: scrape(port, "flywheel_ingest_consumed_total") >= 700, 60, "700 records consumed")
        assert not files(Path(config.paths.lake))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"700 records consumed" in out
    lake = Path(config.paths.lake)
    assert sorted(ids(lake, "traces", "trace_id")) == sorted(f"tr-{i}" for i in range(700))
    disk = offsets_on_disk(lake)
    for tp, offset in committed(config).items():
        assert disk.get(tp, []) == list(range(offset)), tp
    assert sum(committed(config).values()) == 700


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_kill_9_mid_batch_then_restart_loses_and_doubles_nothing(broker_config, tmp_path, mode):
    n = 6000
    config = broker_config.replace(
        **{"ingest.batch_max_records": 150, "ingest.batch_max_age_s": 3600.0, "ingest.writer_mode": mode}
    )
    lake = Path(config.paths.lake)
    _produce(config, n)
    proc = _start(config, tmp_path, "doomed")
    try:
        wait_for(lambda: len(files(lake)) >= 8, 90, "some batches on disk")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    names_before = {p.name for p in files(lake)}
    written_before = len(ids(lake, "traces", "trace_id"))
    assert written_before < n, "the kill came too late to interrupt anything"
    # The restart resumes from the committed offsets; partial batches are replayed.
    stats = ingest(config.replace(**{"ingest.idle_timeout_s": 1.5}))
    # Everything not on disk is replayed, plus batches written but not yet committed at the kill.
    assert n - written_before <= stats.consumed <= n, stats.summary()
    trace_ids = Counter(ids(lake, "traces", "trace_id"))
    assert set(trace_ids) == {f"tr-{i}" for i in range(n)}, "an event is missing"
    assert max(trace_ids.values()) == 1, "an event was written twice"
    assert names_before <= {p.name for p in files(lake)}, "a replay wrote a different file name"
    assert not temps(lake), "temporary files were left behind"
    disk = offsets_on_disk(lake)
    for tp, offset in committed(config).items():
        assert disk.get(tp, []) == list(range(offset)), tp


def test_a_second_signal_exits_at_once_without_flushing():
    # The service's own handlers, in a fresh interpreter: the first SIGTERM only asks the loop to
    # finish; the second must end the process at once (128 + signal), running nothing after it.
    code = (
        "import os, signal, threading, time\n"
        "from ingest.service import stop_on_signals\n"
        "stop = threading.Event()\n"
        "with stop_on_signals(stop):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(0.2)\n"
        "    assert stop.is_set(), 'the first signal did not ask the loop to stop'\n"
        "    print('first signal: stopping', flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "    print('still running', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr.decode()[-2000:]
    assert b"first signal: stopping" in proc.stdout
    assert b"still running" not in proc.stdout


def _writer_processes(pid: int) -> list[int]:
    """The writer processes (multiprocessing spawn children) of process ``pid``, from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the writer processes in /proc")
def test_kill_9_of_a_writer_process_mid_stream_loses_and_doubles_nothing(broker_config, tmp_path):
    """Process mode: a writer process killed mid-stream is replaced, the batches it held are
    rewritten under the same names before their offsets are committed, and the service goes on."""
    n = 6000
    config = broker_config.replace(
        **{
            "ingest.writer_mode": "process",
            "ingest.batch_max_records": 150,
            "ingest.batch_max_age_s": 3600.0,
            "ingest.idle_timeout_s": 3.0,
        }
    )
    lake = Path(config.paths.lake)
    proc = _start(config, tmp_path, "writer-killed")
    try:
        wait_for(lambda: len(_writer_processes(proc.pid)) == 2, 60, "two writer processes")
        victims = _writer_processes(proc.pid)
        _produce(config, n)
        wait_for(lambda: len(files(lake)) >= 4, 90, "some batches on disk")
        written_before = len(ids(lake, "traces", "trace_id"))
        os.kill(victims[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert written_before < n, "the kill came too late to interrupt anything"
    assert b"writer process died; starting another and rewriting its batch" in err
    assert b"6000 records consumed" in out and b"1 writer process restarts" in out, out.decode()
    trace_ids = Counter(ids(lake, "traces", "trace_id"))
    assert set(trace_ids) == {f"tr-{i}" for i in range(n)}, "an event is missing"
    assert max(trace_ids.values()) == 1, "an event was written twice"
    assert not temps(lake), "temporary files were left behind"
    disk = offsets_on_disk(lake)
    for tp, offset in committed(config).items():
        assert disk.get(tp, []) == list(range(offset)), tp
    assert sum(committed(config).values()) == n
