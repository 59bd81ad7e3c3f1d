"""The data-quality checks: one list of expectations, decided here in Python, rendered by Great
Expectations 1.x as Data Docs (``curation.docs``).

Exact measures (null counts, rates, shares) are computed by DuckDB over every row and checked
as a one-row frame; the curated rows are checked row by row (all of them up to ``FRAME_LIMIT``).
:func:`expectations` is the one list of what is checked: each item names GX's expectation, its
column and bounds, and carries its check name and severity. :func:`evaluate` decides them with
pandas, as GX's column-map expectations do (nulls are skipped by ``between`` and ``in_set``,
bounds are inclusive), so the round does not import GX (4-12 s on 2 cores); ``curation.docs``
builds the GX suite from the same list and the same inputs and confirms GX reaches the same
verdicts. A failed ``critical`` check stops the round (see ``curation.run``), a failed
``warning`` is only reported.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
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
# The two frames checked, in this order: the one-row measures and the curated rows.
FRAMES = ("measures", "curated_rows")
BETWEEN = "expect_column_values_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
IN_SET = "expect_column_values_to_be_in_set"


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    severity: str  # critical | warning
    success: bool
    observed: str
    expected: str

    def why(self) -> str:
        return f"observed {self.observed}, expected {self.expected}"


@dataclasses.dataclass(frozen=True)
class Expectation:
    """One expectation of the suite: GX's type, the frame and column it reads, its bounds or set,
    and the check it belongs to (several expectations may make one check)."""

    frame: str  # measures | curated_rows
    type: str  # BETWEEN | NOT_NULL | IN_SET
    column: str
    check: str
    severity: str
    min_value: Any = None
    max_value: Any = None
    value_set: tuple[str, ...] | None = None

    def kwargs(self) -> dict[str, Any]:
        """GX's keyword arguments (``column`` and the bounds or the set)."""
        out: dict[str, Any] = {"column": self.column}
        if self.type == BETWEEN:
            out |= {"min_value": self.min_value, "max_value": self.max_value}
        elif self.type == IN_SET:
            out["value_set"] = list(self.value_set or ())
        return out

    def meta(self) -> dict[str, str]:
        return {"check": self.check, "severity": self.severity}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One expectation's result: GX's ``success``, ``unexpected_count`` and the first unexpected
    values (what GX's SUMMARY result format calls ``partial_unexpected_list``)."""

    expectation: Expectation
    success: bool
    unexpected_count: int
    sample: list[Any]


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


def _naive_utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def expectations(cfg: CurationConfig, window: Any) -> list[Expectation]:
    """The suite: the exact measures' bounds, then the curated rows' (``window`` gives the event
    times' range: ``cutoff`` and ``as_of``)."""
    out = [
        Expectation("measures", BETWEEN, col, name, _severity(cfg, name), lo, hi)
        for name, col, lo, hi in metric_rules(cfg)
    ]

    def row(kind: str, column: str, check: str, **bounds: Any) -> Expectation:
        return Expectation("curated_rows", kind, column, check, _severity(cfg, check), **bounds)

    max_p, max_c = length_limits(cfg)
    out += [
        *(
            row(NOT_NULL, col, "curated_required_not_null")
            for col in ("label", "trace_id", "event_time", "prompt_chars", "completion_chars")
        ),
        row(BETWEEN, "prompt_chars", "curated_lengths", min_value=cfg.min_prompt_chars, max_value=max_p),
        row(
            BETWEEN,
            "completion_chars",
            "curated_lengths",
            min_value=cfg.min_completion_chars,
            max_value=max_c,
        ),
        row(IN_SET, "source", "curated_required_not_null", value_set=tuple(SOURCES)),
        # GX compares timestamps as naive values; the lake's are UTC (see :func:`frames`)
        row(
            BETWEEN,
            "event_time",
            "raw_timestamps_in_range",
            min_value=_naive_utc(window.cutoff),
            max_value=_naive_utc(window.as_of),
        ),
    ]
    return out


def frames(cfg: CurationConfig, metrics: dict[str, float], curated: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The two frames the suite reads: the measures as one row, the curated rows with naive UTC
    event times (GX compares timestamps without their zone)."""
    measures = pd.DataFrame([{col: metrics[col] for _, col, _, _ in metric_rules(cfg)}])
    rows = curated.copy()
    rows["event_time"] = pd.to_datetime(rows["event_time"], utc=True).dt.tz_localize(None)
    return {"measures": measures, "curated_rows": rows}


def decide(e: Expectation, frame: pd.DataFrame) -> Outcome:
    """One expectation over its frame, as GX's column-map expectations decide it: nulls fail
    ``not_null`` and are skipped by ``between`` and ``in_set``; bounds are inclusive."""
    values = frame[e.column]
    null = values.isna()
    if e.type == NOT_NULL:
        bad = null
    elif e.type == IN_SET:
        bad = ~null & ~values.isin(list(e.value_set or ()))
    elif e.type == BETWEEN:
        bad = pd.Series(False, index=values.index)
        if e.min_value is not None:
            bad |= ~null & (values < e.min_value)
        if e.max_value is not None:
            bad |= ~null & (values > e.max_value)
    else:
        raise ValueError(f"no Python evaluation of {e.type} (add one beside its GX name in curation.quality)")
    sample = values[bad].head(3).tolist()  # as GX lists them (Timestamp, float, str)
    count = int(bad.sum())
    return Outcome(e, count == 0, count, sample)


def evaluate(
    suite: list[Expectation], data: dict[str, pd.DataFrame], metrics: dict[str, float]
) -> list[Check]:
    """Decide the suite with pandas: one Check per check name, in the suite's order."""
    return summarise([decide(e, data[e.frame]) for e in suite], metrics)


def summarise(outcomes: list[Outcome], metrics: dict[str, float]) -> list[Check]:
    """Fold the expectations' outcomes (decided here or by GX) into one Check per check name,
    with a readable reason."""
    rules = {
        o.expectation.check: (o.expectation.column, o.expectation.min_value, o.expectation.max_value)
        for o in outcomes
        if o.expectation.frame == "measures"
    }
    severity = {o.expectation.check: o.expectation.severity for o in outcomes}
    failures: dict[str, list[str]] = {}
    seen: list[str] = []
    for o in outcomes:
        e = o.expectation
        if e.check not in seen:
            seen.append(e.check)
        if o.success:
            continue
        if e.frame == "measures":
            # The expected range is reported once, by Check.why.
            failures.setdefault(e.check, []).append(f"{e.column} = {metrics[e.column]:g}")
        else:
            failures.setdefault(e.check, []).append(
                f"{o.unexpected_count} curated row(s) fail {e.type} on {e.column} (e.g. {o.sample})"
            )
    checks = []
    for name in seen:
        ok = name not in failures
        expected = _bounds(*rules[name][1:]) if name in rules else "every row within the limits"
        observed = "; ".join(failures.get(name, [])) or (
            f"{rules[name][0]} = {metrics[rules[name][0]]:g}" if name in rules else "all rows pass"
        )
        checks.append(Check(name, severity[name], ok, observed, expected))
    return checks


# ---------------------------------------------------------------------------
# Great Expectations: the same suite, run by GX, with Data Docs (``curation.docs`` calls these)


def import_gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def _context(docs: Path) -> Any:
    gx = import_gx()
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


def _gx_expectation(gx: Any, e: Expectation) -> Any:
    kinds = {
        BETWEEN: gx.expectations.ExpectColumnValuesToBeBetween,
        NOT_NULL: gx.expectations.ExpectColumnValuesToNotBeNull,
        IN_SET: gx.expectations.ExpectColumnValuesToBeInSet,
    }
    return kinds[e.type](**e.kwargs(), meta=e.meta())


def _validate(ctx: Any, name: str, frame: pd.DataFrame, suite: list[Any]) -> Any:
    gx = import_gx()
    asset = ctx.data_sources.add_pandas(f"{name}_source").add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe(f"{name}_all")
    gx_suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}_suite"))
    for expectation in suite:
        gx_suite.add_expectation(expectation)
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=gx_suite)
    )
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


