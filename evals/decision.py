"""Checks and the decision. Promote only on enough held-out evidence, when the primary metric's
interval excludes no improvement and no check vetoes.

Each check tests one failure of preference training, on evidence, and says whether it passed,
vetoed or warned, and why:

- ``min_evidence``: enough held-out rows, clusters and judged pairs for an interval to mean anything.
- ``primary:<metric>``: the improvement itself (``auto``: the length-controlled replay win rate with a
  judge whose taste for length is the users' own, else the agreement AUC with held-out thumbs).
- ``length_control``: the improvement survives controlling for length (with a judge: a raw win whose
  length-controlled interval no longer excludes 0.5; without: an agreement that vanishes among
  completions of like length). ``length_ratio`` is only a wide runaway bound.
- ``approved_mass``: probability leaving the completions users approved for outputs nobody approved.
- ``kl_drift``: how far the candidate moved from the champion on its own answers.
- ``support``: answers the champion would not have written, about which thumbs say nothing.
- ``degenerate``: empty, unfinished or repetitive answers.
- ``slices`` and ``replay_slices``: a slice significantly worse than the champion.
- ``format`` and ``refusal`` (optional).

A judge that read the very answers and preferred them, significantly, and whose taste for length
is the users' own, is evidence that moving away from the champion served users: then
``approved_mass``, ``kl_drift`` and ``support`` warn instead of vetoing. Without such a win they
veto.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals.config import NO_IMPROVEMENT, EvalsConfig

WIN_RATES = ("win_rate", "lc_win_rate")


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None
    threshold: str
    reason: str
    severity: str = "veto"  # what a failure does: "veto" rejects, "warning" is reported only

    @property
    def outcome(self) -> str:
        """pass | veto | warning"""
        return "pass" if self.passed else self.severity


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

    @property
    def deciding(self) -> Check | None:
        """The check that decided: the first veto, else the primary metric's check."""
        vetoes = sorted((c for c in self.checks if c.outcome == "veto"), key=_precedence)
        if vetoes:
            return vetoes[0]
        return next((c for c in self.checks if c.name.startswith("primary:")), None)

    def summary(self) -> str:
        verdict = "PROMOTE" if self.promote else "REJECT"
        lines = [f"{verdict} {self.candidate} over champion {self.champion} (snapshot {self.snapshot})"]
        lines += [f"  - {r}" for r in self.reasons]
        lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        deciding = self.deciding
        return {
            "promote": self.promote,
            "decision": "promote" if self.promote else "reject",
            "deciding_check": deciding.name if deciding else None,
            "candidate": self.candidate,
            "champion": self.champion,
            "snapshot": self.snapshot,
            "reasons": self.reasons,
            "checks": [{**dataclasses.asdict(c), "outcome": c.outcome} for c in self.checks],
            "metrics": self.metrics,
        }


# When several checks veto, the one that explains the others decides: too little evidence, then a
# win by length (which also sinks the length-controlled primary), then the rest in order.
_FIRST = ("min_evidence", "length_control")


def _precedence(c: Check) -> int:
    return _FIRST.index(c.name) if c.name in _FIRST else len(_FIRST)


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _ci(est: dict[str, Any], level: float) -> str:
    return f"{_f(est['value'])}, {level:.0%} CI [{_f(est['low'])}, {_f(est['high'])}]"


