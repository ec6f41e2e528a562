"""Long-running commands (metrics --listen, k8s device-plugin): run until SIGTERM or SIGINT,
then clean up and exit 0 (a DaemonSet's pod is stopped with SIGTERM: that is not a failure)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def serve_until_stopped(cleanup: Callable[[], None], stop: threading.Event | None = None) -> None:
    """Block until SIGTERM/SIGINT (or `stop` is set), then call `cleanup`."""
    stop = stop or threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(3600):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        cleanup()
