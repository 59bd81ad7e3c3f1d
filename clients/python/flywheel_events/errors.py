"""The error families every flywheel stage shares (core.errors re-exports them).

*Terminal* errors (bad records, bad config) are never retried; *transient* errors
(broker or disk hiccups) are retried with backoff by the code that owns the resource.
Every error carries a ``hint``: what to run or change next. Flywheel's command line
prints ``message`` and ``hint`` without a traceback and exits with ``exit_code``.
"""

from __future__ import annotations


class FlywheelError(Exception):
    """Base class. ``exit_code`` is what the command line returns."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class TerminalError(FlywheelError):
    """Retrying will not help: the input or the configuration must change."""


class TransientError(FlywheelError):
    """A resource hiccup; the owner retries with backoff before giving up."""

    exit_code = 75  # EX_TEMPFAIL: a supervisor may restart us
