"""Trackers, rings and DMA buffers on their own (no device)."""

from __future__ import annotations

import fcntl
import os

import pytest

from accelctl.driver.dma import BufferPool, DmaBuffer, IovaAllocator
from accelctl.driver.ring import CQE_SIZE, CompletionRing, SubmissionRing
from accelctl.driver.tracker import Completion, Request, RequestState, TrackerTable
from accelctl.errors import BufferBusyError, DriverError


def _req(log: list) -> Request:
    return Request(0x01, bytes(64), log.append)


def test_tags_are_reused_fifo_with_a_new_generation() -> None:
    table = TrackerTable(4)
    log: list = []
    first, second = _req(log), _req(log)
    table.assign(first)
    table.assign(second)
    first_cid = first.cid
    table.finish(first, Completion(0))
    later = [_req(log) for _ in range(3)]
    for r in later:
        assert table.assign(r)
    # FIFO: the freed tag 0 is handed out only after the never-used tags 2 and 3.
    assert [r.tag for r in later] == [2, 3, 0]
    assert later[2].cid != first_cid and later[2].cid & 0xFFF == first_cid & 0xFFF
    assert not table.assign(_req(log))  # every tracker in use


def test_stale_duplicate_and_bogus_cids_are_counted_not_completed() -> None:
    table = TrackerTable(8)
    log: list = []
    r = _req(log)
    table.assign(r)
    cid = r.cid
    assert table.lookup(cid) is r
    table.finish(r, Completion(0))
    assert table.lookup(cid) is None  # duplicate CQE after completion
    assert table.lookup(0xFFF) is None  # tag out of range
    r2 = _req(log)
    table.assign(r2)
    assert table.lookup(cid) is None or r2.cid == cid  # generation differs unless wrapped
    assert table.counters.stale_cqe >= 2
    assert log == [r]


def test_finish_is_exactly_once() -> None:
    table = TrackerTable(2)
    log: list = []
    r = _req(log)
    table.assign(r)
    r.state = RequestState.INFLIGHT
    assert table.finish(r, Completion(0))
    assert not table.finish(r, Completion(0x2, source="reset"))
    assert table.counters.double_finish == 1 and log == [r]
    strict = TrackerTable(2, strict=True)
    r = _req(log)
    strict.assign(r)
    strict.finish(r, Completion(0))
    with pytest.raises(DriverError):
        strict.finish(r, Completion(0))


def test_completion_ring_phase_flips_on_wrap_and_reset_clears_leftovers() -> None:
    mem = memoryview(bytearray(4 * CQE_SIZE))
    cq = CompletionRing(mem, 4)
    status = mem.cast("H")
    assert not cq.pending()
    for lap_phase in (1, 0, 1):
        for i in range(4):
            status[i * 8 + 7] = lap_phase | (0x2 << 1)
            assert cq.pending() and cq.peek_status() >> 1 == 0x2
            cq.advance()
            assert not cq.pending() or i < 3 and status[(i + 1) * 8 + 7] & 1 == cq.phase
    cq.reset()
    status[7] = 0  # nothing new
    assert not cq.pending()
    status[7] = 1
    assert cq.pending()


def test_submission_ring_keeps_one_slot_empty() -> None:
    sq = SubmissionRing(memoryview(bytearray(4 * 64)), 4)
    assert sq.free_slots == 3
    for _ in range(3):
        sq.advance()
    assert sq.free_slots == 0
    sq.update_head(2)
    assert sq.free_slots == 2


def test_dma_buffer_is_sealed_prefaulted_and_refcounted() -> None:
    buf = DmaBuffer(10_000)
    seals = fcntl.fcntl(buf.fd, fcntl.F_GET_SEALS)
    assert seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_GROW
    with pytest.raises(OSError):
        os.ftruncate(buf.fd, 0)
    buf.view[:5] = b"hello"
    assert buf.view[:5] == b"hello"
    buf.acquire()
    with pytest.raises(BufferBusyError):
        buf.close()
    buf.release()
    buf.close()
    buf.close()  # idempotent
    with pytest.raises(DriverError):
        buf.acquire()


def test_iova_allocator_reuses_and_coalesces() -> None:
    iovas = IovaAllocator(base=0x1000, limit=0x1000 + 3 * 4096)
    a, b, c = (iovas.allocate(4096) for _ in range(3))
    with pytest.raises(DriverError):
        iovas.allocate(1)
    iovas.free(b, 4096)
    iovas.free(a, 4096)
    assert iovas.allocate(8192) == a
    del c


def test_buffer_pool_reuses_buffers() -> None:
    made: list[DmaBuffer] = []

    def factory(size: int) -> DmaBuffer:
        made.append(DmaBuffer(size))
        return made[-1]

    pool = BufferPool(factory)
    a = pool.get(100)
    pool.put(a)
    assert pool.get(4000) is a
    pool.put(a)
    assert len(made) == 1
    pool.close()
    assert a.closed
