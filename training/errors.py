"""Errors of the training stage; each says what to run or change next."""

from __future__ import annotations

from core.errors import TerminalError


class SnapshotError(TerminalError):
    """The snapshot cannot be trained on as it is (missing files or columns, one label only)."""


class BaseModelError(TerminalError):
    """The base model cannot be found or loaded."""
