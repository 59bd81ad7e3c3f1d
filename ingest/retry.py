"""Retry a transient operation with exponential backoff, then give up with a TransientError."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from core.errors import TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)


def with_backoff(
    what: str,
    attempt: Callable[[], T],
    retry_on: tuple[type[BaseException], ...],
    first_s: float,
    max_s: float,
    give_up_after_s: float,
    hint: str,
    stop: threading.Event | None = None,
) -> T:
    """Call ``attempt`` until it succeeds; waits double from ``first_s`` up to ``max_s``.

    Raises TransientError (exit code 75, so a supervisor restarts us later instead
    of crash-looping now) once ``give_up_after_s`` have passed, or at once if
    ``stop`` is set while waiting.
    """
    deadline = time.monotonic() + give_up_after_s
    wait = first_s
    tries = 0
    while True:
        tries += 1
        try:
            return attempt()
        except retry_on as exc:
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                raise TransientError(f"{what} failed {tries} time(s), last: {exc!r}", hint=hint) from exc
            pause = min(wait, max_s, left)
            log.warning(
                "%s failed; retrying in %.1fs", what, pause, extra={"error": repr(exc), "attempt": tries}
            )
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
            wait *= 2
