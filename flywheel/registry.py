"""The model registry: versions on disk, an atomic champion pointer, an append-only history.

Layout under ``paths.registry``::

    models/<version>/          weights (safetensors), tokenizer, model card, config, metrics
    models/<version>/MANIFEST.json   sha256 and size of every file, written last
    champion                   the champion's version name, replaced atomically (write + fsync + rename)
    history.jsonl              one JSON object per event: register, promote, rollback, reject

A version folder is built under ``models/.staging-*`` and renamed into place only
when complete, so a crash leaves either nothing or a complete version. The
champion pointer is switched by ``os.replace``: a crash between writing a
version and switching leaves the old champion in place. Every mutation holds
an exclusive ``flock`` on ``.lock``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flywheel.errors import TerminalError
from flywheel.fsutil import fsync_dir, sha256_file

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MANIFEST = "MANIFEST.json"


class RegistryError(TerminalError):
    """A registry operation was refused; the registry is unchanged."""


@dataclasses.dataclass(frozen=True)
class HistoryEvent:
    ts: str
    action: str  # register | promote | rollback | reject
    version: str
    previous: str | None
    reason: str
    evidence: dict[str, Any]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def validate_version(version: str) -> str:
    if not VERSION_RE.match(version) or version in (".", ".."):
        raise RegistryError(
            f"invalid version name {version!r}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return version


class Registry:
    def __init__(self, root: str | os.PathLike[str], status_last: int = 10) -> None:
        self.root = Path(root)
        self.models = self.root / "models"
        self.status_last = status_last

    @classmethod
    def from_config(cls, config: Any) -> Registry:
        return cls(config.paths.registry, status_last=config.registry.status_last)

    # -- reading -----------------------------------------------------------

    def path(self, version: str) -> Path:
        validate_version(version)
        folder = self.models / version
        if not (folder / MANIFEST).is_file():
            raise RegistryError(
                f"version {version} is not in the registry at {self.root}",
                hint="`flywheel status` lists the versions",
            )
        return folder

    def versions(self) -> list[str]:
        """Complete versions, oldest first (by the time their manifest was written)."""
        if not self.models.is_dir():
            return []
        found = [p for p in self.models.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()]

        def created(p: Path) -> str:
            try:
                return str(json.loads((p / MANIFEST).read_text(encoding="utf-8")).get("created", ""))
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                return ""  # a damaged manifest sorts first; verify() reports it

        found.sort(key=lambda p: (created(p), p.name))
        return [p.name for p in found]

    def champion(self) -> str | None:
        pointer = self.root / "champion"
        if not pointer.is_file():
            return None
        name = pointer.read_text(encoding="utf-8").strip()
        return name or None

    def champion_path(self) -> Path:
        version = self.champion()
        if version is None:
            raise RegistryError(
                f"the registry at {self.root} has no champion",
                hint="`flywheel register PATH --champion` adds your base or SFT model as the first champion",
            )
        return self.path(version)

    def manifest(self, version: str) -> dict[str, Any]:
        path = self.path(version) / MANIFEST
        try:
            result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(
                f"{path} is not valid JSON: {exc}", hint="re-train or re-register the version"
            ) from None
        if not isinstance(result, dict) or not isinstance(result.get("files"), dict):
            raise RegistryError(f"{path} has no file list", hint="re-train or re-register the version")
        return result

    def verify(self, version: str) -> list[str]:
        """Problems with a version's files: missing, resized or altered since it was written."""
        folder = self.path(version)
        try:
            files = self.manifest(version)["files"]
        except RegistryError as exc:
            return [exc.message]
        problems = []
        for rel, meta in files.items():
            f = folder / rel
            if not f.is_file():
                problems.append(f"{rel} is missing")
            elif f.stat().st_size != meta["size"]:
                problems.append(f"{rel} has {f.stat().st_size} bytes, expected {meta['size']}")
            elif sha256_file(f) != meta["sha256"]:
                problems.append(f"{rel} fails its sha256 checksum")
        if not any(rel.endswith(".safetensors") for rel in files):
            problems.append("no safetensors weights")
        return problems

    def history(self) -> list[HistoryEvent]:
        log = self.root / "history.jsonl"
        if not log.is_file():
            return []
        events = []
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(HistoryEvent(**json.loads(line)))
        return events

    # -- writing -----------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append(
        self, action: str, version: str, previous: str | None, reason: str, evidence: dict[str, Any]
    ) -> None:
        event = HistoryEvent(_now(), action, version, previous, reason, evidence)
        with (self.root / "history.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps(dataclasses.asdict(event), sort_keys=True, default=str) + "\n")
            log.flush()
            os.fsync(log.fileno())

    def _sweep_staging(self) -> None:
        """Remove staging folders left by processes that died (killed mid-write); never a live one."""
        for folder in self.models.glob(".staging-*"):
            pid = folder.name.rsplit("-", 1)[-1]
            if not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(folder, ignore_errors=True)
            except PermissionError:
                pass  # alive, owned by another user

    @contextlib.contextmanager
    def stage(self, version: str, metadata: dict[str, Any] | None = None) -> Iterator[Path]:
        """Build a new version in a staging folder; it appears under models/ only when complete.

        Usage::

            with registry.stage("v2") as folder:
                model.save_pretrained(folder)
        """
        validate_version(version)
        if (self.models / version).exists():
            raise RegistryError(f"version {version} already exists", hint="pick another version name")
        self.models.mkdir(parents=True, exist_ok=True)
        self._sweep_staging()
        staging = self.models / f".staging-{version}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            yield staging
            files = {}
            for f in sorted(p for p in staging.rglob("*") if p.is_file()):
                rel = f.relative_to(staging).as_posix()
                files[rel] = {"sha256": sha256_file(f), "size": f.stat().st_size}
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
            manifest = {"version": version, "created": _now_precise(), "files": files, **(metadata or {})}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
            with self._locked():
                if (self.models / version).exists():
                    raise RegistryError(f"version {version} already exists", hint="pick another version name")
                os.rename(staging, self.models / version)
                fsync_dir(self.models)
                self._append("register", version, self.champion(), "added", metadata or {})
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def register(
        self, path: str | os.PathLike[str], champion: bool = False, version: str | None = None
    ) -> str:
        """Copy a checkpoint folder (weights, tokenizer) into the registry as a new version."""
        src = Path(path)
        if not (src / "config.json").is_file():
            raise RegistryError(
                f"{src} is not a Hugging Face model folder (no config.json)",
                hint="pass a folder written by save_pretrained() with safetensors weights and a tokenizer",
            )
        if not any(src.glob("*.safetensors")):
            raise RegistryError(
                f"{src} has no safetensors weights",
                hint="re-save it with model.save_pretrained(path, safe_serialization=True)",
            )
        if version is None:
            digest = hashlib.sha256()
            for f in sorted(src.glob("*.safetensors")):
                digest.update(sha256_file(f).encode())
            version = f"base-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{digest.hexdigest()[:8]}"
        with self.stage(version, {"source": str(src.resolve()), "kind": "registered"}) as folder:
            for f in src.iterdir():
                if f.is_file():
                    shutil.copy2(f, folder / f.name)
        if champion:
            self.promote(version, reason=f"registered from {src} as champion")
        return version

    def _switch(self, version: str) -> None:
        pointer = self.root / "champion"
        tmp = self.root / f".champion.{os.getpid()}.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            f.write(version + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, pointer)
        fsync_dir(self.root)

    def promote(self, version: str, reason: str, evidence: dict[str, Any] | None = None) -> None:
        """Make ``version`` the champion, after checking its files against their checksums.

        The order is: verify, write the new pointer to a temporary file, rename
        it over the old one, then append to the history. A crash before the
        rename leaves the old champion; the rename itself is atomic.
        """
        with self._locked():
            problems = self.verify(version)
            if problems:
                raise RegistryError(
                    f"refusing to promote {version}: " + "; ".join(problems),
                    hint="re-train or re-register the version; the champion is unchanged",
                )
            previous = self.champion()
            if previous == version:
                raise RegistryError(f"{version} is already the champion")
            self._switch(version)
            self._append("promote", version, previous, reason, evidence or {})

    def reject(self, version: str, reason: str, evidence: dict[str, Any] | None = None) -> None:
        """Record that the gate rejected ``version``; the champion is unchanged."""
        validate_version(version)
        with self._locked():
            self._append("reject", version, self.champion(), reason, evidence or {})

    def lineage(self) -> list[str]:
        """The stack of champions implied by the history: promote pushes, rollback pops."""
        stack: list[str] = []
        for event in self.history():
            if event.action == "promote":
                stack.append(event.version)
            elif event.action == "rollback" and stack:
                stack.pop()
        return stack

    def rollback(self, reason: str) -> str:
        """Return to the champion before the current one; returns it."""
        with self._locked():
            stack = self.lineage()
            current = self.champion()
            if len(stack) < 2 or stack[-1] != current:
                raise RegistryError(
                    f"no earlier champion to roll back to (champion: {current})",
                    hint="`flywheel promote VERSION` names any version explicitly",
                )
            target = stack[-2]
            problems = self.verify(target)
            if problems:
                raise RegistryError(f"refusing to roll back to {target}: " + "; ".join(problems))
            self._switch(target)
            self._append("rollback", target, current, reason, {})
            return target

    def last_decisions(self) -> dict[str, HistoryEvent]:
        """The latest promote, reject or rollback event naming each version."""
        latest: dict[str, HistoryEvent] = {}
        for event in self.history():
            if event.action in ("promote", "reject", "rollback"):
                latest[event.version] = event
        return latest

    def status_text(self, last: int | None = None) -> str:
        """The champion, every other version with its kind and latest decision, and the last events."""
        champion = self.champion()
        decided = self.last_decisions()
        lines = [f"registry: {self.root}", f"champion: {champion or '(none)'}"]
        versions = self.versions()
        others = [v for v in versions if v != champion]
        lines.append("candidates:" if others else "candidates: (none)")
        for v in others:
            try:
                kind = str(self.manifest(v).get("kind", "?"))
            except RegistryError:
                kind = "damaged"
            event = decided.get(v)
            state = (
                "pending"
                if event is None
                else {"promote": "promoted", "reject": "rejected"}.get(event.action, "rolled back to")
            )
            if event is not None and event.action == "promote":
                state = "former champion"
            lines.append(f"  {v}  [{kind}] {state}" + (f" ({event.reason})" if event else ""))
        events = self.history()[-(last or self.status_last) :]
        if events:
            lines.append("last decisions:")
            for e in events:
                lines.append(f"  {e.ts} {e.action:<8} {e.version}  ({e.reason})")
        return "\n".join(lines)


def _now_precise() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1_000_000:06d}Z"
