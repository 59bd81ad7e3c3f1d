"""Error families shared by every stage.

Two families: *terminal* errors (bad records, bad config, failed data-quality
checks) are never retried; *transient* errors (broker or disk hiccups) are
retried with backoff by the code that owns the resource. Every error carries
a ``hint``: what to run or change next. The command line prints ``message``
and ``hint`` without a traceback and exits with ``exit_code``.
"""

from __future__ import annotations

# The three families live in the light flywheel-events distribution (clients/python), whose
# producer raises them in apps that do not install flywheel; these are the same classes.
from flywheel_events.errors import FlywheelError, TerminalError, TransientError

__all__ = ["ConfigError", "FlywheelError", "TerminalError", "TransientError"]


class ConfigError(TerminalError):
    """The configuration is invalid. Collects every problem and raises once."""

    exit_code = 2

    def __init__(self, problems: list[str], source: str = "configuration") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{source} has {len(self.problems)} problem(s):\n{lines}",
            hint="fix the keys above; `flywheel config` lists every key with its value, default and help",
        )
