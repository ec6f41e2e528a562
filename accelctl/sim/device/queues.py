"""Device-side view of one submission / completion queue ring in host (client) memory."""

from __future__ import annotations

from accelctl.protocol import abi

from .iova import Mapping


class DeviceCQ:
    __slots__ = ("qid", "entries", "mem", "hwords", "mapping", "tail", "phase", "head_index", "head_seen",
                 "vector", "irq_enabled", "sq_count", "irq_pending")

    def __init__(self, qid: int, entries: int, mem: memoryview, mapping: Mapping, vector: int,
                 irq_enabled: bool) -> None:
        self.qid = qid
        self.entries = entries
        self.mem = mem
        self.hwords = mem.cast("H")
        self.mapping = mapping
        self.tail = 0
        self.phase = 1
        self.head_index = abi.cq_doorbell_index(qid)
        #: The CQ head doorbell as last read: re-read only when the CQ looks full against it
        #: (the real head is never behind it, so this never posts into a full CQ).
        self.head_seen = 0
        self.vector = vector
        self.irq_enabled = irq_enabled
        self.sq_count = 0
        self.irq_pending = False
        mapping.queue_refs += 1

    def release(self) -> None:
        self.hwords.release()
        self.mem.release()
        self.mapping.queue_refs -= 1


class DeviceSQ:
    __slots__ = ("qid", "entries", "mem", "mapping", "head", "tail_index", "flags_index", "cq")

    def __init__(self, qid: int, entries: int, mem: memoryview, mapping: Mapping, cq: DeviceCQ) -> None:
        self.qid = qid
        self.entries = entries
        self.mem = mem
        self.mapping = mapping
        self.head = 0
        self.tail_index = abi.sq_doorbell_index(qid)
        self.flags_index = abi.sq_flags_index(qid)
        self.cq = cq
        cq.sq_count += 1
        mapping.queue_refs += 1

    def release(self) -> None:
        self.mem.release()
        self.mapping.queue_refs -= 1
        self.cq.sq_count -= 1


class HeldCommand:
    """A command whose completion the device holds back: an async event request waiting for an
    event, or a completion delayed by fault injection (``deadline`` in perf_counter seconds)."""

    __slots__ = ("sq", "cid", "opcode", "status", "result", "deadline")

    def __init__(self, sq: DeviceSQ, cid: int, opcode: int, status: int, result: int,
                 deadline: float | None) -> None:
        self.sq = sq
        self.cid = cid
        self.opcode = opcode
        self.status = status
        self.result = result
        self.deadline = deadline
