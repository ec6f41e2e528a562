"""Submission and completion rings over shared memory: index arithmetic and phase. Pure, no I/O.

The host is the only producer of the SQ and the only consumer of the CQ, so each ring keeps its
own index privately and publishes it through a doorbell (done by the caller, once per batch).

CQ rules that matter (driver-core.md pitfalls 1-3):
- the CQ memory is zeroed and the expected phase set to 1 at every (re)creation, so a leftover
  entry from before a reset never looks valid;
- the status word (with the phase bit) is read first and the rest of the entry only after it
  matched: the device writes the body first and the status word last;
- the SQ head the device reports in each CQE is what frees SQ slots.
"""

from __future__ import annotations

from accelctl.protocol.abi import CQE_SIZE, CQE_STATUS_HWORD, SQE_SIZE


class SubmissionRing:
    """The host side of one SQ: where the next entry goes and how many slots are free."""

    __slots__ = ("mem", "depth", "tail", "head")

    def __init__(self, mem: memoryview, depth: int) -> None:
        if len(mem) < depth * SQE_SIZE:
            raise ValueError(f"SQ memory of {len(mem)} bytes is too small for {depth} entries")
        self.mem = mem
        self.depth = depth
        self.tail = 0
        self.head = 0

    def reset(self) -> None:
        self.mem[: self.depth * SQE_SIZE] = bytes(self.depth * SQE_SIZE)
        self.tail = 0
        self.head = 0

    @property
    def free_slots(self) -> int:
        # One slot stays empty so that head == tail means "empty", never "full".
        return (self.head - self.tail - 1) % self.depth

    def next_offset(self) -> int:
        """Byte offset of the entry at the tail; the caller fills it then calls :meth:`advance`."""
        return self.tail * SQE_SIZE

    def advance(self) -> None:
        self.tail = (self.tail + 1) % self.depth

    def release(self) -> None:
        self.mem.release()

    def update_head(self, sqhd: int) -> None:
        if 0 <= sqhd < self.depth:
            self.head = sqhd


class CompletionRing:
    """The host side of one CQ: phase tracking and the head index."""

    __slots__ = ("mem", "depth", "head", "phase", "_status")

    def __init__(self, mem: memoryview, depth: int) -> None:
        if len(mem) < depth * CQE_SIZE:
            raise ValueError(f"CQ memory of {len(mem)} bytes is too small for {depth} entries")
        self.mem = mem
        self.depth = depth
        # The status word of entry i is u16 index i*8+CQE_STATUS_HWORD of the CQ viewed as u16.
        self._status = mem[: depth * CQE_SIZE].cast("H")
        self.head = 0
        self.phase = 1

    def reset(self) -> None:
        """Zero the ring and expect phase 1 again (at creation and after every reset)."""
        self.mem[: self.depth * CQE_SIZE] = bytes(self.depth * CQE_SIZE)
        self.head = 0
        self.phase = 1

    def pending(self) -> bool:
        return (self._status[self.head * 8 + CQE_STATUS_HWORD] & 1) == self.phase

    def peek_status(self) -> int:
        """The raw status word at the head, or -1 when the entry is not new (phase mismatch)."""
        word = self._status[self.head * 8 + CQE_STATUS_HWORD]
        return word if (word & 1) == self.phase else -1

    def head_offset(self) -> int:
        return self.head * CQE_SIZE

    def advance(self) -> None:
        head = self.head + 1
        if head == self.depth:
            head = 0
            self.phase ^= 1
        self.head = head

    def release(self) -> None:
        self._status.release()
        self.mem.release()
