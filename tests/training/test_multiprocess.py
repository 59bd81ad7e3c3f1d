"""`flywheel train` in two processes (torch's launcher; accelerate on gloo over CPU): each process trains its shard
of the snapshot, only the main process writes the candidate, and the gate takes it as any other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.registry import Registry
from evals.run import run as gate
from flywheel.config import write_resolved
from tests.fixtures_model import snapshot_rows, write_snapshot
from tests.ingest.lakeutil import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_processes_train_one_candidate_that_the_gate_evaluates(
    tmp_path: Path, tiny_config: Any, tiny_world: Path, world: Any
) -> None:
    registry = Registry.from_config(tiny_config)
    registry.register(tiny_world, champion=True, version="tiny-base")
    snap = write_snapshot(
        tmp_path / "lake" / "curated" / "snap-a",
        snapshot_rows(world, 96, seed=1),
        snapshot_rows(world, 40, seed=2, split="held_out"),
    )
    config = tiny_config.replace(**{"training.max_steps": 4, "training.save_steps": 2})
    path = write_resolved(config, tmp_path / "flywheel.toml")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    # `accelerate launch --cpu --num_processes 2` starts one process (its simple launcher has no
    # CPU multi-process mode without mpirun): torch's own launcher starts two, which accelerate
    # joins over gloo (ACCELERATE_USE_CPU), as `accelerate launch --multi_gpu` does on GPUs.
    env["ACCELERATE_USE_CPU"] = "true"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            "-m",
            "flywheel.cli",
            "train",
            "--config",
            str(path),
            "--snapshot",
            str(snap),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    candidates = [v for v in registry.versions() if v != "tiny-base"]
    assert len(candidates) == 1, candidates  # one candidate, staged once
    version = candidates[0]
    assert done.stdout.splitlines().count(version) == 2, done.stdout  # both processes print it
    assert registry.verify(version) == []
    assert [e.action for e in registry.history()].count("register") == 2
    metrics = registry.manifest(version)
    assert metrics["kind"] == "candidate" and metrics["snapshot_id"] == "snap-a"
    decision = gate(config.replace(**{"evals.judge": "none"}), candidate=version, snapshot=snap)
    assert decision.candidate == version and decision.champion == "tiny-base"
    assert decision.checks, "the gate ran its checks on the candidate"
