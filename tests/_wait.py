"""Waiting in a test for something the code under test will do.

The deadline is a hang guard, never a speed claim: a busy 2-core CI machine may take many times
longer than a developer's laptop, so a test waits until the thing happened (and then counts what
the code did), and only gives up when it clearly never will. Speed belongs in benchmarks/.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Long enough that no amount of machine load reaches it; short enough that a hang fails the run.
HANG_GUARD_S = 60.0


def wait_until(predicate: Callable[[], object], *, timeout: float = HANG_GUARD_S, interval: float = 0.01) -> bool:
    """Poll `predicate` until it is true (True) or the hang guard passes (its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
