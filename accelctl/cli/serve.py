"""Long-running commands (metrics --listen, k8s device-plugin): run until SIGTERM or SIGINT,
then clean up and exit 0 (a DaemonSet's pod is stopped with SIGTERM: that is not a failure)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def serve_until_stopped(start: Callable[[], T], stop: Callable[[T], None]) -> None:
    """Catch SIGTERM/SIGINT first (a signal during start-up must not kill us half-started), then
    `start()`, block until a signal, then `stop(what start returned)`."""
    stopped = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopped.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        running = start()
        try:
            while not stopped.wait(3600):
                pass
        finally:
            stop(running)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
