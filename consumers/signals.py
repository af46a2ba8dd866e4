"""Stopping a long-running process cleanly: SIGTERM and SIGINT set an event the loop checks,
so the current batch or page commits before the process exits.

A process blocked where nothing is half done (connecting to a database that refuses
connections, sleeping between reconnect attempts, a library's own retry loop) should not
wait for the block to end: inside `interruptible()`, a stop signal also raises
`StopRequested` at once, out of whatever call is blocking.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class StopRequested(BaseException):
    """SIGTERM or SIGINT arrived inside `interruptible()`.

    A BaseException, like KeyboardInterrupt, so no `except Exception` in a library's retry
    loop swallows it on the way out."""


# Depth of `interruptible()` blocks in the main thread (signal handlers run there).
_interruptible_depth = 0


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (instead of dying mid-batch); handlers restored after."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        if _interruptible_depth:
            raise StopRequested(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def interruptible(stop: threading.Event) -> Iterator[None]:
    """A block that a stop signal ends at once with StopRequested (also if already stopped).

    Only for work that may be abandoned at any instant: reads, connecting, waiting."""
    global _interruptible_depth
    if stop.is_set():
        raise StopRequested(0)
    _interruptible_depth += 1
    try:
        yield
    finally:
        _interruptible_depth -= 1
