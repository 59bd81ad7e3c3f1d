"""The one-page summary a reviewer opens first: four plots (embedded PNG) and the checks."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import pandas as pd

from curation.quality import Check

# The funnel: (step label, count key holding the rows that remain after it).
FUNNEL = [
    ("read (window, known at --as-of)", "read"),
    ("dedupe by event_id", "after_dedupe"),
    ("latest action per user and trace", "after_latest_action"),
    ("age out by date", "after_age_date"),
    ("join to traces", "after_join"),
    ("age out by model version", "after_age_version"),
    ("edits expanded (rows)", "after_edits"),
    ("conflicts resolved", "after_conflicts"),
    ("empty / over-long dropped", "after_filters"),
    ("caps per prompt and user", "after_caps"),
    ("balance", "after_balance"),
]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(
    daily: pd.DataFrame, by_version: pd.DataFrame, lengths: pd.DataFrame, counts: dict[str, int]
) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server; must precede pyplot
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(7, 3))
    if not daily.empty:
        daily.pivot_table(
            index="day", columns="label", values="events", aggfunc="sum", fill_value=0
        ).plot.bar(ax=ax, stacked=True)
    ax.set_title("Raw feedback per day by label")
    ax.set_ylabel("events")
    out.append(("Events per day by label", _png(fig)))

    fig, ax = plt.subplots(figsize=(7, 3))
    if not by_version.empty:
        ax.bar(by_version["model_version"], by_version["desirable_share"], color="tab:green")
    ax.set_ylim(0, 1)
    ax.set_title("Desirable share of served completions by model version (curated)")
    out.append(("Label ratio by model version", _png(fig)))

    fig, ax = plt.subplots(figsize=(7, 3))
    for label, name in ((True, "desirable"), (False, "undesirable")):
        values = lengths.loc[lengths["label"] == label, "completion_chars"].dropna()
        if not values.empty:
            ax.hist(values, bins=30, alpha=0.6, label=name)
    ax.set_xlabel("completion characters")
    ax.legend(loc="upper right")
    ax.set_title("Completion length by label (curated)")
    out.append(("Length by label", _png(fig)))

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [n for n, _ in FUNNEL]
    values = [counts.get(k, 0) for _, k in FUNNEL]
    ax.barh(names[::-1], values[::-1], color="tab:blue")
    ax.set_title("Rows remaining after each step")
    out.append(("Funnel of rows per step", _png(fig)))
    return out


def render(
    snapshot_id: str,
    counts: dict[str, int],
    checks: list[Check],
    daily: pd.DataFrame,
    by_version: pd.DataFrame,
    lengths: pd.DataFrame,
    notes: list[str],
) -> str:
    """The summary page as one self-contained HTML string."""
    esc = html.escape
    rows = "".join(
        f"<tr class='{'ok' if c.success else c.severity}'><td>{esc(c.name)}</td><td>{esc(c.severity)}</td>"
        f"<td>{'pass' if c.success else 'FAIL'}</td><td>{esc(c.observed)}</td><td>{esc(c.expected)}</td></tr>"
        for c in checks
    )
    figures = "".join(
        f"<figure><img alt='{esc(title)}' src='data:image/png;base64,{data}'><figcaption>{esc(title)}"
        "</figcaption></figure>"
        for title, data in _plots(daily, by_version, lengths, counts)
    )
    count_rows = "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in counts.items())
    note_items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    failed = sum(1 for c in checks if not c.success)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Curation summary {esc(snapshot_id)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px}}tr.critical{{background:#fbb}}tr.warning{{background:#ffd}}
figure{{display:inline-block;margin:0.5em}}</style></head>
<body><h1>Curation summary</h1>
<p id="snapshot">Snapshot <code>{esc(snapshot_id)}</code>: {counts.get("train", 0)} train rows,
{counts.get("eval", 0)} eval rows; {failed} check(s) failed. Full results: <a href="gx/index.html">Data Docs</a>.</p>
<ul>{note_items}</ul>
<h2>Data-quality checks</h2>
<table id="checks"><tr><th>check</th><th>severity</th><th>result</th><th>observed</th><th>expected</th></tr>{rows}</table>
<h2>Plots</h2>{figures}
<h2>Counts after every step</h2><table id="counts">{count_rows}</table>
<p id="render-check">images not checked (scripts off)</p>
<script>
// Lets a headless browser (and a reviewer) confirm every plot decoded.
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.getElementById("render-check").textContent = "decoded " + ok + " of " + imgs.length + " images";
}});
</script>
</body></html>
"""
