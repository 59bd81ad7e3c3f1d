"""The report's fixed cost: the summary's four plots are drawn as SVG, without importing matplotlib
(whose import and rendering took 3-4 s of every curation on 2 cores), and the checks are decided
without Great Expectations, whose Data Docs follow in a process of their own (curation.docs)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
import xml.dom.minidom
from pathlib import Path

import pytest

from core.snapshot import load_manifest
from curation import docs
from curation.run import run
from tests.curation.conftest import make_config
from tests.curation.lakes import LakeBuilder

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import pandas as pd
from curation import summary
from curation.quality import Check
daily = pd.DataFrame({"day": ["2026-03-01", "2026-03-01", "2026-03-02"], "label": ["up", "down", "up"],
                      "events": [5, 3, 7]})
versions = pd.DataFrame({"model_version": ["v1", "v2"], "desirable_share": [0.3, None]})
lengths = pd.DataFrame({"label": [True, False, True] * 100, "completion_chars": list(range(300))})
check = Check("orphan_rate", "warning", False, "observed 0.2", "between 0 and 0.01")
page = summary.render("snap-x", {"read": 10, "after_dedupe": 9, "train": 5, "eval": 1}, [check], daily,
                      versions, lengths, ["a note"])
open(sys.argv[1], "w").write(page)
print("matplotlib" in sys.modules)
"""


