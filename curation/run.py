"""`flywheel curate`: raw lake -> checked, immutable KTO snapshot.

Steps: resolve the window from --as-of; run the SQL chain (``pipeline``); derive the
snapshot id from the rows; if that snapshot exists, return it untouched; else write the
splits, the data-quality report and the manifest into a staging folder and publish it
by a rename. A failed critical check keeps the folder as ``_rejected-<id>`` and raises
:class:`~curation.errors.DataQualityError`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from core.files import atomic_write_json
from core.lake import Lake, ObjectLake, is_url, open_lake
from core.registry import Registry
from core.settings import write_resolved
from core.snapshot import MANIFEST, curated_root
from curation import pairs as pair_mining
from curation.config import CurationConfig, CurationSettings
from curation.errors import CurationError, DataQualityError
from curation.lake import has_stream
from curation.pipeline import Result, Window, connect, load_sql, run_pipeline
from curation.policy import on_policy_versions, with_aliases
from curation.snapshot import PII_KINDS, content_digest, pii_counts, publish, reject, write_splits

log = logging.getLogger(__name__)

# rows of the completion-length histogram in the summary
LENGTHS_SAMPLE = 20_000


def parse_as_of(as_of: str | dt.datetime | None) -> dt.datetime:
    """--as-of as an aware UTC datetime (now when None)."""
    if as_of is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    if isinstance(as_of, str):
        try:
            parsed = dt.datetime.fromisoformat(as_of.strip().replace("z", "Z"))
        except ValueError:
            raise CurationError(
                f"--as-of {as_of!r} is not an RFC 3339 time",
                hint="write it like 2026-05-01T02:00:00Z or 2026-05-01T04:00:00+02:00",
            ) from None
        as_of = parsed
    if as_of.tzinfo is None:
        raise CurationError(
            f"--as-of {as_of.isoformat()} has no UTC offset",
            hint="add Z or an offset such as +02:00, so the window does not depend on this machine's zone",
        )
    return as_of.astimezone(dt.UTC)


def _metrics(con: Any, cfg: CurationConfig, result: Result) -> dict[str, float]:
    from curation.quality import length_limits

    counts = result.counts
    # over the feedback that had arrived by --as-of (01_raw_profile.sql)
    arrived = result.raw.loc[result.raw["arrived"]]
    raw = {m: arrived[m].sum() for m in ("required_nulls", "bad_labels", "future_events")}
    max_p, max_c = length_limits(cfg)
    limits = {"min_prompt": cfg.min_prompt_chars, "max_prompt": max_p}
    limits |= {"min_completion": cfg.min_completion_chars, "max_completion": max_c}
    cur = con.execute(load_sql("q_curated_profile"), limits).df().iloc[0].to_dict()
    judged = counts["after_age_date"] - counts["pending"]
    kept = counts["train"] + counts["eval"]
    seen = counts["after_latest_action"] + counts["aged_out_by_date_folders"]
    return {
        "raw_required_nulls": float(raw["required_nulls"]),
        "raw_bad_labels": float(raw["bad_labels"]),
        "raw_future_events": float(raw["future_events"]),
        "duplicate_rate": counts["duplicates"] / counts["read"] if counts["read"] else 0.0,
        "orphan_rate": counts["orphaned"] / judged if judged else 0.0,
        "aged_out_share": (
            counts["aged_out_by_date"] + counts["aged_out_by_date_folders"] + counts["aged_out_by_version"]
        )
        / seen
        if seen
        else 0.0,
        "curated_required_nulls": float(cur["curated_required_nulls"] or 0),
        "train_desirable_share": float(cur["train_desirable_share"] or 0),
        "train_classes": float(cur["train_classes"] or 0),
        "train_rows": float(cur["train_rows"] or 0),
        "curated_bad_lengths": float(cur["curated_bad_lengths"] or 0),
        "eval_share": counts["eval"] / kept if kept else 0.0,
    }


def _at(ts: str) -> dt.datetime:
    """A registry history time (RFC 3339, UTC) as an aware datetime."""
    parsed = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def run(config: CurationSettings, as_of: str | dt.datetime | None = None) -> Path:
    """Build (or find) the snapshot for ``as_of``; returns its folder. Prints nothing."""
    cfg = config.curation
    if is_url(config.paths.lake):
        raise CurationError(
            f"paths.lake = {config.paths.lake!r}: snapshots, tombstones and the spill are written under "
            "paths.lake, which must be a local folder",
            hint=f"keep the raw lake there with paths.raw_lake = {config.paths.lake!r} (or "
            "FLYWHEEL_PATHS__RAW_LAKE) and set paths.lake (--lake) to a local folder",
        )
    lake = Path(config.paths.lake)
    raw = open_lake(config.paths.raw_lake or config.paths.lake)
    if not has_stream(raw, "feedback"):
        raise CurationError(
            f"no raw feedback under {_where(raw, 'feedback')}",
            hint="run `flywheel ingest` first, or point --lake (paths.raw_lake) at the lake it writes",
        )
    window = Window.build(parse_as_of(as_of), cfg)
    log.info(
        "curate: reading feedback from %s to %s",
        window.cutoff.isoformat(),
        window.as_of.isoformat(),
        extra={"step": "read"},
    )
    # Great Expectations (4-12 s to import on 2 cores) is not imported by the round: the checks are
    # decided in Python, and GX renders its Data Docs after the snapshot is written (curation.docs).
    # The champions of the snapshot's own time: a backfill (--as-of) ages out by the history as it
    # was then, not by promotions made since.
    registry = Registry(config.paths.registry)
    full_history = registry.history()
    history = [e for e in full_history if _at(e.ts) <= window.as_of]
    versions, version_note = on_policy_versions(history, cfg.keep_last_champions)
    # Traces carry the name the app serves: its alias counts as the version it stands for.
    aliases = registry.aliases(config.registry.aliases)
    # what a model_version may name (the check known_model_versions): versions, past or present, and aliases
    known = {*registry.versions(), *(e.version for e in full_history), *aliases}
    versions = with_aliases(versions, aliases)
    if versions and aliases:
        version_note += f"; served names kept with them: {', '.join(v for v in versions if v in aliases)}"
    root = curated_root(lake)
    root.mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix=".spill-", dir=root))
    try:
        con = connect(cfg, spill)
        try:
            return _build(config, con, lake, raw, root, window, versions, version_note, known)
        finally:
            con.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _where(raw: Lake, stream: str) -> str:
    return f"{raw}/raw/{stream}" if isinstance(raw, ObjectLake) else str(raw / "raw" / stream)


def _build(
    config: CurationSettings,
    con: Any,
    lake: Path,
    raw: Lake,
    root: Path,
    window: Window,
    versions: Any,
    version_note: str,
    known: set[str],
) -> Path:
    cfg = config.curation
    result = run_pipeline(con, lake, cfg, window, versions, raw_lake=raw)
    counts = result.counts
    if counts["read"] + counts["aged_out_by_date_folders"] == 0:
        raise CurationError(
            f"no raw feedback in {_where(raw, 'feedback')} up to {window.as_of.isoformat()}",
            hint="check --as-of, or run `flywheel ingest` until feedback has landed",
        )
    log.info(
        "curate: %d actions read, %d rows kept (train %d, eval %d)",
        counts["read"],
        counts["train"] + counts["eval"],
        counts["train"],
        counts["eval"],
        extra={"step": "pipeline"},
    )
    trained = result.class_counts["train"]
    weights = {
        "desirable_weight": result.balance.desirable_weight,
        "undesirable_weight": result.balance.undesirable_weight,
    }
    snapshot_id, basis = content_digest(
        con, weights, cfg.redact_pii, cfg.pii_phone_regions, pairs=pair_mining.digest_basis(cfg)
    )
    final = root / snapshot_id
    if (final / MANIFEST).is_file():
        log.info("curate: snapshot %s exists (the same rows)", snapshot_id, extra={"step": "done"})
        return final  # immutable: the same rows were curated before
    log.info("curate: writing snapshot %s", snapshot_id, extra={"step": "write"})

    staging = Path(tempfile.mkdtemp(prefix=f".staging-{snapshot_id}-", dir=root))
    try:
        hashes = write_splits(con, staging, result.params, cfg.snapshot_compression)
        # preference pairs from the rows just written (curation.pairs)
        pair_block, pair_hashes = pair_mining.write_pairs(con, staging, cfg)
        hashes.update(pair_hashes)
        counts.update(pair_mining.counts(pair_block))
        counts.update(pii_counts(con))
        log.info("curate: data-quality checks", extra={"step": "quality"})
        checks = _report(config, con, staging, snapshot_id, result, window, [version_note], known)
        for c in checks:
            if not c.success:
                log.warning("curate: check %s failed (%s): %s", c.name, c.severity, c.why())
        manifest = {
            "snapshot_id": snapshot_id,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "as_of": window.as_of.isoformat(),
            "window": {
                "aged_out_before": window.cutoff.isoformat(),
                "orphaned_before": window.grace_cutoff.isoformat(),
            },
            "inputs": {
                "lake": str(lake.resolve()),
                **(
                    {"raw_lake": str(raw if isinstance(raw, ObjectLake) else raw.resolve())}
                    if raw != lake
                    else {}
                ),
                **result.inputs,
            },
            "config": dataclasses.asdict(cfg),
            "counts": counts,
            "class_counts": result.class_counts,
            "kto": weights,
            "kto_ratio": round(result.balance.ratio(trained["desirable"], trained["undesirable"]), 6)
            if trained["undesirable"]
            else None,
            "balance": cfg.balance,
            "model_versions": {"kept": versions, "note": version_note},
            "redaction": redaction_summary(cfg, counts),
            "pairs": pair_block,
            "hashes": {"files": hashes, "content": basis},
            "quality": [dataclasses.asdict(c) for c in checks],
        }
        write_resolved(config, staging / "config.toml")
        atomic_write_json(staging / MANIFEST, manifest)
        critical = [(c.name, c.why()) for c in checks if not c.success and c.severity == "critical"]
        if critical:
            kept = reject(staging, snapshot_id)
            _docs(cfg, kept)
            raise DataQualityError(critical, report=str(kept / "quality" / "summary.html"))
        published = publish(staging, final)
        log.info("curate: published %s", published, extra={"step": "done"})
        _docs(cfg, published)
        return published
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def redaction_summary(cfg: CurationConfig, counts: dict[str, int]) -> dict[str, Any]:
    """The manifest's redaction block: whether it ran, how numbers were told apart, and the rows
    in which each kind was replaced (also in `counts` as `pii_<kind>`)."""
    import phonenumbers

    return {
        "enabled": bool(cfg.redact_pii),
        "phone_regions": list(cfg.pii_phone_regions),
        "phonenumbers": phonenumbers.__version__,
        "rows": {kind: counts.get(f"pii_{kind}", 0) for kind in PII_KINDS},
        "rows_any": counts.get("pii_any", 0),
    }


def _report(
    config: CurationSettings,
    con: Any,
    folder: Path,
    snapshot_id: str,
    result: Result,
    window: Window,
    notes: list[str],
    known: set[str],
) -> list[Any]:
    """Decide the data-quality checks (in Python: no Great Expectations on this path), write GX's
    inputs and the summary page; the Data Docs follow (``curation.docs``, see :func:`_docs`)."""
    from curation import docs, quality, summary

    cfg = config.curation
    metrics = _metrics(con, cfg, result)
    curated = con.execute(load_sql("q_curated_frame"), {"limit": quality.FRAME_LIMIT}).df()
    data = quality.frames(cfg, metrics, curated)
    checks = docs.prepare(folder, quality.expectations(cfg, window), data, metrics)
    checks.append(quality.unknown_versions_check(cfg, result.window_versions, known))
    read = result.raw.loc[result.raw["known_then"]]
    daily = read.groupby(["day", "day_label"], as_index=False)["events"].sum()
    page = summary.render(
        snapshot_id,
        result.counts,
        checks,
        daily.rename(columns={"day_label": "label"}),
        con.execute(load_sql("q_by_version")).df(),
        # the frame is a stable subset in a stable order: its head is a smaller one
        curated.head(LENGTHS_SAMPLE)[["label", "completion_chars"]],
        notes,
        docs=_docs_pending(cfg.data_docs),
    )
    (folder / "quality" / "summary.html").write_text(page, encoding="utf-8")
    return checks


def _docs_pending(mode: str) -> str:
    """The summary's Data Docs line as the snapshot is written (before :func:`_docs` runs)."""
    if mode == "off":
        return "off: curation.data_docs = off; `flywheel report SNAPSHOT` renders them"
    return "queued: they are rendered once the snapshot is written"


def _docs(cfg: CurationConfig, folder: Path) -> None:
    """Render the Data Docs of a published (or rejected) snapshot as ``curation.data_docs`` says:
    in a process of its own (after), here (inline) or not (off)."""
    from curation import docs

    if cfg.data_docs == "after":
        docs.launch(folder)
        docs.log.info("curate: Data Docs rendering in the background (%s)", folder / "quality" / docs.STATUS)
    elif cfg.data_docs == "inline":
        line = docs.render(folder)
        (docs.log.info if line.startswith("done") else docs.log.warning)("curate: Data Docs %s", line)
    else:
        docs.set_status(folder, _docs_pending("off"))
