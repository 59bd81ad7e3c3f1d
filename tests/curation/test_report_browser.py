"""The data-quality report renders in a real headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flywheel.config import Config

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=5000",
]


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on PATH (`make browser` installs Debian's chromium; it needs apt and root)")


def _dump_dom(browser: str, page: Path, tmp_path: Path) -> str:
    done = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_summary_and_data_docs_render(scenario_snapshot: tuple[Config, Path], tmp_path: Path) -> None:
    browser = _browser()
    _, path = scenario_snapshot
    dom = _dump_dom(browser, path / "quality" / "summary.html", tmp_path)
    assert path.name in dom
    assert "decoded 4 of 4 images" in dom  # set by the page's script once every plot decoded
    assert "orphan_rate" in dom and "after_caps" in dom
    # the fixture renders the Data Docs before it returns: the page says so and links them
    assert 'class="done"' in dom and 'href="gx/index.html"' in dom
    shot = tmp_path / "summary.png"
    subprocess.run(
        [
            browser,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--window-size=1200,2400",
            f"--screenshot={shot}",
            (path / "quality" / "summary.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000  # a blank page is a few KB; the plots make it far larger
    docs = _dump_dom(browser, path / "quality" / "gx" / "index.html", tmp_path)
    assert "measures_suite" in docs and "curated_rows_suite" in docs
