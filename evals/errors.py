"""Errors of the gate."""

from __future__ import annotations

from core.errors import TerminalError


class EvalError(TerminalError):
    """The gate cannot judge: missing models, an unusable snapshot, a broken judge."""