def test_summary_plots_are_svg_without_matplotlib(tmp_path: Path) -> None:
    page_path = tmp_path / "summary.html"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(page_path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False", "the summary imported matplotlib"
    page = page_path.read_text()
    images = re.findall(r"src='data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 4
    for data in images:
        svg = xml.dom.minidom.parseString(base64.b64decode(data)).documentElement
        assert svg is not None and svg.tagName == "svg"
        assert svg.getElementsByTagName("rect").length > 1
    assert "orphan_rate" in page and "FAIL" in page


# A curation in a process of its own, which exits once run() returns: what `flywheel curate` does.
CURATE = """
import os, sys
from pathlib import Path
from curation.run import run
from tests.curation.conftest import make_config
path = run(make_config(Path(sys.argv[1]), **{"curation.data_docs": "after"}), as_of="2026-03-31T00:00:00Z")
me = str(os.getpid())
zombies = []
for stat in Path("/proc").glob("[0-9]*/stat"):
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if fields[1] == me and fields[0] == "Z":
        zombies.append(stat.parent.name)
print(path)
print("great_expectations" in sys.modules, zombies)
"""


def _lake(root: Path) -> None:
    b = LakeBuilder()
    for i in range(30):
        b.trace(f"T{i}", "2026-03-30T08:00:00Z", f"prompt {i}", f"answer {i}")
        b.feedback(f"e{i}", f"T{i}", "2026-03-30T09:00:00Z", "up" if i % 3 else "down", f"u{i}")
    b.write(root / "lake")


def _curate(root: Path, env: dict[str, str] | None = None) -> tuple[Path, str]:
    done = subprocess.run(
        [sys.executable, "-c", CURATE, str(root)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=120,
    )
    path, flags = done.stdout.strip().splitlines()[-2:]
    return Path(path), flags


def _broken_gx(tmp_path: Path) -> dict[str, str]:
    """GX broken on this machine: a package of its name that fails to import, first on the path
    (so a renderer started here ends in a second, not after GX's 5-10 s)."""
    broken = tmp_path / "broken" / "great_expectations"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('great_expectations is broken here')\n")
    return {"PYTHONPATH": f"{REPO}{os.pathsep}{broken.parent}"}


def test_curate_decides_without_great_expectations_and_leaves_no_zombie(tmp_path: Path) -> None:
    _lake(tmp_path)
    path, flags = _curate(tmp_path, _broken_gx(tmp_path))
    # the checks were decided and the snapshot published without importing GX (4-12 s here); the
    # process that starts the renderer was waited for, and the renderer is not this process's child
    assert flags == "False []", flags
    checks = {c["name"]: c["success"] for c in load_manifest(path)["quality"]}
    assert len(checks) == 13 and all(checks.values())
    inputs = {p.name for p in (path / "quality" / docs.INPUT).iterdir()}
    assert inputs == {"suite.json", "measures.parquet", "curated_rows.parquet"}
    assert docs.wait(path, timeout=120).startswith("failed: ImportError")


@pytest.mark.slow
def test_data_docs_follow_after_the_curating_process_has_exited(tmp_path: Path) -> None:
    _lake(tmp_path)
    path, _ = _curate(tmp_path)
    line = docs.wait(path, timeout=300)
    assert line.startswith("done: GX agrees with the curation on all 21 expectations"), line
    assert (path / "quality" / "gx" / "index.html").is_file()
    page = (path / "quality" / "summary.html").read_text()
    assert "<a href='gx/index.html'>rendered</a>" in page


def test_a_failed_rendering_is_said_in_the_marker_the_log_and_the_summary(tmp_path: Path) -> None:
    _lake(tmp_path)
    path, _ = _curate(tmp_path, _broken_gx(tmp_path))
    line = docs.wait(path, timeout=120)
    assert line == "failed: ImportError: great_expectations is broken here (log: quality/gx.log)", line
    assert "Traceback" in (path / "quality" / docs.LOG).read_text()
    page = (path / "quality" / "summary.html").read_text()
    assert "<strong>FAILED</strong>: ImportError: great_expectations is broken here" in page
    assert load_manifest(path)["snapshot_id"] == path.name  # the snapshot itself stands


def test_a_renderer_that_died_is_a_failure_not_rendering_forever(tmp_path: Path) -> None:
    _lake(tmp_path)
    path = run(make_config(tmp_path), as_of="2026-03-31T00:00:00Z")
    assert docs.status(path).startswith("off: curation.data_docs = off")
    assert "flywheel report SNAPSHOT" in (path / "quality" / "summary.html").read_text()
    gone = subprocess.Popen(["true"])
    gone.wait()
    docs.set_status(path, f"rendering (pid {gone.pid}, since 2026-03-31T00:00:00+00:00)")
    assert (
        docs.status(path)
        == f"failed: the renderer (pid {gone.pid}) ended without a result (log: quality/gx.log)"
    )


def test_flywheel_report_on_a_folder_without_a_report_says_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flywheel.cli import main

    assert main(["report", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "nowhere/quality does not exist" in err and "printed by `flywheel curate`" in err


@pytest.mark.slow
def test_flywheel_report_renders_the_docs_of_a_snapshot_curated_without_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flywheel.cli import main

    _lake(tmp_path)
    path = run(make_config(tmp_path), as_of="2026-03-31T00:00:00Z")  # curation.data_docs = off
    assert main(["report", str(path)]) == 0
    assert capsys.readouterr().out.startswith("done: GX agrees with the curation on all 21 expectations")
    assert docs.status(path).startswith("done") and (path / "quality" / "gx" / "index.html").is_file()


def test_renderers_of_one_lake_take_turns_and_a_waiting_one_is_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backfill curates many days and starts a renderer for each: they must not all run GX at once.
    import fcntl

    _lake(tmp_path)
    path = run(make_config(tmp_path), as_of="2026-03-31T00:00:00Z")  # data_docs off: no renderer yet
    monkeypatch.setenv("PYTHONPATH", _broken_gx(tmp_path)["PYTHONPATH"])  # a render ends in a second
    with open(path.parent / docs.LOCK, "a+b") as held:  # the renderer of another snapshot
        fcntl.flock(held, fcntl.LOCK_EX)
        docs.launch(path)
        deadline = time.monotonic() + 60
        while not docs.status(path).startswith("waiting (pid ") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert docs.status(path).startswith("waiting (pid "), docs.status(path)
        time.sleep(1.0)
        assert docs.status(path).startswith("waiting (pid ")  # still its turn to wait, not failed
        assert "waiting" in (path / "quality" / "summary.html").read_text()
    line = docs.wait(path, timeout=120)  # the lock is let go: it renders (and GX is broken here)
    assert line.startswith("failed: ImportError: great_expectations is broken here"), line
