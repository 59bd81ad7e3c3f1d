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
import enum

from flywheel_events.errors import FlywheelError, TerminalError, TransientError

__all__ = ["ConfigError", "ExitCode", "FlywheelError", "TerminalError", "TransientError"]


class ExitCode(enum.IntEnum):
    """Every exit status of the ``flywheel`` commands, in one table (the README lists them)."""

    OK = 0  # done: for `flywheel nightly`, the round completed (promoted or rejected) or was skipped
    FAILED = 1  # an error without a code of its own (FlywheelError)
    CONFIG = 2  # the configuration or the command line is invalid (ConfigError)
    REJECTED = 3  # `flywheel eval`: the gate rejected the candidate
    DATA_QUALITY = 4  # a critical data-quality check failed; no snapshot was published
    TEMPFAIL = 75  # a transient failure, or another round holds the lock: a supervisor may retry
    TIMEOUT = 124  # `flywheel schedule`: a round ran past nightly.timeout
    INTERRUPTED = 130  # stopped by SIGINT or SIGTERM
    # FlywheelError (1) and TransientError (75) carry their codes in flywheel_events, which apps
    # install without this table; tests/core/test_contracts.py checks that the two agree.


class ConfigError(TerminalError):
    """The configuration is invalid. Collects every problem and raises once."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[str], source: str = "configuration") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{source} has {len(self.problems)} problem(s):\n{lines}",
            hint="fix the keys above; `flywheel config` lists every key with its value, default and help",
        )
