"""What the nightly round's bookkeeping costs: ledger (fsynced JSON after every step), lock,
resolved config, registry promote; against calling the same stages back to back.

    python -m benchmarks nightly        (BENCH_NIGHTLY_ROUNDS=30 by default)

Both sides run the same instant stand-in stages on real files (a Parquet snapshot, registry
versions with checksums), so the difference is the orchestration alone:

* baseline: curate -> train -> gate -> ``Registry.promote``, called directly;
* ours: ``flywheel.nightly.run`` with those stages (lock, ledger after every step, resolved config,
  resume check, promote with evidence).

Printed: milliseconds per round for each, the ratio, and the overhead as a share of the real
round the demo measures on this machine (about 30 s for curate + train + gate on the tiny world).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROUNDS = int(os.environ.get("BENCH_NIGHTLY_ROUNDS", "30"))
REAL_ROUND_S = 30.0


def _setup(root: Path) -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.registry import Registry
    from flywheel import config as cfg
    from flywheel.nightly import Stages

    config = cfg.load(
        None,
        env={},
        overrides={
            "paths.lake": str(root / "lake"),
            "paths.registry": str(root / "reg"),
            "paths.runs": str(root / "runs"),
        },
    )
    base = root / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    (base / "model.safetensors").write_bytes(os.urandom(1 << 20))
    registry = Registry(config.paths.registry)
    registry.register(base, champion=True, version="base")
    counter = {"n": 0}

    def curate(config: Any, as_of: Any = None) -> Path:
        counter["n"] += 1
        snap = Path(config.paths.lake) / "curated" / f"snap-{counter['n']}"
        snap.mkdir(parents=True)
        pq.write_table(
            pa.table({"prompt": ["p"] * 200, "label": [True, False] * 100}), snap / "train.parquet"
        )
        (snap / "manifest.json").write_text(json.dumps({"snapshot_id": snap.name}))
        return snap

    def train(config: Any, snapshot: Path) -> str:
        version = f"cand-{snapshot.name}"
        with registry.stage(version, {"kind": "candidate"}) as folder:
            (folder / "config.json").write_text("{}")
            (folder / "model.safetensors").write_bytes(os.urandom(1 << 20))
        return version

    def gate(config: Any, candidate: str, snapshot: Path) -> Any:
        return SimpleNamespace(promote=True, reasons=["auc 0.9"], report_path=snapshot / "r.json", metrics={})

    return config, Stages(curate=curate, train=train, gate=gate)


def _baseline(n: int) -> list[float]:
    from core.registry import Registry

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        config, stages = _setup(Path(tmp))
        registry = Registry(config.paths.registry)
        for _ in range(n):
            t = time.perf_counter()
            snap = stages.curate(config, None)
            version = stages.train(config, snap)
            decision = stages.gate(config, version, snap)
            registry.promote(version, reason="; ".join(decision.reasons))
            times.append(time.perf_counter() - t)
    return times


def _ours(n: int) -> list[float]:
    from flywheel import nightly

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        config, stages = _setup(Path(tmp))
        for _ in range(n):
            t = time.perf_counter()
            result = nightly.run(config, stages=stages)
            assert result.outcome == "promoted", result.summary()
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    # Alternate the two, three times, and keep medians: other work shares these cores.
    base_runs, our_runs = [], []
    for _ in range(3):
        base_runs.append(statistics.median(_baseline(ROUNDS)))
        our_runs.append(statistics.median(_ours(ROUNDS)))
    base_ms, ours_ms = 1000 * statistics.median(base_runs), 1000 * statistics.median(our_runs)
    overhead_ms = ours_ms - base_ms
    print(f"rounds per measurement: {ROUNDS} (x3, alternating; medians)")
    print(f"baseline (stages called directly): {base_ms:.1f} ms per round")
    print(f"flywheel nightly (lock, ledger, resolved config, evidence): {ours_ms:.1f} ms per round")
    print(f"ratio ours/baseline: {ours_ms / base_ms:.2f}x; overhead {overhead_ms:.1f} ms per round")
    print(
        f"overhead against a real tiny-world round (~{REAL_ROUND_S:.0f} s): "
        f"{100 * overhead_ms / 1000 / REAL_ROUND_S:.3f}%"
    )


if __name__ == "__main__":
    main()
