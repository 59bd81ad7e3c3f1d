"""Errors of the training stage; each says what to run or change next."""

from __future__ import annotations

from core.errors import TerminalError
from core.snapshot import SnapshotError

__all__ = ["BaseModelError", "SnapshotError"]


class BaseModelError(TerminalError):
    """The base model cannot be found or loaded."""
