"""The demo's closing table, its JSON and its plot of approval per round."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class RoundRow:
    """Day ``day`` of traffic on ``version``, and the nightly round that followed it (if any)."""

    day: int
    version: str
    served: int
    approval: float
    votes: int
    edits: int
    malformed: int
    ingested: int = 0  # rows in the lake so far
    dead_lettered: int = 0  # records in the dead-letter lake so far
    outcome: str = ""
    snapshot_id: str = ""
    train_rows: int | None = None
    eval_rows: int | None = None
    candidate: str = ""
    reasons: list[str] = dataclasses.field(default_factory=list)
    deciding: str = ""
    quality_report: str = ""
    eval_report: str = ""
    round_s: float | None = None

    @classmethod
    def from_day(cls, day: int, stats: Any) -> RoundRow:
        return cls(
            day=day,
            version=stats.version,
            served=stats.served,
            approval=stats.approval,
            votes=stats.votes_up + stats.votes_down,
            edits=stats.edits,
            malformed=stats.malformed,
        )

    def attach_round(self, record: dict[str, Any]) -> None:
        self.outcome = str(record.get("outcome") or record.get("status"))
        self.snapshot_id = str(record.get("snapshot_id") or "")
        self.train_rows = record.get("train_rows")
        self.candidate = str(record.get("candidate") or "")
        self.round_s = record.get("duration_s")
        decision = record.get("decision") or {}
        self.reasons = [str(x) for x in decision.get("reasons") or []] or [str(record.get("message") or "")]
        self.deciding = str(decision.get("deciding_check") or "")
        self.eval_report = str(decision.get("report_path") or "")
        snap = record.get("snapshot_path")
        if snap:
            quality = Path(snap) / "quality" / "summary.html"
            self.quality_report = str(quality) if quality.exists() else str(Path(snap) / "quality")
            eval_file = Path(snap) / "eval.parquet"
            if eval_file.exists():
                import pyarrow.parquet as pq

                self.eval_rows = pq.read_metadata(eval_file).num_rows


@dataclasses.dataclass(frozen=True)
class Report:
    table: str
    markdown: Path
    plot: Path
    data: Path


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: list[RoundRow]) -> str:
    """One line per day, readable at a glance; the full reasons and report paths follow it."""
    head = (
        "| day | serving model | approval | served | votes | edits | ingested | dead-lettered "
        "| night: snapshot (train/eval) | decision | deciding check |"
    )
    lines = [head, "|" + "---|" * 11]
    previous_in = previous_dlq = 0
    for r in rows:
        snap = f"{_short(r.snapshot_id, 14)} ({r.train_rows}/{r.eval_rows})" if r.snapshot_id else "-"
        # The gate lists the deciding check first: the first veto, or the primary metric on promotion.
        first_reason = r.reasons[0] if r.reasons else "-"
        lines.append(
            f"| {r.day} | {_short(r.version, 28)} | {r.approval:.1%} | {r.served} | {r.votes} | {r.edits} | "
            f"{r.ingested - previous_in} | {r.dead_lettered - previous_dlq} | {snap} | {r.outcome or '-'} | "
            f"{_short(first_reason, 60)} |"
        )
        previous_in, previous_dlq = r.ingested, r.dead_lettered
    for r in rows:
        if not r.outcome:
            continue
        lines.append("")
        lines.append(f"night {r.day + 1}: {r.outcome} {r.candidate or ''} ({r.round_s} s)")
        for reason in r.reasons:
            lines.append(f"  - {reason}")
        lines.append(f"  data quality: {r.quality_report or '-'}")
        lines.append(f"  gate report:  {r.eval_report or '-'}")
    return "\n".join(lines)


def _plot(rows: list[RoundRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    days = [r.day for r in rows]
    ax.plot(days, [100 * r.approval for r in rows], marker="o")
    for r in rows:
        ax.annotate(f"{r.approval:.0%}", (r.day, 100 * r.approval), textcoords="offset points", xytext=(0, 8))
    ax.set_xticks(
        days, [f"day {d}\n{_short(r.version, 14)}" for d, r in zip(days, rows, strict=True)], fontsize=7
    )
    ax.set_xlabel("serving model per day (a nightly round between days)")
    ax.set_ylabel("approval of the serving model (%)")
    ax.set_ylim(0, 100)
    ax.set_title("flywheel demo: approval per round")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(rows: list[RoundRow], folder: Path) -> Report:
    folder.mkdir(parents=True, exist_ok=True)
    table = _table(rows)
    markdown = folder / "report.md"
    markdown.write_text(
        "# flywheel demo\n\n![approval per round](approval.png)\n\n" + table + "\n", encoding="utf-8"
    )
    data = folder / "rounds.json"
    data.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2), encoding="utf-8")
    plot = folder / "approval.png"
    _plot(rows, plot)
    return Report(table=table, markdown=markdown, plot=plot, data=data)
