"""DMA buffers: sealed memfds, pre-faulted, refcounted while commands use them, pooled.

A :class:`DmaBuffer` is host memory the device may read and write. It is backed by a memfd so the
simulator daemon (playing the kernel + IOMMU) can map the same pages: the data path never copies.
The memfd is sealed against shrinking and growing so a truncate can never SIGBUS the daemon
(driver-core.md pitfall 17), and every page is faulted in at allocation (first touch runs at
~1 GB/s against ~15 GB/s warm, driver-core.md 2.4).

Registration with a device ("pinning") is done by the session, which owns the control channel;
this module only records the IOVA and enforces the rule that a buffer in use by a command can be
neither unregistered nor closed.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from collections import deque
from typing import Any

from accelctl.errors import BufferBusyError, DriverError

PAGE_SIZE = mmap.PAGESIZE
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


def round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


class DmaBuffer:
    """Page-aligned host memory shared with the device through a sealed memfd.

    ``view`` is a writable memoryview of the whole buffer; ``numpy()`` and ``torch`` views alias it.
    ``refs`` counts in-flight commands (and explicit :meth:`acquire` holders); while it is non-zero
    the buffer cannot be unregistered or closed, because the device may still touch it.
    """

    __slots__ = ("size", "fd", "_map", "view", "iova", "refs", "closed", "_owner", "__weakref__")

    def __init__(self, size: int, *, name: str = "accelctl-dma") -> None:
        if size <= 0:
            raise ValueError(f"DMA buffer size must be positive, got {size}")
        self.size = size
        mapped = round_up(size, PAGE_SIZE)
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, mapped)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            self._map = mmap.mmap(fd, mapped, flags=flags)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.view = memoryview(self._map)[:size]
        self.iova: int | None = None
        self.refs = 0
        self.closed = False
        #: The registrar (session) this buffer is registered with, or None.
        self._owner: Any = None

    # -- lifetime ---------------------------------------------------------------------------

    def acquire(self) -> None:
        """Take a reference: the device may touch this buffer until :meth:`release`."""
        if self.closed:
            raise DriverError("DMA buffer is closed")
        self.refs += 1

    def release(self) -> None:
        if self.refs <= 0:
            raise DriverError("DMA buffer released more often than acquired")
        self.refs -= 1

    def abandon(self) -> None:
        """Free this process's side (map, fd) without unregistering: for a buffer whose session
        is gone, so the device has dropped its mapping already. Never refused."""
        if self.closed:
            return
        self.closed = True
        self.iova = None
        self._owner = None
        try:
            self.view.release()
            self._map.close()
        except BufferError:
            pass  # aliased (numpy, tensors): the map goes with the last alias
        os.close(self.fd)

    @property
    def registered(self) -> bool:
        return self.iova is not None

    def close(self) -> None:
        """Unregister (when registered) and free the memory. Idempotent; refused while in use."""
        if self.closed:
            return
        if self.refs:
            raise BufferBusyError(f"DMA buffer of {self.size} bytes is in use by {self.refs} command(s)")
        # numpy / torch / memoryview slices alias the memory: closing under them would leave
        # them pointing at unmapped pages, so refuse (before unregistering anything).
        try:
            self.view.release()
            self._map.close()
        except BufferError:
            self.view = memoryview(self._map)[: self.size]
            raise BufferBusyError(
                "DMA buffer is still aliased by views (numpy arrays, tensors, memoryview slices); "
                "drop them before closing it") from None
        if self._owner is not None:
            try:
                self._owner.unregister(self)
            except BaseException:
                # The memory is gone locally; the daemon releases its mapping with the session.
                self._owner = None
                raise
        os.close(self.fd)
        self.closed = True

    def __enter__(self) -> DmaBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- access -----------------------------------------------------------------------------

    def numpy(self, dtype: str = "uint8") -> Any:
        """A numpy array aliasing the buffer (zero-copy). numpy is imported only here."""
        import numpy

        return numpy.frombuffer(self.view, dtype=dtype)

    def device_address(self, offset: int = 0, length: int | None = None) -> tuple[int, int]:
        """(iova, length) of a range of this buffer, bounds-checked, for a command's data pointer."""
        if self.iova is None:
            raise DriverError("DMA buffer is not registered with a device")
        if length is None:
            length = self.size - offset
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"range {offset}+{length} outside a {self.size}-byte DMA buffer")
        return self.iova + offset, length

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"iova={self.iova!r} refs={self.refs}"
        return f"DmaBuffer(size={self.size}, {state})"


class IovaAllocator:
    """Hands out page-aligned I/O virtual address ranges of one session (first fit, coalescing)."""

    def __init__(self, base: int = 0x1_0000_0000, limit: int = 1 << 46) -> None:
        # Ranges start well above zero so an uninitialised data pointer (0) is never a valid IOVA.
        self._free: list[tuple[int, int]] = [(base, limit - base)]

    def allocate(self, size: int) -> int:
        size = round_up(size, PAGE_SIZE)
        for i, (start, length) in enumerate(self._free):
            if length >= size:
                if length == size:
                    del self._free[i]
                else:
                    self._free[i] = (start + size, length - size)
                return start
        raise DriverError(f"I/O address space exhausted allocating {size} bytes")

    def free(self, iova: int, size: int) -> None:
        size = round_up(size, PAGE_SIZE)
        self._free.append((iova, size))
        self._free.sort()
        merged: list[tuple[int, int]] = []
        for start, length in self._free:
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + length)
            else:
                merged.append((start, length))
        self._free = merged


class BufferPool:
    """Registered buffers in power-of-two size classes, reused so hot paths never allocate.

    ``get(n)`` returns a registered buffer of at least ``n`` bytes; ``put(buf)`` gives it back.
    Buffers are created by ``factory(size)`` (the session's ``alloc_dma``) on a miss only.
    """

    def __init__(self, factory: Any, *, min_size: int = PAGE_SIZE, max_cached_per_class: int = 64) -> None:
        self._factory = factory
        self._min = min_size
        self._max_cached = max_cached_per_class
        self._classes: dict[int, deque[DmaBuffer]] = {}
        self._all: list[DmaBuffer] = []

    def _size_class(self, size: int) -> int:
        cls = self._min
        while cls < size:
            cls <<= 1
        return cls

    def get(self, size: int) -> DmaBuffer:
        cls = self._size_class(size)
        free = self._classes.get(cls)
        if free:
            return free.popleft()
        buf = self._factory(cls)
        self._all.append(buf)
        return buf

    def put(self, buf: DmaBuffer) -> None:
        free = self._classes.setdefault(buf.size, deque())
        if len(free) >= self._max_cached:
            self._all.remove(buf)
            buf.close()
        else:
            free.append(buf)

    def prefill(self, size: int, count: int) -> None:
        bufs = [self.get(size) for _ in range(count)]
        for b in bufs:
            self.put(b)

    @property
    def buffers(self) -> list[DmaBuffer]:
        return list(self._all)

    def abandon(self) -> None:
        """Free every buffer's local side without a word to the device (DmaBuffer.abandon)."""
        for buf in self._all:
            buf.abandon()
        self._all.clear()
        self._classes.clear()

    def close(self) -> None:
        """Close every buffer the pool created; refused (BufferBusyError) for one still in use."""
        for buf in self._all:
            buf.close()
        self._all.clear()
        self._classes.clear()
