"""README's CLI reference agrees with `flywheel --help` and every command's `--help`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flywheel.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
COMMON = {"--help", "--config", "--set", "--log-level", "--log-format"}


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    return capsys.readouterr().out


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _rows() -> dict[str, str]:
    rows = {}
    for line in _section("CLI reference").splitlines():
        m = re.match(r"\| `flywheel ([a-z-]+)` \|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_every_command_is_in_the_reference_and_no_other(capsys: pytest.CaptureFixture[str]) -> None:
    top = _help(["--help"], capsys)
    listing = top.split("COMMAND\n", 2)[-1].split("\noptions:")[0]
    commands = set(re.findall(r"^    ([a-z][a-z-]*)", listing, flags=re.MULTILINE))
    assert {"nightly", "schedule", "demo", "ingest", "curate", "train", "eval"} <= commands
    assert set(_rows()) == commands


def test_every_option_of_every_command_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _rows()
    section = _section("CLI reference")
    for common in COMMON - {"--help"}:
        assert f"`{common}" in section, f"common option {common} is not described"
    for command, row in rows.items():
        text = _help([command, "--help"], capsys)
        options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text)) - COMMON
        missing = [o for o in sorted(options) if f"`{o}" not in row]
        assert not missing, f"`flywheel {command}` options missing from README: {missing}"
        usage = text.split("\n\n", 1)[0]
        for positional in re.findall(r" ([A-Z]+)(?=\s|$)", usage.split("]")[-1]):
            assert f"`{positional}" in row, f"`flywheel {command}` argument {positional} missing from README"


def test_runbook_covers_what_operators_do() -> None:
    runbook = _section("Runbook")
    for must in ("dead-letter", "flywheel rollback", "--as-of", "A round failed", "flywheel nightly"):
        assert must in runbook
    assert "infra/README.md" in _section("Production deployment")
