"""Settings: typed, frozen sections; defaults < file < environment < flags.

Every section is a frozen dataclass whose fields carry a help line
(``setting(default, "help")``). A root configuration is a frozen dataclass of sections
(:class:`Settings`; the project's is ``flywheel.config.Config``), so a misspelt section or key
is a type error as well as a load error. The whole configuration is one TOML file with a table
per section::

    [paths]
    lake = "/data/lake"

    [kafka]
    bootstrap_servers = "kafka-0:9092,kafka-1:9092"

The environment overrides the file with ``FLYWHEEL_<SECTION>__<KEY>``
(``FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS=...``), and command-line flags override
both. Other ``FLYWHEEL_*`` names (no double underscore: Kubernetes service links)
are warned about and ignored. A relative path in a file (a field made with
``setting(..., path=True)``) is relative to the file's folder. Unknown sections or keys
anywhere are errors, and every problem is reported at once (:class:`~core.errors.ConfigError`).
The resolved configuration is written next to every output (:func:`write_resolved`) in the
same TOML form, so it can be fed back with ``--config``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.errors import ConfigError
from core.files import atomic_write_text

ENV_PREFIX = "FLYWHEEL_"
# Environment variables with this prefix that are not section overrides.
ENV_RESERVED = frozenset({"FLYWHEEL_CONFIG", "FLYWHEEL_LOG_LEVEL", "FLYWHEEL_LOG_FORMAT"})

log = logging.getLogger("flywheel.config")

R = TypeVar("R", bound="Settings")


def setting(default: Any, help: str, *, path: bool = False) -> Any:
    """A config field with its default and one line of help.

    ``path=True`` marks a file or folder: a relative value in a config file is relative to that
    file's folder (not to the working directory), and the resolved configuration is written with
    absolute paths, so it means the same wherever it is read from.
    """
    if isinstance(default, dict | list):
        raise TypeError("use a tuple or a MappingProxy-free default; config sections are frozen")
    return dataclasses.field(default=default, metadata={"help": help, "path": path})


class Sectioned(Protocol):
    """What :func:`to_toml` and :func:`write_resolved` need of a configuration: its sections by name.
    A stage's own protocol of the sections it reads extends this one."""

    @property
    def sections(self) -> Mapping[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of a root configuration: a frozen dataclass whose other fields are the sections."""

    # "section.key" -> where its value came from: "file <path>", "env <NAME>" or "flag"; a key
    # missing here has its default. Not part of equality: the same values are the same config.
    origins: Mapping[str, str] = dataclasses.field(
        default_factory=dict, compare=False, repr=False, kw_only=True
    )

    @property
    def sections(self) -> Mapping[str, Any]:
        return types.MappingProxyType(
            {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "origins"}
        )

    def replace(self: R, **overrides: Any) -> R:
        """A copy with ``"section.key"`` overrides (already typed) applied."""
        return load(type(self), None, env={}, overrides=overrides, base=self)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(sec) for name, sec in self.sections.items()}


def section_types(root: type[Settings]) -> dict[str, type]:
    """The root configuration's sections: name -> section class, in declaration order."""
    hints = typing.get_type_hints(root)
    return {f.name: hints[f.name] for f in dataclasses.fields(root) if f.name != "origins"}


def path_keys(root: type[Settings]) -> frozenset[tuple[str, str]]:
    """``(section, key)`` of every field made with ``setting(..., path=True)``."""
    return frozenset(
        (name, f.name)
        for name, cls in section_types(root).items()
        for f in dataclasses.fields(cls)
        if f.metadata.get("path")
    )


# ---------------------------------------------------------------------------
# Coercion


def _coerce(value: Any, tp: Any, where: str, from_text: bool) -> Any:
    """Convert ``value`` to the annotated type ``tp`` or raise ValueError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        is_null = value is None or (from_text and value in ("", "none", "None", "null"))
        if is_null and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], where, from_text)
        raise ValueError(f"{where}: unsupported union type {tp}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if from_text and isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_text and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Path):
            return str(value)
        raise ValueError(f"{where}: expected a string, got {value!r}")
    if origin is tuple:
        item_tp = args[0] if args else str
        if from_text and isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            else:
                value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, item_tp, f"{where}[{i}]", from_text) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if from_text and isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        val_tp = args[1] if len(args) == 2 else Any
        if val_tp is Any:
            return dict(value)
        return {str(k): _coerce(v, val_tp, f"{where}.{k}", from_text) for k, v in value.items()}
    if tp is Any:
        return value
    raise ValueError(f"{where}: unsupported field type {tp}")


def _section_fields(cls: type) -> dict[str, tuple[Any, dataclasses.Field[Any]]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(cls)}


# ---------------------------------------------------------------------------
# Loading


def load(
    root: type[R],
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: R | None = None,
) -> R:
    """Resolve a ``root`` configuration: defaults < ``path`` < ``env`` < ``overrides``.

    ``overrides`` maps ``"section.key"`` to a value (command-line flags).
    ``env`` defaults to ``os.environ``; pass ``{}`` to ignore it.
    """
    sections = section_types(root)
    paths = path_keys(root)
    problems: list[str] = []
    raw: dict[str, dict[str, tuple[Any, bool, str]]] = {name: {} for name in sections}

    origins: dict[str, str] = dict(base.origins) if base is not None else {}

    def put(section: str, key: str, value: Any, from_text: bool, source: str, origin: str) -> None:
        if section not in sections:
            problems.append(f"{source}: unknown section [{section}]{_did_you_mean(section, sections)}")
            return
        fields = _section_fields(sections[section])
        if key not in fields:
            problems.append(
                f"{source}: unknown key {section}.{key}"
                + _did_you_mean(key, fields, f"{section}.", f"[{section}]")
            )
            return
        raw[section][key] = (value, from_text, source)
        origins[f"{section}.{key}"] = origin

    if path is None and env is None:
        path = os.environ.get("FLYWHEEL_CONFIG") or None
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config file {file} does not exist"], source=str(file)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{file} is not valid TOML: {exc}"], source=str(file)) from None
        for section, table in data.items():
            if not isinstance(table, dict):
                problems.append(f"{file}: top-level key {section!r} must be a [table]")
                continue
            for key, value in table.items():
                # an object-store URL (s3://...) is not a path relative to anything
                if (section, key) in paths and isinstance(value, str) and value and "://" not in value:
                    value = str(file.resolve().parent / Path(value).expanduser())
                put(section, key, value, False, str(file), f"file {file}")

    environ = os.environ if env is None else env
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in ENV_RESERVED:
            continue
        rest = name[len(ENV_PREFIX) :]
        if "__" not in rest:
            # Not ours: Kubernetes injects FLYWHEEL_SCHEDULER_PORT, ..._SERVICE_HOST for a
            # Service named flywheel-scheduler. A setting always has the double underscore.
            log.warning(
                "environment: ignoring %s: a setting is FLYWHEEL_<SECTION>__<KEY> (two underscores, "
                "e.g. FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS); Kubernetes injects such names for a Service "
                "unless the pod sets enableServiceLinks: false",
                name,
            )
            continue
        section, key = rest.split("__", 1)
        put(section.lower(), key.lower(), value, True, f"environment {name}", f"env {name}")

    for dotted, value in (overrides or {}).items():
        if "." not in dotted:
            problems.append(f"override {dotted!r} is not section.key")
            continue
        section, key = dotted.split(".", 1)
        put(section, key, value, isinstance(value, str), f"option {dotted}", "flag")

    resolved: dict[str, Any] = {}
    for name, cls in sections.items():
        start = base.sections[name] if base is not None else cls()
        fields = _section_fields(cls)
        changes: dict[str, Any] = {}
        for key, (value, from_text, source) in raw[name].items():
            tp = fields[key][0]
            try:
                changes[key] = _coerce(value, tp, f"{source}: {name}.{key}", from_text)
            except (ValueError, json.JSONDecodeError) as exc:
                problems.append(str(exc))
        section = dataclasses.replace(start, **changes)
        validate = getattr(section, "validate", None)
        if callable(validate):
            problems.extend(f"{name}: {p}" for p in validate())
        resolved[name] = section
    if problems:
        raise ConfigError(problems)
    return root(**resolved, origins=types.MappingProxyType(origins))


def _did_you_mean(name: str, known: Mapping[str, Any], prefix: str = "", where: str = "") -> str:
    """'; did you mean X?' for a misspelt name, else the known names."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {prefix}{close[0]}?"
    return (
        f" (known{' in ' + where if where else ''}: {', '.join(sorted(known))}; `flywheel config` lists them)"
    )


# ---------------------------------------------------------------------------
# Writing


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(config: Sectioned, only: tuple[str, ...] | None = None) -> str:
    """The configuration as TOML (``None`` values are left out: they are the default)."""
    out: list[str] = []
    for name, section in config.sections.items():
        if only is not None and name not in only:
            continue
        out.append(f"[{name}]")
        values = dataclasses.asdict(section)
        for f in dataclasses.fields(section):
            key, value = f.name, values[f.name]
            if value is None:
                continue
            if f.metadata.get("path") and isinstance(value, str) and value and "://" not in value:
                value = os.path.abspath(os.path.expanduser(value))
            out.append(f"{key} = {_toml_value(value)}")
        out.append("")
    return "\n".join(out)


def write_resolved(
    config: Sectioned, path: str | os.PathLike[str], only: tuple[str, ...] | None = None
) -> Path:
    """Write the resolved configuration next to an output, atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, to_toml(config, only))
    return target


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def explain(config: Settings, only: str | None = None) -> list[dict[str, Any]]:
    """Every key: its value, default, where the value came from (default, file, env, flag) and its help."""
    if only is not None and only not in config.sections:
        raise ConfigError([f"unknown section {only!r}{_did_you_mean(only, config.sections)}"])
    rows = []
    for name, section in config.sections.items():
        if only is not None and name != only:
            continue
        for key, (_, f) in _section_fields(type(section)).items():
            origin = config.origins.get(f"{name}.{key}", "default")
            rows.append(
                {
                    "key": f"{name}.{key}",
                    "value": _plain(getattr(section, key)),
                    "default": _plain(f.default),
                    "source": origin.split(" ", 1)[0],
                    "origin": origin,
                    "help": f.metadata.get("help", ""),
                }
            )
    return rows


def explain_text(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`explain` for a person: one key per line, its help on the next."""
    out = []
    section = None
    for row in rows:
        name = row["key"].split(".", 1)[0]
        if name != section:
            if section is not None:
                out.append("")
            out.append(f"[{name}]")
            section = name
        value = json.dumps(row["value"], ensure_ascii=False)
        where = row["origin"]
        if row["source"] != "default":
            where += f"; default {json.dumps(row['default'], ensure_ascii=False)}"
        out.append(f"{row['key']} = {value}    ({where})")
        out.append(f"    {row['help']}")
    return "\n".join(out)
