"""One owner per contract (docs/architecture.md): the stages that share a file, a rule or a mechanism
use the same code for it, so they cannot drift apart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core import kto
from core.errors import ConfigError, ExitCode, FlywheelError, TransientError
from core.files import atomic_output, atomic_write_text
from core.lake import SCHEMAS, open_lake
from core.signals import two_stage
from core.snapshot import SnapshotError, check, latest_snapshot, load_manifest, resolve
from flywheel_events.schema import COLUMNS, decode

REPO = Path(__file__).resolve().parents[2]
TRACE = {
    "trace_id": "t-1",
    "event_time": "2025-03-01T10:00:00Z",
    "model_version": "v1",
    "prompt": [{"role": "user", "content": "the cat ?"}],
    "completion": "yes .",
}
FEEDBACK = {"event_id": "e-1", "trace_id": "t-1", "event_time": "2025-03-01T10:01:00Z", "label": "up"}


@pytest.mark.parametrize(("stream", "event"), [("traces", TRACE), ("feedback", FEEDBACK)])
def test_the_file_ingest_writes_has_the_schema_curation_reads(
    tmp_path: Path, stream: str, event: dict
) -> None:
    from curation.lake import empty_table, window_files
    from ingest.writer import good_table, write_batch

    row = decode(stream, json.dumps(event).encode())
    table = good_table(stream, f"llm.{stream}", 0, [7], [1_740_823_200_000], [row], 1_740_823_200_000)
    lake = open_lake(str(tmp_path / "lake"))
    written = write_batch(lake, stream, f"llm.{stream}", 0, 7, 7, table, [], 1_740_823_200_000)
    import datetime as dt

    files, _, _ = window_files(lake, stream, dt.date(2025, 3, 1), dt.date(2025, 3, 1))
    assert [Path(f) for f in files] == written.paths
    on_disk = pq.read_schema(files[0])
    assert on_disk.equals(SCHEMAS[stream]) and empty_table(stream).schema.equals(on_disk)
    assert set(COLUMNS[stream]) <= set(on_disk.names)


def _templated_tokenizer() -> object:
    from tests.evals import tiny

    tok = tiny.tokenizer()
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}<assistant> "
    return tok


def test_training_sampling_and_the_gate_render_a_chat_prompt_alike_or_all_refuse() -> None:
    from evals.data import render_prompt
    from evals.errors import EvalError
    from flywheel.dev import sampling
    from training.data import render
    from training.errors import SnapshotError as TrainingSnapshotError

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the cat ?"}]
    tok = _templated_tokenizer()
    text = json.dumps(messages)
    rendered = {
        render(tok, text, "messages"),
        render_prompt(text, "messages", tok),
        sampling.render_prompt(tok, messages),
    }
    assert rendered == {"<system> be brief <user> the cat ? <assistant> "}
    tok.chat_template = None  # type: ignore[attr-defined]
    with pytest.raises(TrainingSnapshotError, match="chat template"):
        render(tok, text, "messages")
    with pytest.raises(EvalError, match="chat template"):
        render_prompt(text, "messages", tok)
    with pytest.raises(FlywheelError, match="chat template"):
        sampling.render_prompt(tok, messages)


@pytest.mark.parametrize(("up", "down"), [(10, 90), (90, 10), (50, 50), (33, 67), (100, 76), (1, 1000)])
def test_training_rebalances_by_the_rule_curation_wrote_into_the_manifest(up: int, down: int) -> None:
    from curation.policy import balance
    from training.data import balanced_weights

    weights = balanced_weights(up, down)
    assert weights == balance(up, down, "weights").weights()
    ratio = weights["desirable_weight"] * up / (weights["undesirable_weight"] * down)
    assert kto.RATIO_LOW <= ratio <= kto.RATIO_HIGH


def test_an_atomic_write_publishes_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "champion"
    atomic_write_text(target, "v1\n", chmod=0o640)
    assert target.read_text() == "v1\n" and (target.stat().st_mode & 0o777) == 0o640
    with pytest.raises(RuntimeError), atomic_output(target) as out:
        out.write("v2 half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "v1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["champion"]  # no temporary file is left
    with atomic_output(target, "wb") as out:
        out.write(b"v3\n")
    assert target.read_bytes() == b"v3\n"
    with pytest.raises(ValueError, match="whole file"), atomic_output(target, "a"):
        pass


def test_the_first_signal_asks_and_the_second_insists() -> None:
    calls: list[tuple[str, int]] = []
    before = signal.getsignal(signal.SIGTERM)
    with two_stage(lambda s: calls.append(("first", s)), lambda s: calls.append(("second", s))):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
    assert calls == [("first", signal.SIGTERM), ("second", signal.SIGINT), ("second", signal.SIGTERM)]
    assert signal.getsignal(signal.SIGTERM) is before


def _snapshot(root: Path, name: str, created_at: str) -> Path:
    folder = root / "curated" / name
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"snapshot_id": name, "created_at": created_at}))
    return folder


def test_every_reader_finds_the_same_snapshot_and_the_same_errors(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with pytest.raises(SnapshotError, match="flywheel curate"):
        resolve(lake, None)
    older = _snapshot(lake, "snap-b", "2026-01-01T00:00:00+00:00")
    newer = _snapshot(lake, "snap-a", "2026-01-02T00:00:00+00:00")
    _snapshot(lake, "_rejected-snap-c", "2026-01-03T00:00:00+00:00")  # failed a critical check
    _snapshot(lake, ".staging-snap-d-1", "2026-01-04T00:00:00+00:00")  # being built
    (lake / "curated" / "empty").mkdir()
    os.utime(older / "manifest.json", (2e9, 2e9))  # newest by mtime, oldest by created_at
    assert latest_snapshot(lake) == resolve(lake, None) == newer
    assert check(older) == older and load_manifest(older / "manifest.json")["snapshot_id"] == "snap-b"
    with pytest.raises(SnapshotError, match="not a curated snapshot"):
        check(lake / "curated" / "empty")
    (older / "manifest.json").write_text("{half")
    with pytest.raises(SnapshotError, match="damaged"):
        load_manifest(older)


def test_every_exit_code_comes_from_one_table() -> None:
    from curation.errors import DataQualityError

    assert FlywheelError("x").exit_code == ExitCode.FAILED
    assert TransientError("x").exit_code == ExitCode.TEMPFAIL
    assert ConfigError(["x"]).exit_code == ExitCode.CONFIG
    assert DataQualityError([("check", "why")]).exit_code == ExitCode.DATA_QUALITY
    assert len(set(ExitCode)) == len(ExitCode.__members__)  # no two meanings share a code


PROBE = """
from curation.config import CurationSettings
from evals.config import EvalsSettings
from flywheel.config import Config, defaults
from ingest.config import IngestSettings
from training.config import TrainingSettings

config: Config = defaults()
rank: int = config.training.lora_r
for_curation: CurationSettings = config
for_training: TrainingSettings = config
for_the_gate: EvalsSettings = config
for_ingest: IngestSettings = config
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    env = {**os.environ, "MYPYPATH": f"{REPO}{os.pathsep}{REPO / 'clients' / 'python'}"}
    # Site packages are left out (their imports are Any): the probe is about this repository's types.
    args = [
        "--config-file",
        os.devnull,
        "--ignore-missing-imports",
        "--no-site-packages",
        "--no-error-summary",
    ]
    cache = ["--cache-dir", str(tmp_path / "cache")]
    return subprocess.run(
        [sys.executable, "-m", "mypy", *args, *cache, str(probe)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_mypy_rejects_a_misspelt_section_or_key(tmp_path: Path) -> None:
    good = _mypy(tmp_path, PROBE)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = _mypy(tmp_path, PROBE + "wrong = config.trainng.lora_r\nworse = config.training.lora_rr\n")
    assert bad.returncode == 1
    assert '"Config" has no attribute "trainng"; maybe "training"?' in bad.stdout
    assert '"TrainingConfig" has no attribute "lora_rr"; maybe "lora_r"?' in bad.stdout
