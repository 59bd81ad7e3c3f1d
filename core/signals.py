"""The one signal handler of the long-running commands: the first signal asks, the second insists.

``flywheel ingest`` finishes its batches and commits, ``flywheel schedule`` lets the running round
stop, ``flywheel broker`` shuts the broker down, a nightly round records why it stopped: each
passes what the first SIGTERM/SIGINT does, and what a second one does when the first is taking
too long (by default: exit at once with 128 + the signal's number, as a shell reports it).
Handlers are installed only on the main thread (Python allows no other) and the previous ones
are restored on the way out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

log = logging.getLogger(__name__)

TERMINATE = (signal.SIGTERM, signal.SIGINT)


def exit_now(signum: int) -> None:
    """Leave at once, without cleanup: what a second signal does unless told otherwise."""
    log.warning("second signal: exiting now, without finishing", extra={"signal": signum})
    os._exit(128 + signum)


@contextlib.contextmanager
def two_stage(
    first: Callable[[int], None],
    second: Callable[[int], None] | None = exit_now,
    signals: tuple[signal.Signals, ...] = TERMINATE,
) -> Iterator[None]:
    """Inside the block, the first of ``signals`` calls ``first(signum)``; any later one calls
    ``second(signum)`` (``None``: ``first`` again). Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        if received > 1 and second is not None:
            second(signum)
        else:
            first(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
