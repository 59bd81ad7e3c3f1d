"""The one-page summary a reviewer opens first: four plots (embedded SVG) and the checks."""

from __future__ import annotations

import base64
import html

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


# Plot colours (matplotlib's tab10, as the plots had before they were drawn here).
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    """A self-contained SVG as base64 (an <img> of it decodes like the PNGs it replaces). Drawn
    here rather than with matplotlib, whose import and rendering took 3-4 s of every curation."""
    head = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"font-family='sans-serif' font-size='11'><rect width='100%' height='100%' fill='white'/>"
        f"<text x='{width / 2:.0f}' y='16' text-anchor='middle' font-size='13'>{html.escape(title)}</text>"
    )
    return base64.b64encode((head + "".join(body) + "</svg>").encode()).decode("ascii")


def _columns(
    title: str,
    names: list[str],
    series: list[tuple[str, list[float]]],
    stacked: bool,
    top: float | None = None,
) -> str:
    """Vertical bars per name: one per series side by side, or stacked; a legend when several."""
    width, height, left, bottom, plot_top = 640, 310, 56, 80, 30
    inner_w, inner_h = width - left - 16, height - bottom - plot_top
    totals = [
        sum(v[k] for _, v in series) if stacked else max((v[k] for _, v in series), default=0)
        for k in range(len(names))
    ]
    peak = top if top is not None else max(totals, default=0) or 1.0
    body = [
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - 16}' y2='{height - bottom}' stroke='black'/>"
    ]
    for tick in range(5):
        value = peak * tick / 4
        y = height - bottom - inner_h * tick / 4
        body.append(f"<text x='{left - 4}' y='{y + 4:.1f}' text-anchor='end'>{value:.3g}</text>")
    slot = inner_w / max(len(names), 1)
    for k, name in enumerate(names):
        base = 0.0
        for s, (_, values) in enumerate(series):
            value = values[k]
            h = inner_h * value / peak
            bar_w = slot * 0.8 / (1 if stacked else len(series))
            x = left + slot * k + slot * 0.1 + (0 if stacked else s * bar_w)
            y = height - bottom - inner_h * base / peak - h
            body.append(
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{bar_w:.1f}' height='{h:.1f}' "
                f"fill='{_COLOURS[s % len(_COLOURS)]}' fill-opacity='0.8'/>"
            )
            base += value if stacked else 0
        if len(names) <= 40 or k % max(len(names) // 20, 1) == 0:
            x = left + slot * (k + 0.5)
            body.append(
                f"<text transform='translate({x:.1f},{height - bottom + 8}) rotate(60)'>{html.escape(name)}</text>"
            )
    if len(series) > 1:
        for s, (label, _) in enumerate(series):
            y = plot_top + 6 + 14 * s
            body.append(f"<rect x='{width - 120}' y='{y - 8}' width='10' height='10' fill='{_COLOURS[s]}'/>")
            body.append(f"<text x='{width - 106}' y='{y + 1}'>{html.escape(label)}</text>")
    return _svg(width, height, title, body)


def _funnel(title: str, names: list[str], values: list[int]) -> str:
    width, left, row = 640, 210, 20
    height = 36 + row * len(names)
    peak = max(values, default=0) or 1
    body = []
    for k, (name, value) in enumerate(zip(names, values, strict=True)):
        y = 28 + row * k
        w = (width - left - 70) * value / peak
        body.append(f"<text x='{left - 6}' y='{y + 13}' text-anchor='end'>{html.escape(name)}</text>")
        body.append(f"<rect x='{left}' y='{y + 2}' width='{w:.1f}' height='{row - 5}' fill='{_COLOURS[0]}'/>")
        body.append(f"<text x='{left + w + 4:.1f}' y='{y + 13}'>{value:,}</text>")
    return _svg(width, height, title, body)


def _plots(
    daily: pd.DataFrame, by_version: pd.DataFrame, lengths: pd.DataFrame, counts: dict[str, int]
) -> list[tuple[str, str]]:
    out = []
    if daily.empty:
        days: list[str] = []
        series: list[tuple[str, list[float]]] = []
    else:
        table = daily.pivot_table(index="day", columns="label", values="events", aggfunc="sum", fill_value=0)
        days = [str(d) for d in table.index]
        series = [(str(c), [float(v) for v in table[c]]) for c in table.columns]
    out.append(
        ("Events per day by label", _columns("Raw feedback per day by label", days, series, stacked=True))
    )

    versions = [] if by_version.empty else [str(v) for v in by_version["model_version"]]
    shares = [] if by_version.empty else [float(v) for v in by_version["desirable_share"].fillna(0)]
    title = "Desirable share of served completions by model version (curated)"
    out.append(
        ("Label ratio by model version", _columns(title, versions, [("desirable", shares)], False, 1.0))
    )

    values = lengths["completion_chars"].dropna()
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    step = (high - low) / 30 or 1.0
    edges = [low + step * b for b in range(30)]
    hist = []
    for label, name in ((True, "desirable"), (False, "undesirable")):
        part = lengths.loc[lengths["label"] == label, "completion_chars"].dropna()
        bins = ((part - low) // step).clip(0, 29).astype(int).value_counts()
        hist.append((name, [float(bins.get(b, 0)) for b in range(30)]))
    title = "Completion length by label (curated; bins of completion characters)"
    out.append(("Length by label", _columns(title, [f"{e:.0f}" for e in edges], hist, stacked=False)))

    names = [n for n, _ in FUNNEL]
    out.append(
        (
            "Funnel of rows per step",
            _funnel("Rows remaining after each step", names, [counts.get(k, 0) for _, k in FUNNEL]),
        )
    )
    return out


_DOCS_START, _DOCS_END = "<!--data-docs-->", "<!--/data-docs-->"


def docs_paragraph(line: str) -> str:
    """What the page says of the GX Data Docs, from the marker's line (``curation.docs``)."""
    esc = html.escape
    state, _, rest = line.partition(":")
    if line.startswith("done"):
        body = f"Great Expectations Data Docs: <a href='gx/index.html'>rendered</a>; {esc(rest.strip())}"
    elif line.startswith("failed"):
        body = (
            f"Great Expectations Data Docs: <strong>FAILED</strong>: {esc(rest.strip())}. The checks above "
            "stand (the curation decided them); <code>flywheel report SNAPSHOT</code> renders the docs again."
        )
    elif line.startswith("off"):
        body = f"Great Expectations Data Docs: not rendered: {esc(rest.strip())}"
    else:  # queued / rendering
        body = (
            f"Great Expectations Data Docs: not there yet, {esc(line)}. The checks above are final; "
            "reload this page (quality/gx.status says where they stand)."
        )
    return f"{_DOCS_START}<p id='data-docs' class='{esc(state.split()[0] if state else 'off')}'>{body}</p>{_DOCS_END}"


def with_docs_status(page: str, line: str) -> str:
    """The page with its Data Docs paragraph replaced by what ``line`` says."""
    start, end = page.index(_DOCS_START), page.index(_DOCS_END) + len(_DOCS_END)
    return page[:start] + docs_paragraph(line) + page[end:]


def render(
    snapshot_id: str,
    counts: dict[str, int],
    checks: list[Check],
    daily: pd.DataFrame,
    by_version: pd.DataFrame,
    lengths: pd.DataFrame,
    notes: list[str],
    docs: str = "off: not asked for",
) -> str:
    """The summary page as one self-contained HTML string; ``docs`` is the Data Docs' status line."""
    esc = html.escape
    rows = "".join(
        f"<tr class='{'ok' if c.success else c.severity}'><td>{esc(c.name)}</td><td>{esc(c.severity)}</td>"
        f"<td>{'pass' if c.success else 'FAIL'}</td><td>{esc(c.observed)}</td><td>{esc(c.expected)}</td></tr>"
        for c in checks
    )
    figures = "".join(
        f"<figure><img alt='{esc(title)}' src='data:image/svg+xml;base64,{data}'><figcaption>{esc(title)}"
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
{counts.get("eval", 0)} eval rows; {failed} check(s) failed.</p>
{docs_paragraph(docs)}
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
