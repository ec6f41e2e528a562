"""Notification: eventfds (interrupts and kicks), epoll, and the wait strategies.

- ``interrupt``: sleep in epoll on the completion eventfds; ~13-16 us round trip here.
- ``poll``: spin on the rings in the caller's thread; ~1.7 us, burns a core.
- ``hybrid``: spin for ``spin_us`` then sleep; ~2.5 us when the device is quick.

The host kicks the device at most once per doorbell batch. With a device that offers
NEED_WAKEUP (ABI 1.1) it skips the kick while the engine is awake; that needs the store->load
fence handshake of driver-core.md 2.3 on both sides (``make_fence``), else it always kicks.
The CQ eventfd is drained *before* scanning the ring, so a completion posted during the scan
re-arms it instead of being lost (pitfall 9).
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from enum import Enum


class WaitMode(str, Enum):
    INTERRUPT = "interrupt"
    HYBRID = "hybrid"
    POLL = "poll"


class EventFd:
    """A non-blocking, close-on-exec eventfd."""

    __slots__ = ("fd",)

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd if fd is not None else os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def fileno(self) -> int:
        return self.fd

    def signal(self) -> None:
        os.eventfd_write(self.fd, 1)

    def drain(self) -> int:
        """Reset the counter; returns how many signals were pending (0 when none)."""
        try:
            return os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Waiter:
    """The epoll set a session sleeps on, and its wait strategy (the controller's wait loops use
    ``mode`` and ``spin_ns``; the waiter itself never reaps, so callbacks stay in the caller's
    thread).

    Besides the completion eventfds, "watch" fds (the control socket, the device-event eventfd)
    are in the same epoll set: when one fires, ``on_watch(fd)`` runs, so a dead daemon or a
    fatal device status wakes a sleeping waiter at once instead of after a command timeout. In
    poll mode they are looked at once a millisecond (an ``epoll.poll(0)`` costs ~0.25 us).
    """

    def __init__(self, mode: WaitMode | str = WaitMode.INTERRUPT, *, spin_us: float = 50.0) -> None:
        self.mode = WaitMode(mode)
        self.spin_ns = int(spin_us * 1000)
        self._epoll = select.epoll()
        self._fds: set[int] = set()
        self._watch: dict[int, Callable[[int], None]] = {}
        #: False right after a sleep that ended by timeout (no fd fired): in interrupt mode the
        #: caller then skips reaping, so a completion without its interrupt is found only by the
        #: timeout path and counted as "completion polled" (a lost interrupt), not hidden.
        self.woken = True

    def add(self, fd: int) -> None:
        if fd not in self._fds:
            self._epoll.register(fd, select.EPOLLIN)
            self._fds.add(fd)

    def watch(self, fd: int, on_watch: Callable[[int], None]) -> None:
        self.add(fd)
        self._watch[fd] = on_watch

    def remove(self, fd: int) -> None:
        self._watch.pop(fd, None)
        if fd in self._fds:
            self._fds.discard(fd)
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def fileno(self) -> int:
        """The epoll fd: readable when any completion eventfd is (plug it into another loop)."""
        return self._epoll.fileno()

    def _poll(self, timeout_s: float) -> None:
        events = self._epoll.poll(timeout_s)
        self.woken = bool(events)
        if self._watch:
            for fd, _ in events:
                hook = self._watch.get(fd)
                if hook is not None:
                    hook(fd)

    def sleep(self, timeout_s: float) -> None:
        """Block until an eventfd fires or ``timeout_s`` passes (watch hooks run)."""
        self._poll(max(0.0, timeout_s))

    def close(self) -> None:
        self._epoll.close()
        self._fds.clear()
        self._watch.clear()
