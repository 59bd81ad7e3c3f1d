"""README "Deploying with a real model", run command by command against the embedded broker and the
tiny world model.

The test reads the blocks the README marks ``<!-- walkthrough -->`` (shell commands, in order) and
``<!-- walkthrough: config -->`` (the keys a team changes in ``production.toml``) and runs them in a
temporary folder. Lines ending in ``# cluster only`` need the cluster (kubectl, vLLM, a Secret, a
long-running server) and are skipped; the test asserts that exactly those are skipped.

What differs here, and only that, is the substitution table below:

* ``TEXT``: strings of the README's commands and files replaced (the model path, ``/data`` and
  ``/etc/flywheel`` in the temporary folder, the hook's path in the image);
* ``local_keys``: configuration keys set after the README's edits: the session's embedded broker
  (PLAINTEXT, fresh topics) in place of the SASL_SSL cluster, a local raw lake in place of S3, the
  CPU, the tiny world's rubric as the judge in place of the endpoint, the Kubernetes API of the
  hook served by this test, and the tiny model's scale (``SCALE``: the [training] and [evals] sizes
  of production.toml are for a 7 B model on a GPU, here the defaults, which the demo uses).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from flywheel import config as cfgmod
from flywheel import ledger
from tests.fixtures_broker import TEST_SESSION_TIMEOUT_MS

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SECTION = "## Deploying with a real model"
CLUSTER_ONLY = "# cluster only"

# What the README marks as needing the cluster: the test skips these lines and no others.
EXPECTED_CLUSTER_ONLY = {
    "kubectl apply -k infra/k8s",
    "kubectl -n flywheel apply -f infra/k8s/serving-vllm.yaml",
    "kubectl -n flywheel create secret generic flywheel-judge",
    "kubectl -n flywheel create configmap flywheel-config",
    "flywheel collect",
    "kubectl -n flywheel rollout status deployment/vllm-champion",
    "curl -s http://vllm-champion.flywheel.svc:8000/v1/models",
}

# The [training] and [evals] keys of production.toml that size a 7 B model's run on a GPU; here
# they take their defaults (the demo's), which a tiny model on two CPU cores trains and gates with.
# The learning rate stays production's (2e-5).
SCALE = (
    "training.per_device_batch_size",
    "training.gradient_accumulation_steps",
    "training.max_length",
    "training.max_prompt_length",
    "training.max_completion_length",
    "training.lora_dropout",
    "training.save_steps",
    "evals.batch_size",
    "evals.max_length",
    "evals.judge_concurrency",
    "evals.judge_timeout_s",
    "evals.replay_prompts",
    "evals.replay_samples",
    "evals.max_new_tokens",
    "evals.temperature",
    "evals.top_p",
    "nightly.min_train_rows",
)


def section(text: str) -> str:
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def blocks(text: str, marker: str) -> list[str]:
    """The fenced blocks right after ``<!-- walkthrough[: marker] -->``, in order."""
    tag = "<!-- walkthrough -->" if not marker else f"<!-- walkthrough: {marker} -->"
    pattern = re.escape(tag) + r"\s*\n```[a-z]*\n(.*?)```"
    return re.findall(pattern, text, flags=re.S)


def commands(text: str) -> list[str]:
    """Each block's command lines (continuations joined, comment lines dropped)."""
    out: list[str] = []
    for block in blocks(text, ""):
        pending = ""
        for line in block.splitlines():
            if pending:
                line = pending + " " + line.strip()
                pending = ""
            if line.rstrip().endswith("\\"):
                pending = line.rstrip()[:-1].rstrip()
                continue
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
    return out


def cluster_only(command: str) -> bool:
    return command.endswith(CLUSTER_ONLY)


