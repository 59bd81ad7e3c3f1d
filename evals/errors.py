"""Errors of the gate."""

from __future__ import annotations

from flywheel.errors import TerminalError


class EvalError(TerminalError):
    """The gate cannot judge: missing models, an unusable snapshot, a broken judge."""
