"""What one client may make the daemon hold: connections and file descriptors, per peer process.

Every session costs the daemon file descriptors (its socket, the doorbell page, the engine's
epoll and wake-up eventfd, one per kick / interrupt eventfd, one per DMA mapping: Python's mmap
keeps a duplicate of the memfd). The process has a hard limit on them; before these quotas, one
client with 1,000 DMA mappings exhausted it and the daemon could accept nobody (or died on
EMFILE). Now each peer (a process, by SO_PEERCRED pid) has a budget, the daemon as a whole keeps a
reserve for accepting and answering, and a request beyond either is refused (ENOSPC, or the
connection is closed at accept) so it hurts only the peer that asked.

Processes of one uid are one principal to the operating system (security.md); a user who forks
many processes is bounded only by the daemon-wide limit, as by the kernel's own.
"""

from __future__ import annotations

import errno
import resource
from collections.abc import Iterable
from typing import Protocol

#: Connections one peer process may hold across every endpoint of the daemon (a runtime with two
#: sessions on each of 16 endpoints needs 32; an idle-connection flood stops here).
MAX_CONNECTIONS_PER_PEER = 64
#: Connections per endpoint, from every peer together.
MAX_CONNECTIONS_PER_ENDPOINT = 256
#: Descriptors always kept free for accepting, answering and the daemon's own files.
FD_RESERVE = 64
#: A session's fixed cost: socket, doorbell memfd + its mapping, engine epoll + wake eventfd.
SESSION_BASE_FDS = 5
#: No single peer gets more than this share of the usable descriptors.
PEER_SHARE = 8
MIN_PEER_FDS = 64


class Costed(Protocol):
    peer_pid: int | None

    def fd_cost(self) -> int: ...


class QuotaError(OSError):
    """A request beyond a quota (errno ENOSPC)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)


def raise_fd_limit() -> int:
    """Raise this process's soft descriptor limit to the hard one; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class FdBudget:
    """Decides whether a peer may make the daemon hold ``n`` more descriptors."""

    def __init__(self, fd_limit: int) -> None:
        self.usable = max(0, fd_limit - FD_RESERVE)
        self.per_peer = max(MIN_PEER_FDS, self.usable // PEER_SHARE)

    def check(self, sessions: Iterable[Costed], peer_pid: int | None, more: int, what: str) -> None:
        """Raise QuotaError when ``more`` descriptors for ``peer_pid`` exceed its budget or the
        daemon's. ``sessions`` is every live session of the daemon."""
        total = mine = 0
        for s in sessions:
            cost = s.fd_cost()
            total += cost
            if s.peer_pid == peer_pid:
                mine += cost
        if mine + more > self.per_peer:
            raise QuotaError(f"{what}: this process already makes the device hold {mine} descriptors "
                             f"(at most {self.per_peer} per process)")
        if total + more > self.usable:
            raise QuotaError(f"{what}: the device holds {total} descriptors (at most {self.usable})")