def run_gx(suite: list[Expectation], data: dict[str, pd.DataFrame], docs: Path) -> list[Outcome]:
    """Run the suite with Great Expectations, render its Data Docs into ``docs``, and return each
    expectation's outcome as GX decided it (matched to the suite by frame and position)."""
    gx = import_gx()
    ctx = _context(docs)
    outcomes = []
    for name in FRAMES:
        part = [e for e in suite if e.frame == name]
        if not part:
            continue
        results = list(_validate(ctx, name, data[name], [_gx_expectation(gx, e) for e in part]).results)
        by_key = {
            _key(r.expectation_config.type, r.expectation_config.kwargs, r.expectation_config.meta): r
            for r in results
        }
        if len(by_key) != len(part):
            raise ValueError(f"GX returned {len(results)} results for the {len(part)} {name} expectations")
        for e in part:
            r = by_key[_key(e.type, e.kwargs(), e.meta())]
            stats = r.result or {}
            outcomes.append(
                Outcome(
                    e,
                    bool(r.success),
                    int(stats.get("unexpected_count") or 0),
                    list(stats.get("partial_unexpected_list") or [])[:3],
                )
            )
    return outcomes


def _key(kind: str, kwargs: Any, meta: Any) -> tuple[str, str, str]:
    return (kind, str(kwargs.get("column")), str((meta or {}).get("check")))
