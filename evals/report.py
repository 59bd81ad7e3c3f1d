"""The gate's report: eval_report.json and report.html (decision and reasons first, then metrics,
plots as embedded PNG, and side-by-side examples of the biggest wins and losses).

Both files are written to temporary names and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.files import atomic_write_text
from evals.decision import Decision

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
.promote{color:#0a7a2f}.reject{color:#b3261e}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
.pass{color:#0a7a2f}.fail{color:#b3261e;font-weight:bold}.warn{color:#8a5a00;font-weight:bold}
pre{white-space:pre-wrap;margin:0}.turn{margin:0 0 .4em}
img{max-width:100%}"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _slice_bars(names: list[str], estimates: list[dict[str, float]], xlabel: str) -> str:
    """One bar per slice with its interval, and a line at 0.5 (no change)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1))
    values = [e["value"] for e in estimates]
    errors = np.array([[e["value"] - e["low"], e["high"] - e["value"]] for e in estimates]).T
    ax.barh(names, values, xerr=np.nan_to_num(errors), color="#4a6fa5")
    ax.axvline(0.5, color="black", linewidth=1)
    ax.set_xlabel(xlabel)
    return _png(fig)


def plots(
    reward: np.ndarray,
    labels: np.ndarray,
    lengths: dict[str, list[int]],
    slices: list[dict[str, Any]],
    replay_slices: list[dict[str, Any]] | None = None,
) -> dict[str, str]:
    """Base64 PNGs: reward by label, answer lengths, slice AUCs, slice win rates."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    out = {}
    fig, ax = plt.subplots(figsize=(6, 3))
    bins = list(np.histogram_bin_edges(reward, bins=30)) if len(reward) else 10
    ax.hist(reward[labels], bins=bins, alpha=0.6, label="thumbs-up", color="#0a7a2f")
    ax.hist(reward[~labels], bins=bins, alpha=0.6, label="thumbs-down", color="#b3261e")
    ax.set_xlabel("implicit reward: log p_candidate - log p_champion")
    ax.set_ylabel("held-out completions")
    ax.legend()
    out["Implicit reward by label"] = _png(fig)
    if lengths.get("candidate"):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist([lengths["champion"], lengths["candidate"]], bins=20, label=["champion", "candidate"])
        ax.set_xlabel("replay answer length (characters)")
        ax.legend()
        out["Replay answer lengths"] = _png(fig)
    judged = [s for s in slices if "auc" in s]
    if judged:
        out["Slices"] = _slice_bars(
            [f"{s['key']}={s['value']} (n={s['rows']})" for s in judged],
            [s["auc"] for s in judged],
            "AUC per slice (0.5 = no change)",
        )
    if replay_slices:
        out["Replay slices"] = _slice_bars(
            [f"{s['key']}={s['value']} (n={s['prompts']})" for s in replay_slices],
            [s["win_rate"] for s in replay_slices],
            "replay win rate per slice (0.5 = as good as the champion)",
        )
    return out


def _num(value: Any) -> str:
    """Figures rounded for reading: three significant decimals, integers as they are."""
    if isinstance(value, bool) or value is None:
        return html.escape(str(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "n/a" if not np.isfinite(value) else f"{value:.3f}"
    return html.escape(str(value))


def _metric_text(value: Any) -> str:
    if isinstance(value, dict) and {"value", "low", "high"} <= value.keys():
        text = (
            f"{_num(value['value'])} [{_num(value['low'])}, {_num(value['high'])}] (n={_num(value.get('n'))})"
        )
        if value.get("detectable") is not None:
            text += f"; detects &ge; {_num(value['detectable'])}"
        return text
    if isinstance(value, dict):
        return "; ".join(f"{html.escape(str(k))}: {_metric_text(v)}" for k, v in value.items())
    return _num(value)


def _metric_rows(metrics: dict[str, Any]) -> str:
    rows = []
    for group in ("agreement", "replay"):
        for name, value in metrics.get(group, {}).items():
            rows.append(
                f"<tr><td>{group}</td><td>{html.escape(name)}</td><td>{_metric_text(value)}</td></tr>"
            )
    return "<table><tr><th>group</th><th>metric</th><th>value [CI]</th></tr>" + "".join(rows) + "</table>"


def conversation_html(prompt: str, prompt_format: str = "text") -> str:
    """A chat prompt as its turns (role in bold), a text prompt as it is."""
    if prompt_format == "messages" or prompt.lstrip().startswith("[{"):
        try:
            turns = json.loads(prompt)
            return "".join(
                f"<div class=turn><b>{html.escape(str(t['role']))}</b><pre>{html.escape(str(t['content']))}</pre></div>"
                for t in turns
            )
        except (ValueError, TypeError, KeyError):
            pass
    return f"<pre>{html.escape(prompt)}</pre>"


def _examples(examples: dict[str, list[dict[str, Any]]]) -> str:
    parts = []
    for title, items in examples.items():
        if not items:
            continue
        rows = "".join(
            f"<tr><td>{conversation_html(e['prompt'], e.get('prompt_format', 'text'))}</td>"
            f"<td><pre>{html.escape(e['candidate'])}</pre></td>"
            f"<td><pre>{html.escape(e['champion'])}</pre></td><td>{_num(e['margin'])}</td></tr>"
            for e in items
        )
        parts.append(
            f"<h3>{html.escape(title)}</h3><table><tr><th>prompt</th><th>candidate</th><th>champion</th>"
            f"<th>judge margin</th></tr>{rows}</table>"
        )
    return "".join(parts) or "<p>No judged replay pairs.</p>"


OUTCOME = {"veto": ("fail", "VETO"), "warning": ("warn", "WARNING"), "pass": ("pass", "pass")}


def _links(links: dict[str, str]) -> str:
    items = "".join(
        f"<li><a href='{html.escape(href)}'>{html.escape(text)}</a></li>" for text, href in links.items()
    )
    return f"<h2>Related</h2><ul>{items}</ul>" if items else ""


def render_html(
    decision: Decision,
    images: dict[str, str],
    examples: dict[str, list[dict[str, Any]]],
    links: dict[str, str] | None = None,
) -> str:
    verdict = "promote" if decision.promote else "reject"
    rank = {"veto": 0, "warning": 1, "pass": 2}
    ordered = sorted(decision.checks, key=lambda c: rank[c.outcome])  # failed first, stable otherwise
    checks = "".join(
        f"<tr><td>{html.escape(c.name)}</td><td class={OUTCOME[c.outcome][0]}>{OUTCOME[c.outcome][1]}</td>"
        f"<td>{html.escape(c.severity)}</td><td>{html.escape(c.threshold)}</td>"
        f"<td>{html.escape(c.reason)}</td></tr>"
        for c in ordered
    )
    figures = "".join(
        f"<h3>{html.escape(t)}</h3><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
        for t, b in images.items()
    )
    title = f"{decision.candidate} vs {decision.champion}"
    deciding = decision.deciding
    decided = f"<p>deciding check: <b>{html.escape(deciding.name)}</b></p>" if deciding else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Gate: {html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1 class="{verdict}">{verdict.upper()}: {html.escape(title)}</h1>
<p>snapshot {html.escape(decision.snapshot)}</p>{decided}
<h2>Reasons</h2><ul>{"".join(f"<li>{html.escape(r)}</li>" for r in decision.reasons)}</ul>
<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>on failure</th><th>threshold</th><th>detail</th></tr>{checks}</table>
<h2>Metrics</h2>{_metric_rows(decision.metrics)}
<h2>Plots</h2>{figures}
<h2>Biggest wins and losses</h2>{_examples(examples)}
{_links(links or {})}
</body></html>"""


def _finite(value: Any) -> Any:
    """JSON has no NaN: an undefined statistic (e.g. a slice with one label) is written as null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write(
    folder: Path,
    decision: Decision,
    images: dict[str, str],
    examples: dict[str, list[dict[str, Any]]],
    links: dict[str, str] | None = None,
) -> Path:
    """``links``: title -> path of the related pages (data-quality report, model card, training
    curves), written relative to the report's folder so the pages open from a copied tree."""
    folder.mkdir(parents=True, exist_ok=True)
    relative = {t: os.path.relpath(p, folder) for t, p in (links or {}).items()}
    payload = _finite({**decision.to_dict(), "examples": examples, "links": relative})
    atomic_write_text(
        folder / "eval_report.json", json.dumps(payload, indent=2, sort_keys=True, allow_nan=False)
    )
    atomic_write_text(folder / "report.html", render_html(decision, images, examples, relative))
    return folder / "eval_report.json"