def _significant_win(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The length-controlled judged win rate when its interval excludes 0.5 and the judge's taste
    for length is the users' own, else None. A judge whose taste measurably differs from users'
    (its length preference had to be controlled) cannot overrule what users' own thumbs show."""
    replay = metrics.get("replay") or {}
    lc = replay.get("lc_win_rate")
    if (replay.get("length_preference") or {}).get("controlled"):
        return None
    return lc if lc and lc["low"] > NO_IMPROVEMENT["lc_win_rate"] else None


def primary_metric(metrics: dict[str, Any], cfg: EvalsConfig) -> tuple[str, str]:
    """The metric that decides, and why when ``auto`` chose it from the evidence.

    ``auto`` takes the judge's length-controlled win rate, unless the judge's taste for length
    was found to differ from the users' own (their held-out thumbs): a judge shown to want what
    users do not cannot be the primary evidence of what users get, so their thumbs (the agreement
    AUC) decide, and the judge's win still has to survive length control."""
    name = cfg.primary()
    controlled = ((metrics.get("replay") or {}).get("length_preference") or {}).get("controlled")
    if cfg.primary_metric == "auto" and name in WIN_RATES and controlled:
        return "auc", (
            " (auto: the judge's taste for length differs from the users' thumbs, so their thumbs decide)"
        )
    return name, ""


def primary_check(metrics: dict[str, Any], cfg: EvalsConfig) -> Check:
    name, why = primary_metric(metrics, cfg)
    source = metrics["agreement"] if name in ("auc", "margin") else metrics.get("replay", {})
    est = source.get(name)
    null = NO_IMPROVEMENT[name]
    if est is None:
        return Check(
            f"primary:{name}", False, None, f"> {null}", f"{name} was not measured (needs replay and a judge)"
        )
    value, low, high = est["value"], est["low"], est["high"]
    passed = bool(low > null)
    ci = f"{name} {_ci(est, cfg.ci_level)}"
    if passed:
        reason = f"{ci} excludes no improvement ({null})"
    elif high < null:
        reason = f"{ci} is worse than the champion (no improvement = {null})"
    else:
        reason = f"{ci} does not exclude no improvement ({null})"
    detectable = est.get("detectable")
    if detectable is not None and detectable == detectable:  # not NaN
        reason += f"; this run detects effects of {_f(detectable)} or more at {cfg.power:.0%} power"
    reason += why
    if name in WIN_RATES:
        replay = metrics.get("replay", {})
        reason += (
            f" ({replay.get('prompts', 0)} of {replay.get('prompts_available', 0)} held-out prompts, "
            f"{replay.get('samples_per_prompt', 1)} answers each)"
        )
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
    primary, _ = primary_metric(metrics, cfg)
    measured = (metrics.get("replay") or {}).get(primary)
    if primary in WIN_RATES:
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


def length_control_check(metrics: dict[str, Any], cfg: EvalsConfig) -> Check | None:
    """A judged win must survive length control where the judge's taste for length is not the
    users' own (:mod:`evals.replay`): a raw win whose length-controlled interval no longer excludes
    0.5 is a win by length, and vetoes. Users' own taste for length is not the failure.

    Without a judge the agreement is with users' thumbs themselves, whose taste for length is the
    product's; the AUC among completions of like length is reported, and a significant AUC that
    does not survive there is a warning (label noise alone makes like-length pairs of opposite
    thumbs, so it cannot veto)."""
    primary, _ = primary_metric(metrics, cfg)
    replay = metrics.get("replay") or {}
    if primary in WIN_RATES or (replay.get("lc_win_rate") and replay.get("win_rate")):
        raw, lc = replay.get("win_rate"), replay.get("lc_win_rate")
        if not raw or not lc:
            return None
        pref = replay.get("length_preference") or {}
        only_length = raw["low"] > 0.5 and lc["low"] <= 0.5
        tastes = (
            f"the judge prefers {pref.get('judge_prefers', '?')} answers, users' thumbs "
            f"{pref.get('users_prefer', '?')}"
        )
        if only_length:
            reason = (
                f"the win does not survive length control: win rate {_ci(raw, cfg.ci_level)} but "
                f"length-controlled {_ci(lc, cfg.ci_level)} ({tastes})"
            )
        elif pref.get("controlled"):
            reason = f"length-controlled win rate {_ci(lc, cfg.ci_level)} against raw {_f(raw['value'])} ({tastes})"
        else:
            reason = f"no length control needed: {tastes}"
        return Check(
            "length_control",
            not only_length,
            lc["value"],
            "a raw win keeps its length-controlled interval above 0.5",
            reason,
        )
    agreement = metrics["agreement"]
    matched = agreement.get("length_matched")
    if not matched:
        return None
    raw = agreement.get("auc")
    if matched["pairs"] < cfg.min_length_matched_pairs or "auc" not in matched:
        return Check(
            "length_control",
            True,
            None,
            f">= {cfg.min_length_matched_pairs} length-matched pairs to test",
            f"not testable: only {matched['pairs']} (thumbs-up, thumbs-down) pairs of like length "
            f"(need {cfg.min_length_matched_pairs}): in this data length and thumbs go together",
            severity="warning",
        )
    est = matched["auc"]
    only_length = bool(raw and raw["low"] > 0.5 and est["low"] <= 0.5)
    return Check(
        "length_control",
        not only_length,
        est["value"],
        "a significant AUC keeps its length-matched interval above 0.5",
        f"the agreement does not survive among completions of like length: AUC {_f(raw['value'] if raw else None)} "
        f"but length-matched {_ci(est, cfg.ci_level)} over {matched['pairs']} pairs"
        if only_length
        else f"length-matched AUC {_ci(est, cfg.ci_level)} over {matched['pairs']} pairs",
        severity="warning",
    )


def _slice_check(
    name: str,
    kind: str,
    label: str,
    slices: list[dict[str, Any]],
    metric: str,
    floor: float,
    detail: Callable[[dict[str, Any]], str],
) -> Check | None:
    """A judged slice fails when its ``metric`` is below ``floor`` and its interval lies below 0.5
    (a significant regression, not the noise of a small slice); None when no slice is judged."""
    judged = [s for s in slices if s["judged"]]
    if not judged:
        return None
    failing = [s for s in judged if s[metric]["value"] < floor and s[metric]["high"] < 0.5]
    names = ", ".join(
        f"{s['key']}={s['value']} ({label} {_f(s[metric]['value'])}{detail(s)})" for s in failing
    )
    return Check(
        name,
        not failing,
        min(s[metric]["value"] for s in judged),
        f"no slice {label} < {floor} with its interval below 0.5",
        f"{kind} regression: {names}"
        if failing
        else f"{len(judged)} {kind}(s), none significantly below {_f(floor)}",
    )


def _softened(win: dict[str, Any] | None) -> tuple[str, str]:
    if win is None:
        return "veto", ""
    return (
        "warning",
        f"; a warning: the judge preferred the candidate's answers (LC win rate {_f(win['value'])}, CI low {_f(win['low'])})",
    )


def drift_checks(metrics: dict[str, Any], cfg: EvalsConfig) -> list[Check]:
    """The chosen-probability drop, KL drift and support: vetoes, or warnings beside a judged win."""
    win = _significant_win(metrics)
    severity, why = _softened(win)
    checks = []
    mass = metrics["agreement"].get("approved_mass", {}).get("change_per_token")
    if mass:
        leaving = mass["value"] < -cfg.max_approved_mass_drop and mass["high"] < 0
        checks.append(
            Check(
                "approved_mass",
                not leaving,
                mass["value"],
                f">= -{cfg.max_approved_mass_drop} nats/token (or interval reaching 0)",
                (
                    f"probability leaves the completions users approved: {_ci(mass, cfg.ci_level)} "
                    f"nats/token over {metrics['agreement']['approved_mass']['prompts']} prompts" + why
                    if leaving
                    else f"approved completions keep their probability: {_ci(mass, cfg.ci_level)} nats/token"
                ),
                severity,
            )
        )
    replay = metrics.get("replay")
    if not replay:
        return checks
    kl = replay["kl_per_token"]["value"]
    checks.append(
        Check(
            "kl_drift",
            kl <= cfg.max_kl,
            kl,
            f"<= {cfg.max_kl}",
            f"KL from the champion on sampled answers {_f(kl)} nats/token "
            f"({'within' if kl <= cfg.max_kl else 'above'} {cfg.max_kl})" + ("" if kl <= cfg.max_kl else why),
            severity,
        )
    )
    support = replay.get("unsupported")
    if support:
        checks.append(
            _rise_check(
                "support",
                support,
                cfg.max_unsupported_increase,
                f"{support['candidate']:.0%} of the candidate's answers are ones the champion would not "
                f"write (its own: {support['champion']:.0%})",
                cfg,
                severity,
                why,
            )
        )
    return checks


def _rise_check(
    name: str,
    rates: dict[str, Any],
    tolerance: float,
    text: str,
    cfg: EvalsConfig,
    severity: str = "veto",
    why: str = "",
) -> Check:
    """A rate of the candidate's answers against the champion's: it fails when the rise is above
    ``tolerance`` and its interval above 0 (large, and not the noise of sampling)."""
    rise = rates["increase"]
    bad = rise["value"] > tolerance and rise["low"] > 0
    return Check(
        name,
        not bad,
        rise["value"],
        f"rise <= {tolerance}",
        f"{text}; rise {_ci(rise, cfg.ci_level)}" + (why if bad else ""),
        severity,
    )


def guard_checks(metrics: dict[str, Any], cfg: EvalsConfig) -> list[Check]:
    checks = []
    length = length_control_check(metrics, cfg)
    if length is not None:
        checks.append(length)
    replay = metrics.get("replay")
    if replay:
        ratio = replay["length_ratio"]
        ok = cfg.min_length_ratio <= ratio <= cfg.max_length_ratio
        bounds = f"[{cfg.min_length_ratio:.2f}, {cfg.max_length_ratio:.2f}]"
        checks.append(
            Check(
                "length_ratio",
                ok,
                ratio,
                bounds,
                f"answer length ratio candidate/champion {_f(ratio)} "
                f"({'within' if ok else 'outside'} the runaway bound {bounds}; "
                f"{replay['mean_length_candidate']:.0f} vs {replay['mean_length_champion']:.0f} chars)",
            )
        )
    checks += drift_checks(metrics, cfg)
    if replay:
        degenerate = replay.get("degenerate")
        if degenerate:
            checks.append(
                _rise_check(
                    "degenerate",
                    degenerate,
                    cfg.max_degenerate_increase,
                    f"empty, unfinished or repetitive answers {degenerate['candidate']:.0%} vs the "
                    f"champion's {degenerate['champion']:.0%}",
                    cfg,
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
            rise_r = replay["refusal_rate_candidate"] - replay["refusal_rate_champion"]
            checks.append(
                Check(
                    "refusal",
                    rise_r <= cfg.max_refusal_increase,
                    rise_r,
                    f"<= {cfg.max_refusal_increase}",
                    f"refusal rate {_f(replay['refusal_rate_candidate'])} vs champion "
                    f"{_f(replay['refusal_rate_champion'])} (rise allowed {cfg.max_refusal_increase})",
                )
            )
    auc_check = _slice_check(
        "slices",
        "slice",
        "AUC",
        metrics.get("slices", []),
        "auc",
        0.5 - cfg.max_slice_auc_drop,
        lambda s: f", CI [{_f(s['auc']['low'])}, {_f(s['auc']['high'])}], {s['rows']} rows",
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
    promote = all(c.outcome != "veto" for c in checks)
    marks = {"veto": "VETO", "warning": "WARNING", "pass": "pass"}

    def line(c: Check) -> str:
        return (
            f"{c.name}: {c.reason}" if c.outcome == "pass" else f"{c.name} [{marks[c.outcome]}]: {c.reason}"
        )

    vetoes = [line(c) for c in sorted((c for c in checks if c.outcome == "veto"), key=_precedence)]
    warnings = [line(c) for c in checks if c.outcome == "warning"]
    # The deciding check first: the first veto, or on promotion the primary metric.
    primary = [line(c) for c in checks if c.outcome == "pass" and c.name.startswith("primary:")]
    passed = [line(c) for c in checks if c.outcome == "pass" and not c.name.startswith("primary:")]
    reasons = vetoes + primary + warnings + passed if vetoes else primary + warnings + passed
    return Decision(promote, reasons, candidate, champion, snapshot, checks, metrics)
