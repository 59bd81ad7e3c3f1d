"""The light client for apps (clients/python, distribution flywheel-events, package flywheel_events).

Ingest and the light package share one validator and one producer (the same objects, not copies);
importing the light package loads neither torch nor transformers nor anything of flywheel; and,
behind ``slow``, a fresh virtual environment with only ``pip install ./clients/python`` sends
events that ingest writes to the lake.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
import venv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import flywheel_events
import ingest.producer
import ingest.schema
from core import errors
from core.sections import KafkaConfig
from flywheel_events.schema import InvalidRecord
from ingest.service import run as run_ingest
from tests.ingest.lakeutil import feedback_event, ids, read
from tests.ingest.test_verdicts import wire_records

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
HEAVY = ("torch", "transformers", "trl", "great_expectations", "pyarrow", "duckdb", "flywheel", "ingest")

# Run by a Python that has only the light package: what `import flywheel_events` loads.
IMPORT_PROBE = """
import json, sys
import flywheel_events
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_ingest_imports_the_light_packages_objects_not_copies():
    for name in ingest.schema.__all__:
        assert getattr(ingest.schema, name) is getattr(flywheel_events.schema, name), name
    for name in ingest.producer.__all__:
        assert getattr(ingest.producer, name) is getattr(flywheel_events.producer, name), name
    # The CLI's `except FlywheelError` catches what the light producer raises.
    assert errors.TransientError is flywheel_events.TransientError
    assert issubclass(errors.ConfigError, flywheel_events.TerminalError)


def _ingests_problems(stream: str, value: bytes) -> list[str]:
    try:
        ingest.schema.decode(stream, value)
    except ingest.schema.InvalidRecord as exc:
        return [f"{f}: {m}" if f else m for f, m in exc.problems]
    return []


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(traces=wire_records("traces"), feedback=wire_records("feedback"))
def test_the_light_validator_gives_ingests_verdicts(traces, feedback):
    # test_verdicts' records: valid events and events broken one way each. An app holds an event as
    # a dict; validate() must judge it as ingest judges the record the app's producer sends.
    for stream, value in (("traces", traces), ("feedback", feedback)):
        try:
            event = ingest.schema.parse_json(value, 1 << 20)
        except ingest.schema.InvalidRecord:
            continue  # not a JSON object on the wire (bytes, BOM, truncation): no dict to validate
        sent = flywheel_events.encode_event(event)
        assert flywheel_events.validate(stream, event) == _ingests_problems(stream, sent)
        assert _ingests_problems(stream, sent) == _ingests_problems(stream, value)


def test_validate_names_every_problem_and_rejects_an_unknown_stream():
    good = json.loads(feedback_event(1))
    assert flywheel_events.validate("feedback", good) == []
    problems = flywheel_events.validate("feedback", {**good, "kind": "star", "event_time": "yesterday"})
    assert [p.split(":")[0] for p in problems] == ["event_time", "kind"]
    with pytest.raises(ValueError, match="unknown stream 'trace': expected one of traces, feedback"):
        flywheel_events.validate("trace", good)


def test_the_shipped_json_schemas_are_the_published_ones():
    for stream, name in (("traces", "trace.json"), ("feedback", "feedback.json")):
        published = json.loads((ROOT / "schemas" / name).read_text(encoding="utf-8"))
        assert flywheel_events.json_schema(stream) == published
        assert published["$id"].startswith("urn:flywheel-kto:events:")


def test_kafka_settings_default_to_flywheels_topics_and_refuse_bad_values():
    light, full = flywheel_events.KafkaSettings(), KafkaConfig()
    assert (light.bootstrap_servers, light.traces_topic, light.feedback_topic) == (
        full.bootstrap_servers,
        full.traces_topic,
        full.feedback_topic,
    )
    assert flywheel_events.KafkaSettings("a:1, b:2").client_kwargs()["bootstrap_servers"] == ["a:1", "b:2"]
    with pytest.raises(ValueError, match="bootstrap_servers is empty"):
        flywheel_events.KafkaSettings(" , ")
    with pytest.raises(ValueError, match="must differ"):
        flywheel_events.KafkaSettings(traces_topic="x", feedback_topic="x")


def test_importing_the_light_package_loads_nothing_heavy():
    # The development environment has torch and all of flywheel installed: the import must not reach them.
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    loaded = set(json.loads(out))
    assert "kafka" in loaded and "flywheel_events" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.broker