class K8sApi(BaseHTTPRequestHandler):
    """The Kubernetes API as far as infra/hooks/roll_vllm.py uses it: PATCH a Deployment."""

    patches: ClassVar[list[dict[str, Any]]] = []

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        K8sApi.patches.append(
            {
                "path": self.path,
                "auth": self.headers["Authorization"],
                "type": self.headers["Content-Type"],
                **body,
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def k8s_api(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    K8sApi.patches = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), K8sApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("test-token\n")
    (sa / "namespace").write_text("flywheel\n")
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sa
    finally:
        server.shutdown()
        thread.join(5)


def test_readme_marks_its_walkthrough_and_its_cluster_only_lines() -> None:
    text = section(README.read_text(encoding="utf-8"))
    steps = commands(text)
    skipped = {
        c.split("   ")[0].split(" --from")[0].split("  #")[0].strip() for c in steps if cluster_only(c)
    }
    assert {
        next(e for e in EXPECTED_CLUSTER_ONLY if s.startswith(e)) for s in skipped
    } == EXPECTED_CLUSTER_ONLY
    assert len(skipped) == len(EXPECTED_CLUSTER_ONLY)
    run_here = [c for c in steps if not cluster_only(c)]
    # Every flywheel verb the walkthrough names, in the order a team meets them.
    verbs = [shlex.split(c)[1] for c in run_here if c.startswith("flywheel ")]
    assert verbs == [
        "config", "config", "register", "status", "simulate", "ingest", "schedule",
        "nightly", "status", "rollback", "status", "gc", "gc",
    ]  # fmt: skip
    fragment = tomllib.loads(blocks(text, "config")[0])
    assert set(fragment) == {"paths", "kafka", "evals"}


@pytest.mark.slow
@pytest.mark.broker
def test_walkthrough_from_empty_cluster_to_first_promoted_night(
    broker: Any, tiny_world: Path, tmp_path: Path, k8s_api: tuple[str, Path]
) -> None:
    text = section(README.read_text(encoding="utf-8"))
    steps = commands(text)
    here = tmp_path / "here"
    here.mkdir()
    api, sa = k8s_api
    TEXT = {  # the substitution table
        "/etc/flywheel": str(here / "etc"),
        "/data/": str(here / "data") + "/",
        "/models/Qwen2.5-7B-Instruct": str(tiny_world),
        "infra/config/production.toml": str(REPO / "infra/config/production.toml"),
        "python3 /app/infra/hooks/roll_vllm.py": f"{sys.executable} {REPO / 'infra/hooks/roll_vllm.py'}",
        "--idle-timeout 30": "--idle-timeout 8",  # the topics drain in seconds here
    }

    def sub(s: str) -> str:
        for old, new in TEXT.items():
            s = s.replace(old, new)
        return s

    tag = os.urandom(5).hex()
    traces, feedback = f"w{tag}.traces", f"w{tag}.feedback"
    broker.create_topics([traces, feedback], partitions=4)
    defaults = cfgmod.defaults()
    local_keys: dict[str, Any] = {
        "kafka.bootstrap_servers": broker.bootstrap,
        "kafka.security_protocol": "PLAINTEXT",
        "kafka.sasl_mechanism": None,
        "kafka.sasl_plain_username": None,
        "kafka.ssl_cafile": None,
        "kafka.traces_topic": traces,
        "kafka.feedback_topic": feedback,
        "ingest.group_id": f"g{tag}",
        "ingest.session_timeout_ms": TEST_SESSION_TIMEOUT_MS,
        "ingest.metrics_port": 0,
        "ingest.batch_max_age_s": 1.0,
        "paths.raw_lake": str(here / "raw-lake"),
        "training.device": "cpu",
        "evals.device": "cpu",
        "evals.judge": "rubric",
        "evals.rubric": "flywheel.dev.app_sim:rubric",
        # flywheel simulate asks 24 prompts in every session: a session split would hold none out,
        # and the tiny world's rubric knows none of them (its verdicts tie), so, as in the demo, the
        # gate decides on agreement with the held-out thumbs.
        "curation.split_by": "prompt",
        "curation.eval_fraction": 0.3,
        "evals.primary_metric": "auc",
        **{key: getattr(getattr(defaults, key.split(".")[0]), key.split(".")[1]) for key in SCALE},
    }

    env = {
        **os.environ,
        "K8S_API": api,
        "K8S_SA_DIR": str(sa),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("FLYWHEEL_CONFIG", None)
    results: list[tuple[str, subprocess.CompletedProcess[str]]] = []
    skipped: list[str] = []
    started = time.monotonic()
    for step in steps:
        if cluster_only(step):
            skipped.append(step)
            continue
        line = sub(step)
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = value
            continue
        done = subprocess.run(
            line, shell=True, cwd=here, env=env, capture_output=True, text=True, timeout=900
        )
        results.append((step, done))
        assert done.returncode == 0, (
            f"{step}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        if step.startswith("cp ") and "production.toml" in step:
            # The README's edits (its config block), then the substitution table's keys.
            config_file = Path(line.split()[-1])
            config_file.write_text(sub(config_file.read_text(encoding="utf-8")), encoding="utf-8")
            fragment = tomllib.loads(sub(blocks(text, "config")[0]))
            edits = {f"{s}.{k}": v for s, table in fragment.items() for k, v in table.items()}
            resolved = cfgmod.load(config_file, env={}, overrides={**edits, **local_keys})
            resolved = resolved.replace(
                **{"serving.on_promote_command": sub(resolved.serving.on_promote_command)}
            )
            assert '"/data/' not in cfgmod.to_toml(resolved), "a path outside the temporary folder"
            cfgmod.write_resolved(resolved, config_file)
    took = time.monotonic() - started

    def ran(prefix: str) -> subprocess.CompletedProcess[str]:
        return next(done for step, done in results if step.startswith(prefix))

    print(f"walkthrough: {len(results)} commands in {took:.0f}s; skipped {len(skipped)}")
    assert {
        next(e for e in EXPECTED_CLUSTER_ONLY if s.startswith(e)) for s in skipped
    } == EXPECTED_CLUSTER_ONLY
    evals_cfg = ran("flywheel config --section evals").stdout
    assert 'evals.judge = "rubric"' in evals_cfg and "evals.judge_model" in evals_cfg
    registered = ran(
        "flywheel register /models/Qwen2.5-7B-Instruct --champion --version base --alias qwen-prod"
    )
    assert registered.stdout.strip() == "base"
    statuses = [done.stdout for step, done in results if step == "flywheel status"]
    assert "champion: base" in statuses[0]
    assert ran("flywheel simulate").stdout.startswith("simulated 3000 responses from 1 model versions")
    fires = ran("flywheel schedule --next 3").stdout.splitlines()
    assert len(fires) == 3 and all(
        f.endswith(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")) for f in fires
    )

    nightly = ran("flywheel nightly")
    runs = here / "data" / "runs"
    rec = ledger.latest(str(runs))
    assert rec is not None and rec["status"] == "completed", nightly.stdout + nightly.stderr[-2000:]
    assert rec["outcome"] == "promoted", rec["decision"]["reasons"]
    assert Path(rec["decision"]["report_path"]).exists()
    candidate = rec["candidate"]
    assert candidate in nightly.stdout and "promot" in nightly.stdout
    assert "flywheel_nightly_runs_total{" in (runs / "flywheel.prom").read_text()
    assert f"champion: {candidate}" in statuses[1]
    assert "gc" in rec  # nightly.gc = true in production.toml: the round ended with a gc

    # The hook (the real infra/hooks/roll_vllm.py) rolled vLLM at registration and at promotion.
    rolled = [p["spec"]["template"]["metadata"]["annotations"]["flywheel/champion"] for p in K8sApi.patches]
    assert rolled[:2] == ["base", candidate], rolled
    assert all(
        p["path"] == "/apis/apps/v1/namespaces/flywheel/deployments/vllm-champion" for p in K8sApi.patches
    )

    rollback = ran("flywheel rollback")
    assert rollback.stdout.strip() == "rolled back; champion is now base"
    assert [*rolled[:2], "base"] == [
        p["spec"]["template"]["metadata"]["annotations"]["flywheel/champion"] for p in K8sApi.patches
    ]
    assert os.path.realpath(here / "data/registry/serving/current").endswith("/models/base")
    assert "champion: base" in statuses[2] and "rollback" in statuses[2]
    # gc keeps both: the newest registry.keep_last (14) versions, and every champion, past or present.
    assert ran("flywheel gc --dry-run").stdout == ran("flywheel gc").stdout == ""
    assert sorted(p.name for p in (here / "data/registry/models").iterdir()) == sorted(["base", candidate])
