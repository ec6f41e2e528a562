"""A session's IOVA map: the "IOMMU" between one connection's DMA addresses and its memfds.

Every data pointer of every command is translated here, against the map of the connection that
sent the command, so one client can never name another client's memory: isolation is a bounds
check. Memfds must be sealed against shrinking (F_SEAL_SHRINK), otherwise a client could truncate
a mapped file and SIGBUS the daemon.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import mmap
import os
from dataclasses import dataclass

from accelctl.protocol import abi

MAX_MAPPINGS = 1024
MAX_IOVA = 1 << 52


class IovaError(OSError):
    """A DMA_MAP / DMA_UNMAP request that the map refuses (carries an errno)."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)


@dataclass
class Mapping:
    iova: int
    size: int
    flags: int
    mm: mmap.mmap
    view: memoryview
    inode: int
    queue_refs: int = 0  # live queue rings inside this mapping (unmap refused while > 0)

    @property
    def end(self) -> int:
        return self.iova + self.size


class IovaMap:
    def __init__(self) -> None:
        self._starts: list[int] = []
        self._maps: list[Mapping] = []

    def __len__(self) -> int:
        return len(self._maps)

    def map(self, fd: int, iova: int, size: int, offset: int, flags: int) -> Mapping:
        """Map ``size`` bytes of memfd ``fd`` at ``iova``. Does not take ownership of ``fd``."""
        page = abi.DMA_PAGE_SIZE
        if size <= 0 or iova % page or size % page or offset % page or iova + size > MAX_IOVA:
            raise IovaError(errno.EINVAL, "iova, size and offset must be page-aligned and size > 0")
        if not flags & (abi.DmaFlags.READ | abi.DmaFlags.WRITE) or flags & ~0x3:
            raise IovaError(errno.EINVAL, f"bad DMA flags {flags:#x}")
        if len(self._maps) >= MAX_MAPPINGS:
            raise IovaError(errno.ENOSPC, f"more than {MAX_MAPPINGS} DMA mappings")
        i = bisect.bisect_right(self._starts, iova)
        if (i > 0 and self._maps[i - 1].end > iova) or (i < len(self._maps) and self._maps[i].iova < iova + size):
            raise IovaError(errno.EEXIST, f"IOVA range {iova:#x}+{size:#x} overlaps a mapping")
        try:
            st = os.fstat(fd)
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError as exc:
            raise IovaError(errno.EINVAL, f"not a memfd: {exc.strerror}") from None
        if not seals & fcntl.F_SEAL_SHRINK:
            raise IovaError(errno.EPERM, "memfd must be sealed with F_SEAL_SHRINK")
        if st.st_size < offset + size:
            raise IovaError(errno.EINVAL, "memfd is smaller than offset + size")
        try:
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, offset=offset)
        except (OSError, ValueError) as exc:
            raise IovaError(errno.EINVAL, f"cannot map: {exc}") from None
        m = Mapping(iova, size, flags, mm, memoryview(mm), st.st_ino)
        self._starts.insert(i, iova)
        self._maps.insert(i, m)
        return m

    def unmap(self, iova: int, size: int) -> None:
        i = bisect.bisect_left(self._starts, iova)
        if i >= len(self._maps) or self._maps[i].iova != iova or self._maps[i].size != size:
            raise IovaError(errno.ENOENT, f"no mapping exactly at {iova:#x}+{size:#x}")
        if self._maps[i].queue_refs:
            raise IovaError(errno.EBUSY, "a live queue ring lies in this mapping")
        m = self._maps.pop(i)
        del self._starts[i]
        _release(m)

    def clear(self) -> None:
        for m in self._maps:
            _release(m)
        self._maps.clear()
        self._starts.clear()

    def find(self, iova: int, length: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, iova) - 1
        if i < 0:
            return None
        m = self._maps[i]
        if iova + length > m.end or length < 0:
            return None
        return m

    def translate(self, iova: int, length: int, need: int) -> memoryview | None:
        """The host memory [iova, iova+length) if it lies inside ONE mapping with ``need`` access."""
        i = bisect.bisect_right(self._starts, iova) - 1
        if i < 0:
            return None
        m = self._maps[i]
        off = iova - m.iova
        if off + length > m.size or length < 0 or (m.flags & need) != need:
            return None
        return m.view[off : off + length]

    def describe(self) -> list[dict[str, int]]:
        return [
            {"iova": m.iova, "size": m.size, "flags": m.flags, "queue_refs": m.queue_refs, "inode": m.inode}
            for m in self._maps
        ]


def _release(m: Mapping) -> None:
    m.view.release()
    try:
        m.mm.close()
    except BufferError:
        # A slice is still referenced (a command being torn down); the mmap closes when it goes.
        pass