def test_a_validating_producer_refuses_a_bad_event_and_sends_the_good_ones(broker_config):
    config = broker_config.replace(**{"ingest.idle_timeout_s": 1.5})
    with flywheel_events.EventProducer(config.kafka, validate=True) as events:
        trace_id = events.send_trace(prompt="q", completion="a", model_version="v1", user_id="u1")
        with pytest.raises(InvalidRecord, match="kind: 'star' is not one of thumb, edit"):
            events.send_feedback(trace_id=trace_id, kind="star", label="up")
        event_id = events.send_feedback(trace_id=trace_id, kind="rating", score=4, scale={"min": 1, "max": 5})
        assert events.sent == 2
    stats = run_ingest(config)
    lake = Path(config.paths.lake)
    assert ids(lake, "traces", "trace_id") == [trace_id]
    assert ids(lake, "feedback", "event_id") == [event_id]
    assert stats.dead_lettered == 0


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.slow
@pytest.mark.broker
def test_a_fresh_venv_with_only_the_light_package_sends_events_ingest_writes(broker_config, tmp_path):
    # A copy, so the build leaves nothing in the checkout; pip resolves the real dependencies (PyPI).
    source = tmp_path / "flywheel-events"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env_dir = tmp_path / "app-venv"
    started = time.monotonic()
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)], env=clean_env)
    seconds = time.monotonic() - started
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    listed = _run(
        [python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"], env=clean_env
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)} - {"pip", "setuptools"}
    own = sum(_size(p) for p in site.iterdir() if p.name.startswith(("kafka", "flywheel_events")))
    print(f"\nlight install: {seconds:.1f} s, {sorted(installed)}: {own / 1e6:.1f} MB", end="")
    print(f" (site-packages with pip and setuptools {_size(site) / 1e6:.1f} MB)")
    assert {"flywheel-events", "kafka-python"} <= installed
    assert not installed & {"torch", "transformers", "trl", "great-expectations", "pyarrow", "flywheel-kto"}

    loaded = set(json.loads(_run([python, "-c", IMPORT_PROBE], env=clean_env, cwd=tmp_path).stdout))
    assert "flywheel_events" in loaded and not loaded & set(HEAVY), sorted(loaded & set(HEAVY))

    k = broker_config.kafka
    app = textwrap.dedent(
        f"""
        import json, sys
        from flywheel_events import EventProducer, KafkaSettings, json_schema, validate

        assert json_schema("feedback")["$id"].startswith("urn:flywheel-kto:events:feedback:")
        settings = KafkaSettings({k.bootstrap_servers!r}, traces_topic={k.traces_topic!r},
                                 feedback_topic={k.feedback_topic!r})
        sent = {{"traces": [], "feedback": []}}
        with EventProducer(settings, validate=True) as events:
            for i in range(20):
                trace_id = events.send_trace(prompt=f"q{{i}}", completion=f"a{{i}}", model_version="v1")
                sent["traces"].append(trace_id)
                sent["feedback"].append(events.send_feedback(trace_id=trace_id, label="up" if i % 2 else "down"))
            sent["feedback"].append(events.send_feedback(trace_id=trace_id, kind="edit", label="down",
                                                         edited_completion="better"))
        bad = {{"event_id": "x", "trace_id": "t", "event_time": "2025-03-01T10:00:00Z", "kind": "star"}}
        sent["problems"] = validate("feedback", bad)
        print(json.dumps(sent))
        """
    )
    sent = json.loads(_run([python, "-c", app], env=clean_env, cwd=tmp_path).stdout)
    assert sent["problems"] == ["kind: 'star' is not one of thumb, edit, rating"]

    stats = run_ingest(broker_config.replace(**{"ingest.idle_timeout_s": 1.5}))
    lake = Path(broker_config.paths.lake)
    assert sorted(ids(lake, "traces", "trace_id")) == sorted(sent["traces"])
    assert sorted(ids(lake, "feedback", "event_id")) == sorted(sent["feedback"])
    assert stats.dead_lettered == 0 and read(lake, "dead", "feedback") is None


def test_the_image_copies_every_folder_the_main_distribution_finds_packages_in():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    where = project["tool"]["setuptools"]["packages"]["find"]["where"]
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text(encoding="utf-8")
    for folder in (w for w in where if w != "."):
        assert f"COPY {folder} ./{folder}" in dockerfile, f"infra/Dockerfile does not copy {folder}"
