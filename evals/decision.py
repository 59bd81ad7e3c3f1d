"""Guards and the decision: promote only on enough held-out evidence, when the primary metric's
interval excludes no improvement and every guard passes. Every check leaves a readable reason, pass or fail."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals.config import NO_IMPROVEMENT, EvalsConfig


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None
    threshold: str
    reason: str


@dataclasses.dataclass
class Decision:
    promote: bool
    reasons: list[str]
    candidate: str
    champion: str
    snapshot: str
    checks: list[Check]
    metrics: dict[str, Any]
    report_path: Path = Path()

    def summary(self) -> str:
        verdict = "PROMOTE" if self.promote else "REJECT"
        lines = [f"{verdict} {self.candidate} over champion {self.champion} (snapshot {self.snapshot})"]
        lines += [f"  - {r}" for r in self.reasons]
        lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "decision": "promote" if self.promote else "reject",
            "candidate": self.candidate,
            "champion": self.champion,
            "snapshot": self.snapshot,
            "reasons": self.reasons,
            "checks": [dataclasses.asdict(c) for c in self.checks],
            "metrics": self.metrics,
        }


def _f(x: float) -> str:
    return f"{x:.3f}"


def primary_check(metrics: dict[str, Any], cfg: EvalsConfig) -> Check:
    name = cfg.primary_metric
    source = metrics["agreement"] if name in ("auc", "margin") else metrics.get("replay", {})
    est = source.get(name)
    null = NO_IMPROVEMENT[name]
    if est is None:
        return Check(
            f"primary:{name}", False, None, f"> {null}", f"{name} was not measured (needs replay and a judge)"
        )
    value, low, high = est["value"], est["low"], est["high"]
    passed = bool(low > null)
    ci = f"{name} {_f(value)}, {cfg.ci_level:.0%} CI [{_f(low)}, {_f(high)}]"
    if passed:
        reason = f"{ci} excludes no improvement ({null})"
    elif high < null:
        reason = f"{ci} is worse than the champion (no improvement = {null})"
    else:
        reason = f"{ci} does not exclude no improvement ({null})"
    return Check(f"primary:{name}", passed, value, f"CI low > {null}", reason)


def evidence_check(metrics: dict[str, Any], cfg: EvalsConfig) -> Check:
    """Enough held-out rows of each label, and clusters, for the primary metric's interval to mean
    anything: a bootstrap over a dozen rows gives "AUC 1.000, CI [1.000, 1.000]", which is luck."""
    agreement = metrics["agreement"]
    # Missing counts fail closed: no count, no evidence.
    up, down = int(agreement.get("thumbs_up", 0)), int(agreement.get("thumbs_down", 0))
    clusters = int(agreement.get("clusters", 0))
    need, need_clusters = cfg.min_eval_rows_per_class, cfg.min_eval_clusters
    short = []
    if min(up, down) < need:
        short.append(f"only {up} thumbs-up / {down} thumbs-down held-out rows; need {need} of each")
    if clusters < need_clusters:
        short.append(f"only {clusters} {cfg.cluster_by} clusters to resample; need {need_clusters}")
    threshold = f">= {need} rows per label, >= {need_clusters} clusters"
    measured = (metrics.get("replay") or {}).get(cfg.primary_metric)
    if cfg.primary_metric in ("win_rate", "lc_win_rate"):
        threshold += f", >= {cfg.min_replay_pairs} replay pairs"
        # Not measured at all is the primary check's failure, not a shortage of pairs.
        pairs = int(measured.get("n", 0)) if measured else cfg.min_replay_pairs
        if pairs < cfg.min_replay_pairs:
            short.append(f"only {pairs} judged replay pairs; need {cfg.min_replay_pairs}")
    if short:
        reason = (
            "; ".join(short) + ": collect more feedback or raise curation.eval_fraction"
            " (the interval of so few rows is not evidence)"
        )
    else:
        reason = f"{up} thumbs-up / {down} thumbs-down held-out rows in {clusters} {cfg.cluster_by} clusters"
    return Check("min_evidence", not short, float(min(up, down)), threshold, reason)


def _slice_check(
    name: str,
    kind: str,
    label: str,
    slices: list[dict[str, Any]],
    metric: str,
    floor: float,
    detail: Callable[[dict[str, Any]], str],
) -> Check | None:
    """Every judged slice's ``metric`` at least ``floor``; None when no slice is judged.
    ``detail`` adds to a failing slice's value in the reason."""
    judged = [s for s in slices if s["judged"]]
    if not judged:
        return None
    failing = [s for s in judged if s[metric]["value"] < floor]
    names = ", ".join(
        f"{s['key']}={s['value']} ({label} {_f(s[metric]['value'])}{detail(s)})" for s in failing
    )
    return Check(
        name,
        not failing,
        min(s[metric]["value"] for s in judged),
        f"every slice {label} >= {floor}",
        f"{kind} regression: {names}"
        if failing
        else f"{len(judged)} {kind}(s), every {label} >= {_f(floor)}",
    )


