"""`flywheel gc`: what a month of nightly rounds leaves behind, removed.

Three kinds of leftovers, each removed only when nothing can need it:

- **Registry versions**: all but the newest ``registry.keep_last`` (``--keep N``), except the
  champion and every version that ever was champion (rollback and the gate's lineage need them).
  Each removal goes through ``Registry.remove`` and is a ``gc`` event in the history.
- **Training checkpoints**: ``<training.work_dir>/<version>/`` of every run whose candidate was
  registered (its checkpoints only served to resume it). A run still in progress, or one that
  crashed before registering, keeps its folder: the next run resumes from it.
- **Great Expectations temporary Data Docs**: ``tmp*`` folders in the temporary directory holding
  GX's Data Docs assets, older than an hour, owned by this user (curations before this release left
  one per run; curation no longer writes them).

``nightly.gc = true`` runs it at the end of every round that did not fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.registry import Registry, RegistryError

if TYPE_CHECKING:
    from flywheel.config import Config

log = logging.getLogger("flywheel.gc")

# A temporary Data Docs folder younger than this may belong to a curation still running.
TMP_MIN_AGE_S = 3600.0
# The file that marks a folder as a GX Data Docs site (its static assets).
GX_MARKER = Path("static") / "styles" / "data_docs_default_styles.css"


@dataclasses.dataclass
class GcReport:
    """What one collection removed (or, with ``dry_run``, would remove)."""

    dry_run: bool = False
    kept: list[str] = dataclasses.field(default_factory=list)
    versions: list[str] = dataclasses.field(default_factory=list)
    checkpoints: list[str] = dataclasses.field(default_factory=list)
    temp_folders: list[str] = dataclasses.field(default_factory=list)
    bytes_freed: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"{verb} {len(self.versions)} version(s), {len(self.checkpoints)} checkpoint folder(s), "
            f"{len(self.temp_folders)} temporary folder(s): {self.bytes_freed / 2**20:.1f} MiB; "
            f"kept {len(self.kept)} version(s)"
        )


def _size(path: Path) -> int:
    total = 0
    for current, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(current, name)).st_size
    return total


def versions_to_keep(registry: Registry, keep_last: int) -> tuple[list[str], list[str]]:
    """(kept, removable) versions: the newest ``keep_last`` (0 = all), the champion and every
    version that ever was champion are kept."""
    versions = registry.versions()  # oldest first
    protected = registry.ever_champions()
    champion = registry.champion()
    if champion:
        protected.add(champion)
    newest = set(versions[-keep_last:]) if keep_last > 0 else set(versions)
    kept = [v for v in versions if v in newest or v in protected]
    return kept, [v for v in versions if v not in kept]


def finished_checkpoints(config: Config, registry: Registry) -> list[Path]:
    """Training work folders of runs whose candidate was registered."""
    work_root = Path(config.training.work_dir or Path(config.paths.runs) / "training")
    if not work_root.is_dir():
        return []
    registered = {e.version for e in registry.history() if e.action == "register"}
    registered |= set(registry.versions())
    return sorted(
        p for p in work_root.iterdir() if p.is_dir() and not p.is_symlink() and p.name in registered
    )


def gx_temp_folders(
    temp_dir: str | os.PathLike[str] | None = None, min_age_s: float = TMP_MIN_AGE_S
) -> list[Path]:
    """GX Data Docs folders (``tmp*`` with GX's static assets) in the temporary directory that are
    older than ``min_age_s`` and owned by this user."""
    root = Path(temp_dir or tempfile.gettempdir())
    now = time.time()
    found = []
    for p in sorted(root.glob("tmp*")):
        try:
            st = p.lstat()
        except OSError:
            continue
        if (
            p.is_dir()
            and not p.is_symlink()
            and st.st_uid == os.getuid()
            and now - st.st_mtime >= min_age_s
            and (p / GX_MARKER).is_file()
        ):
            found.append(p)
    return found


def collect(
    config: Config,
    keep_last: int | None = None,
    dry_run: bool = False,
    temp_dir: str | os.PathLike[str] | None = None,
) -> GcReport:
    """Remove what nothing needs any more (see the module's doc); returns what was removed."""
    keep = config.registry.keep_last if keep_last is None else keep_last
    if keep < 0:
        raise RegistryError(
            f"keep_last must be >= 0 (0 keeps every version), got {keep}", hint="e.g. --keep 5"
        )
    registry = Registry.from_config(config)
    report = GcReport(dry_run=dry_run)
    if registry.root.is_dir():
        kept, removable = versions_to_keep(registry, keep)
        report.kept = kept
        for version in removable:
            try:
                if dry_run:
                    report.bytes_freed += _size(registry.models / version)
                else:
                    report.bytes_freed += registry.remove(version, reason=f"gc: keeping the last {keep}")
                report.versions.append(version)
            except RegistryError as exc:
                report.errors.append(exc.message)
        for folder in finished_checkpoints(config, registry):
            report.bytes_freed += _remove(folder, dry_run, report)
            report.checkpoints.append(str(folder))
    for folder in gx_temp_folders(temp_dir):
        report.bytes_freed += _remove(folder, dry_run, report)
        report.temp_folders.append(str(folder))
    log.info("gc: %s", report.summary())
    for error in report.errors:
        log.warning("gc: %s", error)
    return report


def _remove(folder: Path, dry_run: bool, report: GcReport) -> int:
    size = _size(folder)
    if not dry_run:
        shutil.rmtree(folder, onerror=lambda f, p, e: report.errors.append(f"{p}: {e[1]}"))
    return size
