"""The model registry: versions on disk, an atomic champion pointer, an append-only history.

Layout under ``paths.registry``::

    models/<version>/          weights (safetensors), tokenizer, model card, config, metrics
    models/<version>/MANIFEST.json   sha256 and size of every file, written last
    champion                   the champion's version name, replaced atomically (write + fsync + rename)
    history.jsonl              one JSON object per event: register, promote, rollback, reject, gc
    serving/current            symlink to the champion's folder (relative), replaced atomically

A version holds regular files only, every one listed in its manifest: a symlink,
a special file or a file the manifest does not list makes it unloadable
(``path``) and unpromotable (``verify``). Weights are safetensors only: pickle
files (``*.bin``, ``*.pt``, ``*.pth``, ``*.pkl``, ``*.pickle``, ``*.ckpt``) can run
code when loaded, so ``register``, ``stage`` and ``verify`` refuse them.

A version folder is built under ``models/.staging-*`` and renamed into place only
when complete, so a crash leaves either nothing or a complete version. The
champion pointer is switched by ``os.replace``: a crash between writing a
version and switching leaves the old champion in place. Every mutation holds
an exclusive ``flock`` on ``.lock``.

Files are readable by every user (folders 0755, files 0644, whatever the umask): a serving pod
running as another user reads the champion. ``serving/current`` always points at the champion
(switched with it), so a server can load one fixed path. ``remove`` deletes a version (``flywheel
gc``), never the champion or a version that ever was one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from core.errors import TerminalError
from core.files import atomic_write_text, fsync_dir, sha256_file
from core.sections import PathsConfig
from core.settings import setting

# Matched with fullmatch: "$" would also match before a trailing newline ("nl\n").
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MANIFEST = "MANIFEST.json"
# Formats torch and joblib write with pickle, which runs code while it loads.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
    """The model registry."""

    status_last: int = setting(
        10, "history events `flywheel status` shows (the history itself is never trimmed)"
    )
    aliases: dict[str, str] | None = setting(  # noqa: RUF009 (None; a file's table is copied)
        None,
        "names the app serves (the model_version its traces carry) for registry versions, e.g. "
        '{"qwen-prod" = "v3"}; with those of `flywheel register --alias`, curation keeps their rows '
        "when it keeps the version",
    )

    keep_last: int = setting(
        10,
        "`flywheel gc` keeps the newest this many versions (0 = all); the champion and every former "
        "champion are always kept",
    )

    def validate(self) -> list[str]:
        problems = [
            f"aliases: {name!r} -> {version!r}: both must be non-empty, on one line"
            for name, version in (self.aliases or {}).items()
            if not name.strip() or not version.strip() or "\n" in name + version
        ]
        if self.keep_last < 0:
            problems.append(f"keep_last must be >= 0 (0 keeps every version), got {self.keep_last}")
        return problems


class RegistrySettings(Protocol):
    """The sections the registry reads: where it is (``paths.registry``) and ``[registry]``."""

    @property
    def paths(self) -> PathsConfig: ...
    @property
    def registry(self) -> RegistryConfig: ...


class RegistryError(TerminalError):
    """A registry operation was refused; the registry is unchanged."""


@dataclasses.dataclass(frozen=True)
class HistoryEvent:
    ts: str
    action: str  # register | promote | rollback | reject | gc
    version: str
    previous: str | None
    reason: str
    evidence: dict[str, Any]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def validate_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        raise RegistryError(
            f"invalid version name {version!r}",
            hint="use 1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return version


def _is_pickle(rel: str) -> bool:
    return rel.lower().endswith(PICKLE_SUFFIXES)


def _pickle_error(where: str, names: list[str]) -> RegistryError:
    return RegistryError(
        f"{where} holds pickle files, which can run code when loaded: {', '.join(names)}",
        hint="convert the weights to safetensors (load the model, then "
        "model.save_pretrained(path, safe_serialization=True)) and delete the pickle files "
        "(training_args.bin, optimizer.pt and the like are not needed to load a model)",
    )


def _scan(folder: Path) -> tuple[dict[str, int], dict[str, str]]:
    """The regular files under ``folder`` (relative POSIX path -> size, links never followed) and
    the entries that are not regular files (path -> problem). ``MANIFEST.json`` at the top is left
    out of the files."""
    files: dict[str, int] = {}
    odd: dict[str, str] = {}

    def walk(current: Path, prefix: str) -> None:
        with os.scandir(current) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_symlink():
                odd[rel] = f"{rel} is a symlink"
            elif rel == MANIFEST:
                if not entry.is_file(follow_symlinks=False):
                    odd[rel] = f"{rel} is not a regular file"
            elif entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), rel + "/")
            elif not entry.is_file(follow_symlinks=False):
                odd[rel] = f"{rel} is not a regular file"
            else:
                files[rel] = entry.stat(follow_symlinks=False).st_size

    walk(folder, "")
    return files, odd


def _index_problems(folder: Path, present: dict[str, int]) -> list[str]:
    """Sharded safetensors indexes whose weight map names anything but a safetensors file of the
    folder (transformers loads a shard by its name's suffix: any other is read with pickle)."""
    problems = []
    for rel in sorted(r for r in present if r.endswith(".safetensors.index.json")):
        try:
            weight_map = json.loads((folder / rel).read_text(encoding="utf-8")).get("weight_map")
            shards = set(weight_map.values())
        except (ValueError, AttributeError, TypeError):
            problems.append(f"{rel} has no weight_map")
            continue
        base = rel.rpartition("/")[0]
        bad = sorted(
            str(shard)
            for shard in shards
            if not (
                isinstance(shard, str)
                and shard.endswith(".safetensors")
                and (f"{base}/{shard}" if base else shard) in present
            )
        )
        if bad:
            problems.append(
                f"{rel} names shards that are not safetensors files of the version: {', '.join(bad)}"
            )
    return problems


def _sha256_nofollow(path: Path) -> str:
    """The sha256 of a regular file, refusing a symlink put in its place since it was scanned."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
        return h.hexdigest()


def _readable(folder: Path) -> None:
    """Folders 0755 and files 0644 under ``folder`` (and itself): the serving user may be another
    one, and a umask of 077 (or a library writing through tempfile) would leave 0700/0600."""
    os.chmod(folder, 0o755)
    for current, dirs, files in os.walk(folder):
        for name in dirs:
            path = os.path.join(current, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)
        for name in files:
            path = os.path.join(current, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)


def _last_line(lines: list[bytes]) -> int:
    """The index of the last line that is not blank; -1 when there is none."""
    return max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)


def _event(raw: bytes) -> HistoryEvent | None:
    """One history line as an event, or None when it is not one (torn, damaged)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
        return HistoryEvent(**obj) if isinstance(obj, dict) else None
    except (ValueError, TypeError, RecursionError):
        return None


class Registry:
    def __init__(self, root: str | os.PathLike[str], status_last: int = 10) -> None:
        self.root = Path(root)
        self.models = self.root / "models"
        self.status_last = status_last

    @classmethod
    def from_config(cls, config: RegistrySettings) -> Registry:
        return cls(config.paths.registry, status_last=config.registry.status_last)

    # -- reading -----------------------------------------------------------

    def _folder(self, version: str) -> Path:
        validate_version(version)
        folder = self.models / version
        if folder.is_symlink():
            raise RegistryError(
                f"{folder} is a symlink; a version is a folder inside the registry",
                hint="remove the link and add the model it points to with `flywheel register PATH`",
            )
        if not (folder / MANIFEST).is_file():
            raise RegistryError(
                f"version {version} is not in the registry at {self.root}",
                hint="`flywheel status` lists the versions",
            )
        return folder

    def _layout_problems(
        self, folder: Path, listed: dict[str, Any]
    ) -> tuple[dict[str, int], dict[str, str], list[str]]:
        """What is on disk and what is wrong with its shape (no checksums): links, special files,
        files the manifest does not list, pickle files."""
        present, odd = _scan(folder)
        problems = list(odd.values())
        problems += [f"{rel} is not listed in the manifest" for rel in present if rel not in listed]
        pickles = sorted(rel for rel in set(present) | set(listed) if _is_pickle(rel))
        if pickles:
            problems.append(f"pickle files, which can run code when loaded: {', '.join(pickles)}")
        problems += _index_problems(folder, present)
        return present, odd, problems

    def path(self, version: str) -> Path:
        """The folder to load ``version`` from, after a cheap check of its shape (no checksums):
        nothing but the regular files its manifest lists, no pickle files."""
        folder = self._folder(version)
        _, _, problems = self._layout_problems(folder, self.manifest(version)["files"])
        if problems:
            raise RegistryError(
                f"version {version} cannot be loaded: " + "; ".join(problems),
                hint="re-train or re-register the version (regular files, safetensors weights only)",
            )
        return folder

    def versions(self) -> list[str]:
        """Complete versions, oldest first (by the time their manifest was written)."""
        if not self.models.is_dir():
            return []
        found = [
            p
            for p in self.models.iterdir()
            if VERSION_RE.fullmatch(p.name) and not p.is_symlink() and (p / MANIFEST).is_file()
        ]

        def created(p: Path) -> str:
            try:
                return str(json.loads((p / MANIFEST).read_text(encoding="utf-8")).get("created", ""))
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                return ""  # a damaged manifest sorts first; verify() reports it

        found.sort(key=lambda p: (created(p), p.name))
        return [p.name for p in found]

    def aliases(self, configured: dict[str, str] | None = None) -> dict[str, str]:
        """Served name -> version: ``register --alias`` names (in manifests), then ``configured``
        (``registry.aliases``), which wins on a clash."""
        found: dict[str, str] = {}
        for version in self.versions():
            try:
                names = self.manifest(version).get("aliases") or []
            except RegistryError:
                continue
            found.update({str(n): version for n in names if isinstance(n, str)})
        found.update(configured or {})
        return found

    def champion(self) -> str | None:
        """The champion's version name; None when there is none. A pointer that holds no valid
        version name raises: it is reported, never guessed at."""
        pointer = self.root / "champion"
        if not pointer.is_file():
            return None
        raw = pointer.read_text(encoding="utf-8", errors="replace")
        name = raw[:-1] if raw.endswith("\n") else raw
        if not name:
            return None
        if not VERSION_RE.fullmatch(name):
            raise RegistryError(
                f"the champion pointer {pointer} holds {name!r}, not a version name",
                hint="`flywheel promote VERSION` sets it again; `flywheel status` lists the versions",
            )
        return name

    def _champion_or_none(self) -> str | None:
        """The champion for a history record; a damaged pointer (being replaced) reads as None."""
        try:
            return self.champion()
        except RegistryError as exc:
            log.warning("%s", exc.message)
            return None

    def champion_path(self) -> Path:
        version = self.champion()
        if version is None:
            raise RegistryError(
                f"the registry at {self.root} has no champion",
                hint="`flywheel register PATH --champion` adds your base or SFT model as the first champion",
            )
        return self.path(version)

    def manifest(self, version: str) -> dict[str, Any]:
        path = self._folder(version) / MANIFEST
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
        """Problems with a version's files: missing, resized or altered since it was written, any
        file its manifest does not list, symlinks, anything not a regular file, pickle files."""
        folder = self._folder(version)
        try:
            files = self.manifest(version)["files"]
        except RegistryError as exc:
            return [exc.message]
        present, odd, problems = self._layout_problems(folder, files)
        for rel, meta in sorted(files.items()):
            if rel == MANIFEST:
                continue  # an older register() listed a copied folder's own; no file checksums itself
            if not (
                isinstance(meta, dict)
                and isinstance(meta.get("sha256"), str)
                and isinstance(meta.get("size"), int)
            ):
                problems.append(f"the manifest's entry for {rel} has no sha256 and size")
            elif rel in odd:
                continue  # reported as a link or special file
            elif rel not in present:
                problems.append(f"{rel} is missing")
            elif present[rel] != meta["size"]:
                problems.append(f"{rel} has {present[rel]} bytes, expected {meta['size']}")
            else:
                try:
                    digest = _sha256_nofollow(folder / rel)
                except OSError as exc:
                    problems.append(f"{rel} cannot be read: {exc}")
                    continue
                if digest != meta["sha256"]:
                    problems.append(f"{rel} fails its sha256 checksum")
        if not any(rel.endswith(".safetensors") for rel in files):
            problems.append("no safetensors weights")
        return problems

    def history(self) -> list[HistoryEvent]:
        """The events, oldest first. A torn last line (a write cut short by a crash) is skipped with
        a warning and dropped by the next write; a damaged line before it is an error."""
        path = self.root / "history.jsonl"
        if not path.is_file():
            return []
        lines = path.read_bytes().split(b"\n")
        last = _last_line(lines)
        events = []
        for i, raw in enumerate(lines):
            if not raw.strip():
                continue
            event = _event(raw)
            if event is not None:
                events.append(event)
            elif i == last:
                log.warning(
                    "%s: ignoring a torn last line (%d bytes; a write cut short), the next write drops it",
                    path,
                    len(raw),
                )
            else:
                raise RegistryError(
                    f"{path} line {i + 1} is not a history event: {raw[:80]!r}",
                    hint="the history is append-only: restore it from a backup, or remove that line "
                    "by hand (the champion pointer does not depend on it)",
                )
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
        """Append one event (under the lock), after repairing a torn last line: a last line that
        is not an event is truncated away, a last event missing only its newline gets one."""
        event = HistoryEvent(_now(), action, version, previous, reason, evidence)
        line = json.dumps(dataclasses.asdict(event), sort_keys=True, default=str) + "\n"
        path = self.root / "history.jsonl"
        with path.open("a+b") as f:
            f.seek(0)
            data = f.read()
            lines = data.split(b"\n")
            last = _last_line(lines)
            if last >= 0 and _event(lines[last]) is None:
                start = sum(len(raw) + 1 for raw in lines[:last])
                log.warning(
                    "%s: dropping a torn last line (%d bytes) before appending", path, len(lines[last])
                )
                f.truncate(start)
            elif data and not data.endswith(b"\n"):
                f.write(b"\n")
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def _sweep_staging(self) -> None:
        """Remove staging (and removal) folders left by processes that died; never a live one."""
        for folder in [*self.models.glob(".staging-*"), *self.models.glob(".removing-*")]:
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
            present, odd = _scan(staging)
            if odd:
                raise RegistryError(
                    f"version {version} was not written: " + "; ".join(odd.values()),
                    hint="a version holds regular files only: copy the bytes instead of linking them",
                )
            pickles = [rel for rel in present if _is_pickle(rel)]
            if pickles:
                raise _pickle_error(f"version {version}", pickles)
            indexes = _index_problems(staging, present)
            if indexes:
                raise RegistryError(
                    f"version {version} was not written: " + "; ".join(indexes),
                    hint="re-save the model with model.save_pretrained(path, safe_serialization=True)",
                )
            # A MANIFEST.json the caller wrote (or copied from another registry) is replaced.
            (staging / MANIFEST).unlink(missing_ok=True)
            files = {}
            for rel in sorted(present):
                f = staging / rel
                files[rel] = {"sha256": _sha256_nofollow(f), "size": f.stat().st_size}
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
            manifest = {**(metadata or {}), "version": version, "created": _now_precise(), "files": files}
            with (staging / MANIFEST).open("x", encoding="utf-8") as fh:
                fh.write(json.dumps(manifest, indent=2, sort_keys=True))
                fh.flush()
                os.fsync(fh.fileno())
            _readable(staging)
            with self._locked():
                if (self.models / version).exists():
                    raise RegistryError(f"version {version} already exists", hint="pick another version name")
                os.rename(staging, self.models / version)
                fsync_dir(self.models)
                self._append("register", version, self._champion_or_none(), "added", metadata or {})
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def register(
        self,
        path: str | os.PathLike[str],
        champion: bool = False,
        version: str | None = None,
        aliases: tuple[str, ...] = (),
    ) -> str:
        """Copy a checkpoint folder (weights, tokenizer) into the registry as a new version.

        The files at the top of the folder are copied (a symlink's target bytes, as in the
        Hugging Face cache); a ``MANIFEST.json`` there (a model copied from another registry) is
        ignored and a fresh one written. Pickle files are refused: convert them to safetensors.
        """
        if version is not None:
            validate_version(version)
        src = Path(path)
        if not (src / "config.json").is_file():
            raise RegistryError(
                f"{src} is not a Hugging Face model folder (no config.json)",
                hint="pass a folder written by save_pretrained() with safetensors weights and a tokenizer",
            )
        pickles = sorted(f.name for f in src.iterdir() if f.is_file() and _is_pickle(f.name))
        if pickles:
            raise _pickle_error(str(src), pickles)
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
        bad = [a for a in aliases if not a.strip() or "\n" in a]
        if bad:
            raise RegistryError(f"alias {bad[0]!r} is empty or spans lines", hint="e.g. --alias qwen-prod")
        meta: dict[str, Any] = {"source": str(src.resolve()), "kind": "registered"}
        if aliases:
            meta["aliases"] = list(aliases)
        with self.stage(version, meta) as folder:
            for f in src.iterdir():
                if f.name == MANIFEST:
                    log.info("%s: ignoring its %s; the registry writes its own", src, MANIFEST)
                elif f.is_file():
                    shutil.copy2(f, folder / f.name)
        if champion:
            self.promote(version, reason=f"registered from {src} as champion")
        return version

    def _switch(self, version: str) -> None:
        pointer = self.root / "champion"
        atomic_write_text(pointer, version + "\n", chmod=0o644)
        fsync_dir(self.root)
        self._point_serving(version)

    @property
    def serving_path(self) -> Path:
        """``serving/current``: a symlink to the champion's folder that a server loads."""
        return self.root / "serving" / "current"

    def _point_serving(self, version: str) -> None:
        """Point ``serving/current`` at ``version`` (relative, so it resolves on any mount of the
        registry volume), atomically: a new link renamed over the old one."""
        serving = self.serving_path.parent
        serving.mkdir(exist_ok=True)
        os.chmod(serving, 0o755)
        tmp = serving / f".current.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(os.path.join("..", "models", version), tmp)
        os.replace(tmp, self.serving_path)
        fsync_dir(serving)

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
                    hint="re-train or re-register the version (regular files, safetensors weights only); "
                    "the champion is unchanged",
                )
            previous = self._champion_or_none()
            if previous == version:
                raise RegistryError(f"{version} is already the champion")
            self._switch(version)
            self._append("promote", version, previous, reason, evidence or {})

    def reject(self, version: str, reason: str, evidence: dict[str, Any] | None = None) -> None:
        """Record that the gate rejected ``version``; the champion is unchanged."""
        validate_version(version)
        with self._locked():
            self._append("reject", version, self._champion_or_none(), reason, evidence or {})

    def ever_champions(self, events: list[HistoryEvent] | None = None) -> set[str]:
        """Every version the history names as champion at some time (promoted or rolled back to)."""
        return {
            e.version
            for e in (self.history() if events is None else events)
            if e.action in ("promote", "rollback")
        }

    def remove(self, version: str, reason: str) -> int:
        """Delete ``version`` (``flywheel gc``); returns the bytes freed. The champion and every
        version in the champion history are refused: rollback and the gate's lineage need them.
        The folder is renamed away under the lock first, so no reader sees half a version."""
        with self._locked():
            folder = self._folder(version)
            if version == self._champion_or_none():
                raise RegistryError(f"refusing to remove {version}: it is the champion")
            if version in self.ever_champions():
                raise RegistryError(
                    f"refusing to remove {version}: it is in the champion history (rollback needs it)",
                    hint="`flywheel status` shows the history; gc keeps every version that was champion",
                )
            size = sum(
                int(meta.get("size", 0))
                for meta in self.manifest(version)["files"].values()
                if isinstance(meta, dict)
            )
            doomed = self.models / f".removing-{version}-{os.getpid()}"
            os.rename(folder, doomed)
            fsync_dir(self.models)
            self._append("gc", version, self._champion_or_none(), reason, {"bytes": size})
        shutil.rmtree(doomed, ignore_errors=True)
        return size

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
            current = self._champion_or_none()
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

    def last_decisions(self, events: list[HistoryEvent] | None = None) -> dict[str, HistoryEvent]:
        """The latest promote, reject or rollback event naming each version (of ``events``, else
        of the history)."""
        latest: dict[str, HistoryEvent] = {}
        for event in self.history() if events is None else events:
            if event.action in ("promote", "reject", "rollback"):
                latest[event.version] = event
        return latest

    def status_text(self, last: int | None = None) -> str:
        """The champion, every other version with its kind and latest decision, and the last events."""
        try:
            champion = self.champion()
            shown = champion or "(none)"
        except RegistryError as exc:
            champion, shown = None, f"(damaged pointer: {exc.message})"
        history = self.history()  # read once: a torn last line is warned about once
        decided = self.last_decisions(history)
        where = str(self.root) if self.root.is_dir() else f"{self.root} (no such folder: nothing registered)"
        lines = [f"registry: {where}", f"champion: {shown}"]
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
        events = history[-(last or self.status_last) :]
        if events:
            lines.append("last decisions:")
            for e in events:
                lines.append(f"  {e.ts} {e.action:<8} {e.version}  ({e.reason})")
        return "\n".join(lines)


def _now_precise() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1_000_000:06d}Z"
