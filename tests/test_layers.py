"""The floors of the code (docs/architecture.md), read from the imports themselves.

Every ``import`` and ``from ... import`` counts, at module level or inside a function: an import
hidden in a function is still a dependency, only a later one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "curation", "training", "evals", "collect")
# The packages of this repository and where their sources are.
PACKAGES = {
    "flywheel_events": ROOT / "clients" / "python" / "flywheel_events",
    "core": ROOT / "core",
    **{stage: ROOT / stage for stage in STAGES},
    "flywheel": ROOT / "flywheel",
}
# What each floor may import of this repository (its own package is always allowed).
ALLOWED = {
    "flywheel_events": set(),
    "core": {"flywheel_events"},
    **{stage: {"flywheel_events", "core"} for stage in STAGES},
    "flywheel": {"flywheel_events", "core", *STAGES},
}
# Of the roof, only the command line and the root configuration may reach development scaffolding.
DEV_USERS = {"flywheel.cli", "flywheel.config"}


def floor(module: str) -> str:
    """The floor a module belongs to: its top-level package."""
    return module.split(".", 1)[0]


def imported(source: str, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import of this repository in ``source`` (relative ones resolved)."""
    found = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
            # `from flywheel import dev` imports the module flywheel.dev
            names += [f"{names[0]}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if floor(name) in PACKAGES]
    return found


def violations(module: str, source: str) -> list[str]:
    """Why each import in ``source`` (the text of ``module``) breaks the floors; empty when none does."""
    own = floor(module)
    problems: list[str] = []
    for line, name in imported(source, module):
        if any(p.startswith(f"{module}:{line} ") for p in problems):
            continue  # one statement, one problem: `from a import b` names both a and a.b
        other = floor(name)
        if other == own:
            if own == "flywheel" and name.startswith("flywheel.dev"):
                inside = module.startswith("flywheel.dev")
                if not inside and module not in DEV_USERS:
                    problems.append(f"{module}:{line} imports {name}: only the command line uses dev tools")
            continue
        if other in ALLOWED[own]:
            continue
        if own in STAGES and other in STAGES:
            problems.append(f"{module}:{line} imports {name}: a stage never imports another stage")
        else:
            problems.append(f"{module}:{line} imports {name}: {own} stands below {other}")
    return problems


def modules() -> list[tuple[str, Path]]:
    found = []
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join((package, *parts)), path))
    return found


def test_every_module_imports_only_its_own_floor_and_those_below() -> None:
    found = modules()
    assert len(found) > 80, "the walk missed the packages"
    problems = [p for module, path in found for p in violations(module, path.read_text(encoding="utf-8"))]
    assert problems == []


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("curation.planted", "from training.run import train\n", "a stage never imports another stage"),
        ("evals.planted", "def f():\n    import curation.snapshot\n", "a stage never imports another stage"),
        ("core.planted", "from flywheel.config import Config\n", "core stands below flywheel"),
        ("core.planted", "from ingest import service\n", "core stands below ingest"),
        ("training.planted", "from flywheel import nightly\n", "training stands below flywheel"),
        ("flywheel.nightly", "from flywheel.dev import demo\n", "only the command line uses dev tools"),
        ("flywheel_events.planted", "import core.errors\n", "flywheel_events stands below core"),
    ],
)
def test_a_planted_violation_is_found(module: str, source: str, why: str) -> None:
    found = violations(module, source)
    assert len(found) == 1 and why in found[0], found


def test_what_the_floors_allow_is_not_reported() -> None:
    assert violations("curation.run", "from core.snapshot import open_snapshot\nimport curation.pii\n") == []
    assert violations("flywheel.cli", "from flywheel.dev import demo\nfrom evals.run import run\n") == []
    assert violations("flywheel.dev.demo", "from flywheel import nightly\n") == []
    assert violations("core.lake", "from flywheel_events.schema import TRACE_COLUMNS\n") == []
