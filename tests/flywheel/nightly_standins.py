"""Stand-in stages for nightly tests: real files (Parquet snapshots, registry versions), no model.

The round's orchestration is what these tests check; the real stages are exercised by the
demo loop test. Each stand-in appends its name to ``calls.log`` so tests can see what ran,
also across a killed subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.registry import Registry
from flywheel import config as cfg
from flywheel.nightly import Stages


def make_config(root: Path, **overrides: Any) -> cfg.Config:
    base = {
        "paths.lake": str(root / "lake"),
        "paths.registry": str(root / "registry"),
        "paths.runs": str(root / "runs"),
        "paths.cache": str(root / "cache"),
    }
    base.update(overrides)
    return cfg.load(None, env={}, overrides=base)


def fake_model(folder: Path, seed: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "fake", "seed": seed}))
    (folder / "model.safetensors").write_bytes(hashlib.sha256(seed.encode()).digest() * 8)
    return folder


def seed_champion(root: Path) -> str:
    registry = Registry(root / "registry")
    return registry.register(fake_model(root / "base", "base"), champion=True, version="base-0")


def calls(root: Path) -> list[str]:
    log = root / "calls.log"
    return log.read_text().split() if log.exists() else []


def _note(root: Path, name: str) -> None:
    with (root / "calls.log").open("a") as f:
        f.write(name + "\n")


def stages(
    root: Path, rows: int = 100, promote: bool = True, fail: str | None = None, hang: str | None = None
) -> Stages:
    """Stand-ins that write what the real stages write. ``fail``/``hang`` name a step that raises/blocks."""

    def trouble(step: str) -> None:
        if fail == step:
            raise RuntimeError(f"stand-in {step} crashed")
        if hang == step:
            (root / f"hanging-{step}").write_text(str(os.getpid()))
            time.sleep(3600)

    def curate(config: cfg.Config, as_of: Any = None) -> Path:
        _note(root, "curate")
        digest = hashlib.sha256(f"rows={rows}".encode()).hexdigest()[:12]
        snap = Path(config.paths.lake) / "curated" / digest
        snap.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {"prompt": [f"p{i}" for i in range(rows)], "label": [i % 2 == 0 for i in range(rows)]}
        )
        pq.write_table(table, snap / "train.parquet")
        pq.write_table(table.slice(0, max(1, rows // 5)), snap / "eval.parquet")
        (snap / "manifest.json").write_text(json.dumps({"snapshot_id": digest, "counts": {"train": rows}}))
        trouble("curate")
        return snap

    def train(config: cfg.Config, snapshot: Path) -> str:
        _note(root, "train")
        registry = Registry(config.paths.registry)
        version = f"cand-{snapshot.name}"
        if version not in registry.versions():
            meta = {"kind": "candidate", "snapshot_id": snapshot.name, "base_version": registry.champion()}
            with registry.stage(version, meta) as folder:
                fake_model(folder, version)
        trouble("train")
        return version

    def gate(config: cfg.Config, candidate: str, snapshot: Path) -> Any:
        _note(root, "gate")
        trouble("gate")
        report = Path(config.paths.runs) / "reports" / f"{candidate}.html"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("<html>report</html>")
        reasons = ["win rate 0.71 >= 0.55"] if promote else ["win rate 0.31 < 0.55"]
        return SimpleNamespace(
            promote=promote, reasons=reasons, report_path=report, metrics={"win_rate": 0.71}
        )

    return Stages(curate=curate, train=train, gate=gate)


def main() -> None:
    """Run one round in this process with the stand-ins: ``python -m tests.flywheel.nightly_standins ROOT HANG``."""
    from flywheel.nightly import run

    root, hang = Path(sys.argv[1]), sys.argv[2]
    run(make_config(root), stages=stages(root, hang=hang))


if __name__ == "__main__":
    main()
