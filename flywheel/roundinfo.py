"""What a nightly round returns."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class RoundResult:
    """One round's ledger record, with the exit code and a summary a person reads."""

    record: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.record["status"])

    @property
    def outcome(self) -> str:
        return str(self.record["outcome"])

    @property
    def exit_code(self) -> int:
        if self.status in ("completed", "skipped"):
            return 0
        return int(self.record.get("exit_code") or 1)

    def summary(self) -> str:
        r = self.record
        lines = [f"round {r['run_id']}: {r['outcome']} ({r['status']}, {r.get('duration_s')} s)"]
        if r.get("resumed_from"):
            lines.append(f"  resumed from interrupted round {r['resumed_from']}")
        for name, step in r["steps"].items():
            took = f" {step['duration_s']:.1f} s" if step.get("duration_s") is not None else ""
            detail = f"  {step['detail']}" if step.get("detail") else ""
            lines.append(f"  {name:<8} {step['state']:<8}{took}{detail}")
        lines.append(f"  snapshot  {r.get('snapshot_id')} ({r.get('train_rows')} training rows)")
        lines.append(f"  candidate {r.get('candidate')}")
        lines.append(f"  champion  {r.get('champion_before')} -> {r.get('champion_after')}")
        if r.get("decision"):
            lines.append(f"  report    {r['decision']['report_path']}")
        lines.append(f"  {r.get('message')}")
        if r.get("error") and r["error"].get("hint"):
            lines.append(f"  hint: {r['error']['hint']}")
        return "\n".join(lines)
