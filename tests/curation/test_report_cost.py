"""The summary page's fixed cost: its four plots are drawn as SVG, without importing matplotlib
(whose import and rendering took 3-4 s of every curation on 2 cores)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import xml.dom.minidom
from pathlib import Path

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
