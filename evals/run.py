"""`flywheel eval`: the candidate against the champion on a snapshot's held-out traces.

1. agreement with users (implicit reward, AUC and margin with cluster-bootstrap CIs, the AUC
   among completions of like length, the probability of the approved completions),
2. replay (both models answer every held-out prompt several times; a judge compares; win rate and
   LC win rate clustered by prompt; KL, support and health of the answers),
3. checks that veto or warn (see :mod:`evals.decision`),
4. the decision, 5. the report under ``<registry>/evals/<candidate>-vs-<champion>/``.

The gate decides and reports; it never switches the champion (``nightly``
promotes or records the rejection with the registry).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.registry import Registry
from core.settings import write_resolved
from core.snapshot import latest_snapshot
from evals import agreement, data, decision, report
from evals.config import EvalsSettings
from evals.errors import EvalError
from evals.judges import make_judge
from evals.replay import Replay, replay_metrics, run_replay, users_length_preference
from evals.replay import slice_metrics as replay_slice_metrics
from evals.scoring import load, pick_device

log = logging.getLogger(__name__)


def pick_candidate(registry: Registry, champion: str) -> str:
    """The newest trained candidate (else the newest version) that is not the champion."""
    others = [v for v in registry.versions() if v != champion]
    trained = [v for v in others if registry.manifest(v).get("kind") == "candidate"]
    if not others:
        raise EvalError(
            f"the registry at {registry.root} has no version besides the champion {champion}",
            hint="train one with `flywheel train` or name it with --candidate",
        )
    return (trained or others)[-1]


def pick_snapshot(config: EvalsSettings, registry: Registry, candidate: str) -> Path:
    """The snapshot the candidate was trained from (its eval split is held out), else the newest."""
    snapshot_id = registry.manifest(candidate).get("snapshot_id")
    if snapshot_id:
        path = Path(config.paths.lake) / "curated" / str(snapshot_id)
        if path.is_dir():
            return path
    latest = latest_snapshot(config.paths.lake)
    if latest is None:
        raise EvalError(
            f"no snapshot to evaluate {candidate} on under {config.paths.lake}/curated",
            hint="pass --snapshot DIR or build one with `flywheel curate`",
        )
    return Path(latest)


def examples(r: Replay, count: int) -> dict[str, list[dict[str, Any]]]:
    """The biggest wins and losses, one pair per prompt."""
    if r.judgement is None or r.margin is None or not count:
        return {}
    order = np.argsort(r.margin, kind="stable")
    formats = r.prompt_formats or ["text"] * len(r.prompts)
    pick = [
        {
            "prompt": r.prompts[i],
            "prompt_format": formats[i],
            "candidate": r.candidate[i],
            "champion": r.champion[i],
            "margin": float(r.margin[i]),
        }
        for i in order
    ]

    def distinct(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[str] = set()
        out = []
        for e in entries:
            if e["prompt"] not in seen:
                seen.add(e["prompt"])
                out.append(e)
        return out[:count]

    wins = distinct([e for e in reversed(pick) if e["margin"] > 0])
    losses = distinct([e for e in pick if e["margin"] < 0])
    return {"Biggest wins of the candidate": wins, "Biggest losses of the candidate": losses}


def run(
    config: EvalsSettings, candidate: str | None = None, snapshot: str | Path | None = None
) -> decision.Decision:
    cfg = config.evals
    started = time.perf_counter()
    registry = Registry.from_config(config)
    champion = registry.champion()
    if champion is None:
        raise EvalError(
            f"the registry at {registry.root} has no champion to compare with",
            hint="`flywheel register PATH --champion` adds the base model as the first champion",
        )
    candidate = candidate or pick_candidate(registry, champion)
    if candidate == champion:
        raise EvalError(f"{candidate} is the champion; nothing to compare", hint="name another --candidate")
    problems = registry.verify(candidate)
    if problems:
        raise EvalError(f"candidate {candidate} is damaged: " + "; ".join(problems), hint="re-train it")
    snap = Path(snapshot) if snapshot else pick_snapshot(config, registry, candidate)
    frame = data.load_eval(snap, cfg.max_eval_rows, cfg.seed)
    clusters = data.clusters(frame, cfg.cluster_by)
    labels = frame["label"].to_numpy(dtype=bool)
    device = pick_device(cfg.device)
    log.info("gate: %s vs %s on %s (%d held-out rows)", candidate, champion, snap.name, len(frame))

    cand = load("candidate", registry.path(candidate), device)
    champ = load("champion", registry.path(champion), device)
    scores = agreement.score_traces(frame, cand, champ, cfg)
    metrics: dict[str, Any] = {"agreement": agreement.agreement_metrics(scores, labels, clusters, cfg)}
    metrics["agreement"]["approved_mass"] = agreement.approved_mass(frame, scores, cfg)
    metrics["slices"] = agreement.slice_metrics(frame, scores, clusters, cfg)
    scored = time.perf_counter()
    log.info(
        "gate: agreement scored in %.1fs (AUC %.3f)", scored - started, metrics["agreement"]["auc"]["value"]
    )
    replayed: Replay | None = None
    if cfg.replay_prompts:
        log.info("gate: replay: %d answers per prompt and model, judge %s", cfg.replay_draws(), cfg.judge)
        replayed = run_replay(frame, cand, champ, make_judge(cfg), cfg)
        log.info(
            "gate: replayed %d prompts (%d pairs) in %.1fs",
            replayed.prompts_used,
            len(replayed.prompts),
            time.perf_counter() - scored,
        )
        if replayed.prompts_used < replayed.prompts_available:
            log.warning(
                "gate: replay uses %d of %d distinct held-out prompts (evals.replay_prompts caps it)",
                replayed.prompts_used,
                replayed.prompts_available,
            )
        users = users_length_preference(frame, clusters, cfg)
        metrics["replay"] = replay_metrics(replayed, cfg, users)
        metrics["replay_slices"] = replay_slice_metrics(replayed, cfg)
    metrics["timing"] = {
        "agreement_s": scored - started,
        "replay_s": time.perf_counter() - scored,
        "rows_per_s": len(frame) / max(scored - started, 1e-9),
    }
    result = decision.decide(metrics, cfg, candidate, champion, snap.name)

    folder = registry.root / "evals" / f"{candidate}-vs-{champion}"
    lengths = {
        "candidate": [len(t) for t in replayed.candidate] if replayed else [],
        "champion": [len(t) for t in replayed.champion] if replayed else [],
    }
    images = report.plots(scores.reward, labels, lengths, metrics["slices"], metrics.get("replay_slices", []))
    candidates = {
        "Data-quality report of the snapshot": snap / "quality" / "summary.html",
        "Model card of the candidate": registry.path(candidate) / "model_card.md",
        "Training curves of the candidate": registry.path(candidate) / "curves.png",
    }
    links = {title: str(path) for title, path in candidates.items() if path.is_file()}
    result.report_path = report.write(
        folder, result, images, examples(replayed, cfg.examples) if replayed else {}, links
    )
    write_resolved(config, folder / "config.toml")
    log.info("gate: %s in %.1fs", "promote" if result.promote else "reject", time.perf_counter() - started)
    return result
