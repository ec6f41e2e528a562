"""Device memory allocations: which session owns which range of an endpoint's memory.

Device memory was one space every session read and wrote: one session read and overwrote
another's bytes. Now a session may allocate ranges (MEM_ALLOC); while it holds one, every other
session's command that touches it is refused with ACCESS_DENIED and touches nothing (the check is
on the device side, like an IOMMU's). An allocation is zeroed when it is made and when it is freed
(MEM_FREE, the session's release, or a device reset that makes the session stale), so no session
reads what another left there.

Memory nobody allocated stays what it was: the device's shared scratch space, persisted across
commands, which one-shot commands (``accelctl io write`` then ``io read``) use. Allocations at no
particular address are placed from the top of memory down, away from the low addresses those use.

Each session holds ``denied``: the ranges other sessions own, a tuple replaced (never mutated)
whenever the table changes, so the engine's check needs no lock and costs nothing while no
session allocates anything.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

#: Allocations start and end on this boundary.
ALIGN = 4096
MAX_ALLOCATIONS_PER_SESSION = 64
#: One peer process may hold at most this share of an endpoint's memory.
PEER_SHARE = 2


class Owner(Protocol):
    id: int
    peer_pid: int | None
    denied: tuple[tuple[int, int], ...]
    lock: threading.RLock


class DeviceMemoryError(OSError):
    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)


@dataclass(frozen=True)
class Allocation:
    start: int
    size: int
    owner: int  # session id
    peer_pid: int | None

    @property
    def end(self) -> int:
        return self.start + self.size


def overlaps(ranges: tuple[tuple[int, int], ...], start: int, length: int) -> bool:
    """Whether [start, start+length) meets any of ``ranges`` ((start, end) pairs)."""
    end = start + length
    for a, b in ranges:
        if start < b and a < end:
            return True
    return False


class DeviceMemoryMap:
    """The allocation table of one endpoint. Called on the control thread."""

    def __init__(self, size: int, scrub: Callable[[int, int], None]) -> None:
        self.size = size
        self._scrub = scrub
        self._allocs: list[Allocation] = []  # sorted by start
        self._owners: dict[int, Owner] = {}
        self._lock = threading.Lock()

    def register(self, owner: Owner) -> None:
        with self._lock:
            self._owners[owner.id] = owner
            owner.denied = self._denied_for(owner.id)

    def owned_by(self, owner_id: int) -> list[Allocation]:
        return [a for a in self._allocs if a.owner == owner_id]

    def alloc(self, owner: Owner, address: int | None, size: int) -> int:
        """Allocate ``size`` bytes for ``owner`` (at ``address``, or wherever fits); the start.

        The range is published as denied to every other session, then each of them finishes
        the processing pass it may be in (a command that started before could still be moving
        data there), then the range is zeroed: the owner starts from zeros, nobody else gets in."""
        if size <= 0 or size % ALIGN or (address is not None and address % ALIGN):
            raise DeviceMemoryError(errno.EINVAL, f"address and size must be multiples of {ALIGN} and size > 0")
        with self._lock:
            mine = self.owned_by(owner.id)
            if len(mine) >= MAX_ALLOCATIONS_PER_SESSION:
                raise DeviceMemoryError(errno.ENOSPC, f"at most {MAX_ALLOCATIONS_PER_SESSION} allocations per session")
            held = sum(a.size for a in self._allocs if a.peer_pid == owner.peer_pid)
            if held + size > self.size // PEER_SHARE:
                raise DeviceMemoryError(errno.ENOSPC, f"a process may hold at most 1/{PEER_SHARE} of device memory "
                                                      f"({self.size // PEER_SHARE} bytes; holds {held})")
            start = self._place(address, size)
            self._allocs.append(Allocation(start, size, owner.id, owner.peer_pid))
            self._allocs.sort(key=lambda a: a.start)
            others = self._publish()
        for other in others:
            if other is not owner:
                with other.lock:  # wait out a pass that began before the range was denied
                    pass
        self._scrub(start, size)
        return start

    def _place(self, address: int | None, size: int) -> int:
        if address is not None:
            if address + size > self.size:
                raise DeviceMemoryError(errno.EINVAL, f"{address:#x}+{size:#x} is beyond device memory ({self.size:#x})")
            if any(a.start < address + size and address < a.end for a in self._allocs):
                raise DeviceMemoryError(errno.EBUSY, f"{address:#x}+{size:#x} overlaps another allocation")
            return address
        # highest gap first: one-shot commands use the low addresses of the shared scratch space
        top = self.size
        for a in reversed(self._allocs):
            if top - a.end >= size:
                return top - size
            top = a.start
        if top >= size:
            return top - size
        raise DeviceMemoryError(errno.ENOMEM, f"no free range of {size} bytes in device memory")

    def free(self, owner: Owner, address: int) -> None:
        with self._lock:
            found = next((a for a in self._allocs if a.start == address and a.owner == owner.id), None)
            if found is None:
                raise DeviceMemoryError(errno.ENOENT, f"this session has no allocation at {address:#x}")
        self._scrub(found.start, found.size)  # still denied to the others while it is zeroed
        with self._lock:
            self._allocs.remove(found)
            self._publish()

    def release(self, owner: Owner, *, unregister: bool) -> None:
        """Free (and zero) everything ``owner`` holds; with ``unregister``, forget it."""
        with self._lock:
            mine = self.owned_by(owner.id)
        for a in mine:
            self._scrub(a.start, a.size)
        with self._lock:
            self._allocs = [a for a in self._allocs if a.owner != owner.id]
            if unregister:
                self._owners.pop(owner.id, None)
            self._publish()

    def _publish(self) -> list[Owner]:
        for oid, o in self._owners.items():
            o.denied = self._denied_for(oid)
        return list(self._owners.values())

    def _denied_for(self, owner_id: int) -> tuple[tuple[int, int], ...]:
        return tuple((a.start, a.end) for a in self._allocs if a.owner != owner_id)

    def describe(self, owner_id: int) -> list[dict[str, int]]:
        return [{"address": a.start, "size": a.size} for a in self.owned_by(owner_id)]