def guard_checks(metrics: dict[str, Any], cfg: EvalsConfig) -> list[Check]:
    checks = []
    chosen = metrics["agreement"]["chosen_logp_change"]["value"]
    checks.append(
        Check(
            "chosen_logp_drop",
            chosen >= cfg.min_chosen_logp_change,
            chosen,
            f">= {cfg.min_chosen_logp_change}",
            f"mean log-prob change on thumbs-up completions {_f(chosen)} nats/token "
            f"({'within' if chosen >= cfg.min_chosen_logp_change else 'below'} {cfg.min_chosen_logp_change})",
        )
    )
    replay = metrics.get("replay")
    if replay:
        ratio = replay["length_ratio"]
        ok = cfg.min_length_ratio <= ratio <= cfg.max_length_ratio
        checks.append(
            Check(
                "length_ratio",
                ok,
                ratio,
                f"[{cfg.min_length_ratio}, {cfg.max_length_ratio}]",
                f"answer length ratio candidate/champion {_f(ratio)} "
                f"({'within' if ok else 'outside'} [{cfg.min_length_ratio}, {cfg.max_length_ratio}]; "
                f"{replay['mean_length_candidate']:.0f} vs {replay['mean_length_champion']:.0f} chars)",
            )
        )
        kl = replay["kl_per_token"]["value"]
        checks.append(
            Check(
                "kl_drift",
                kl <= cfg.max_kl,
                kl,
                f"<= {cfg.max_kl}",
                f"KL from the champion on sampled answers {_f(kl)} nats/token "
                f"({'within' if kl <= cfg.max_kl else 'above'} {cfg.max_kl})",
            )
        )
        if "format_rate_candidate" in replay:
            drop = replay["format_rate_champion"] - replay["format_rate_candidate"]
            checks.append(
                Check(
                    "format",
                    drop <= cfg.max_format_drop,
                    drop,
                    f"<= {cfg.max_format_drop}",
                    f"format match rate {_f(replay['format_rate_candidate'])} vs champion "
                    f"{_f(replay['format_rate_champion'])} (drop allowed {cfg.max_format_drop})",
                )
            )
        if "refusal_rate_candidate" in replay:
            rise = replay["refusal_rate_candidate"] - replay["refusal_rate_champion"]
            checks.append(
                Check(
                    "refusal",
                    rise <= cfg.max_refusal_increase,
                    rise,
                    f"<= {cfg.max_refusal_increase}",
                    f"refusal rate {_f(replay['refusal_rate_candidate'])} vs champion "
                    f"{_f(replay['refusal_rate_champion'])} (rise allowed {cfg.max_refusal_increase})",
                )
            )
    auc_check = _slice_check(
        "slices", "slice", "AUC", metrics.get("slices", []), "auc", 0.5 - cfg.max_slice_auc_drop, lambda s: ""
    )
    win_check = _slice_check(
        "replay_slices",
        "replay slice",
        "win rate",
        metrics.get("replay_slices", []),
        "win_rate",
        0.5 - cfg.max_slice_win_drop,
        lambda s: f", CI [{_f(s['win_rate']['low'])}, {_f(s['win_rate']['high'])}], {s['prompts']} prompts",
    )
    checks += [c for c in (auc_check, win_check) if c is not None]
    return checks


def decide(
    metrics: dict[str, Any], cfg: EvalsConfig, candidate: str, champion: str, snapshot: str
) -> Decision:
    checks = [evidence_check(metrics, cfg), primary_check(metrics, cfg), *guard_checks(metrics, cfg)]
    promote = all(c.passed for c in checks)
    failed = [f"{c.name}: {c.reason}" for c in checks if not c.passed]
    passed = [f"{c.name}: {c.reason}" for c in checks if c.passed]
    # Failures first: they are why a candidate is rejected.
    reasons = failed + passed if not promote else passed
    return Decision(promote, reasons, candidate, champion, snapshot, checks, metrics)
