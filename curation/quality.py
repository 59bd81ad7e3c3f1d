"""The data-quality suite: Great Expectations 1.x over the raw and curated data.

Exact measures (null counts, rates, shares) are computed by DuckDB over every row and
checked as a one-row frame; the curated rows are checked row by row (all of them up to
``FRAME_LIMIT``). Each expectation carries its check name and severity in ``meta``;
a failed ``critical`` check stops the round (see ``curation.run``), a failed
``warning`` is only reported. GX is imported here, lazily: it is slow to import and
only this step needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from curation.config import CurationConfig
from curation.snapshot import SOURCES

# GX's pandas checks cost about 1 s per 10 k rows here; the exact measures above cover every row.
FRAME_LIMIT = 50_000
# Redaction can lengthen a text (an email "a@b.cc" becomes "[EMAIL]", at most one character per
# six), so the curated length bound allows for it over the pre-redaction filter's limit.
REDACTION_SLACK = 1.2
# The one Data Docs site a run builds: the snapshot's quality/gx folder.
DOCS_SITE = "snapshot"


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    severity: str  # critical | warning
    success: bool
    observed: str
    expected: str

    def why(self) -> str:
        return f"observed {self.observed}, expected {self.expected}"


def _bounds(low: float | None, high: float | None) -> str:
    if high is None:
        return f">= {low}"
    if low == high:
        return f"= {low}"
    return f"between {low} and {high}"


def length_limits(cfg: CurationConfig) -> tuple[int, int]:
    """Upper bounds of curated prompt and completion lengths (after redaction)."""
    return (
        math.ceil(cfg.max_prompt_chars * REDACTION_SLACK),
        math.ceil(cfg.max_completion_chars * REDACTION_SLACK),
    )


def metric_rules(cfg: CurationConfig) -> list[tuple[str, str, float | None, float | None]]:
    """(check, metrics column, min, max) for the exact measures."""
    return [
        ("raw_required_not_null", "raw_required_nulls", 0, 0),
        ("raw_allowed_labels", "raw_bad_labels", 0, 0),
        ("raw_timestamps_in_range", "raw_future_events", 0, 0),
        ("raw_duplicate_rate", "duplicate_rate", 0, cfg.max_duplicate_rate),
        ("orphan_rate", "orphan_rate", 0, cfg.max_orphan_rate),
        ("aged_out_share", "aged_out_share", 0, cfg.max_aged_out_share),
        ("curated_required_not_null", "curated_required_nulls", 0, 0),
        ("curated_lengths", "curated_bad_lengths", 0, 0),
        ("class_ratio", "train_desirable_share", cfg.min_desirable_share, cfg.max_desirable_share),
        ("both_classes_in_train", "train_classes", 2, 2),
        ("min_train_rows", "train_rows", cfg.min_train_rows, None),
        ("eval_share", "eval_share", cfg.eval_fraction * cfg.min_eval_share_of_fraction, None),
    ]


def unknown_versions_check(
    cfg: CurationConfig, window_versions: list[tuple[str, int]], known: set[str]
) -> Check:
    """``known_model_versions``: the model_version values of the window's feedback (with their row
    counts, before any age-out by version) that are neither registry versions, past or present,
    nor served names (registry.aliases, ``flywheel register --alias``). Their rows are aged out
    by version once a champion history exists, so an unmapped served name loses its feedback."""
    name = "known_model_versions"
    expected = "every model_version a registry version or an alias (registry.aliases, register --alias)"
    if not known:
        return Check(
            name, _severity(cfg, name), True, "the registry has no versions yet: not compared", expected
        )
    unknown = [(v, n) for v, n in window_versions if v not in known]
    if not unknown:
        return Check(
            name, _severity(cfg, name), True, f"{len(window_versions)} version(s), all known", expected
        )
    rows = sum(n for _, n in unknown)
    named = ", ".join(f"{v!r} ({n} rows)" for v, n in unknown[:10])
    more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
    observed = f"{len(unknown)} unknown model_version(s) held {rows} row(s): {named}{more}"
    return Check(name, _severity(cfg, name), False, observed, expected)


def _severity(cfg: CurationConfig, check: str) -> str:
    return "critical" if check in cfg.critical_checks else "warning"


def _import_gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def preload() -> None:
    """Import GX on a thread of its own (~6 s here) while DuckDB, which releases the GIL, runs the
    chain; :func:`run_suite` then finds it imported. A failed import is left for run_suite to
    raise, where it says what went wrong."""

    def load() -> None:
        with contextlib.suppress(Exception):
            _import_gx()

    threading.Thread(target=load, name="gx-import", daemon=True).start()


def _context(docs: Path) -> Any:
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    # An ephemeral context comes with a Data Docs site in a fresh temporary folder, which every
    # checkpoint rebuilds (4-28 MiB of HTML and assets per run, never removed): only ours is kept.
    for name in list(ctx.list_data_docs_sites()):
        ctx.delete_data_docs_site(name)
    site: Any = {
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs.resolve())},
    }
    ctx.add_data_docs_site(site_name=DOCS_SITE, site_config=site)
    return ctx


def _validate(ctx: Any, name: str, frame: pd.DataFrame, expectations: list[Any]) -> Any:
    import great_expectations as gx

    asset = ctx.data_sources.add_pandas(f"{name}_source").add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe(f"{name}_all")
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}_suite"))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    checkpoint = ctx.checkpoints.add(
        gx.Checkpoint(
            name=f"{name}_checkpoint",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[DOCS_SITE])],
            result_format={"result_format": "SUMMARY"},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    return next(iter(result.run_results.values()))


def run_suite(
    cfg: CurationConfig, metrics: dict[str, float], curated: pd.DataFrame, docs: Path, window: Any
) -> list[Check]:
    """Validate, render Data Docs into ``docs``, and return one Check per check name."""
    import great_expectations as gx

    ctx = _context(docs)
    exp = gx.expectations
    rules = metric_rules(cfg)
    metric_exps = [
        exp.ExpectColumnValuesToBeBetween(
            column=col, min_value=lo, max_value=hi, meta={"check": name, "severity": _severity(cfg, name)}
        )
        for name, col, lo, hi in rules
    ]
    frame = pd.DataFrame([{col: metrics[col] for _, col, _, _ in rules}])
    results = list(_validate(ctx, "measures", frame, metric_exps).results)

    def meta(name: str) -> dict[str, str]:
        return {"check": name, "severity": _severity(cfg, name)}

    max_p, max_c = length_limits(cfg)
    row_exps = [
        *(
            exp.ExpectColumnValuesToNotBeNull(column=col, meta=meta("curated_required_not_null"))
            for col in ("label", "trace_id", "event_time", "prompt_chars", "completion_chars")
        ),
        exp.ExpectColumnValuesToBeBetween(
            column="prompt_chars",
            min_value=cfg.min_prompt_chars,
            max_value=max_p,
            meta=meta("curated_lengths"),
        ),
        exp.ExpectColumnValuesToBeBetween(
            column="completion_chars",
            min_value=cfg.min_completion_chars,
            max_value=max_c,
            meta=meta("curated_lengths"),
        ),
        exp.ExpectColumnValuesToBeInSet(
            column="source",
            value_set=list(SOURCES),
            meta=meta("curated_required_not_null"),
        ),
        exp.ExpectColumnValuesToBeBetween(
            column="event_time",
            min_value=_naive_utc(window.cutoff),
            max_value=_naive_utc(window.as_of),
            meta=meta("raw_timestamps_in_range"),
        ),
    ]
    frame = curated.copy()
    # GX compares timestamps as naive values; the lake's are UTC, so drop the zone, not the time.
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True).dt.tz_localize(None)
    results += list(_validate(ctx, "curated_rows", frame, row_exps).results)
    return _summarise(results, metrics, {name: (col, lo, hi) for name, col, lo, hi in rules}, cfg)


def _naive_utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def _summarise(
    results: list[Any], metrics: dict[str, float], rules: dict[str, Any], cfg: CurationConfig
) -> list[Check]:
    """Fold the expectation results into one Check per check name, with a readable reason."""
    failures: dict[str, list[str]] = {}
    seen: list[str] = []
    for r in results:
        name = r.expectation_config.meta["check"]
        if name not in seen:
            seen.append(name)
        if r.success:
            continue
        kwargs = r.expectation_config.kwargs
        column = kwargs.get("column")
        if name in rules and column == rules[name][0]:
            # The expected range is reported once, by Check.reason.
            failures.setdefault(name, []).append(f"{column} = {metrics[column]:g}")
        else:
            stats = r.result or {}
            bad = stats.get("unexpected_count", "?")
            sample = stats.get("partial_unexpected_list", [])[:3]
            failures.setdefault(name, []).append(
                f"{bad} curated row(s) fail {r.expectation_config.type} on {column} (e.g. {sample})"
            )
    checks = []
    for name in seen:
        ok = name not in failures
        expected = _bounds(*rules[name][1:]) if name in rules else "every row within the limits"
        observed = "; ".join(failures.get(name, [])) or (
            f"{rules[name][0]} = {metrics[rules[name][0]]:g}" if name in rules else "all rows pass"
        )
        checks.append(Check(name, _severity(cfg, name), ok, observed, expected))
    return checks
