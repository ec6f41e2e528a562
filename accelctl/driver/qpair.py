"""A queue pair: one SQ + one CQ in shared memory, their doorbells, kick and interrupt eventfds.

The hot path (driver-core.md 2.1: ~0.85 us of Python per command at batch >= 32):
submit = take a tracker, pack the SQE in place, advance the tail; the doorbell store and the
kick happen once per batch. Reaping = read the status word, unpack the CQE, look the CID up,
``finish()``; the CQ head doorbell is rung once per reap batch.

Flow control: the number of trackers is ``depth - reap_cap`` so the device never faces a full CQ
(SPDK ``num_trackers``); commands beyond that, or submitted while the qpair is not ENABLED (reset
in progress), wait in a FIFO and go out in order as trackers free up.

A qpair belongs to one thread. Callbacks run inside :meth:`process_completions` (or the sync
wait that calls it), never on another thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from accelctl.protocol import abi
from accelctl.driver.notify import EventFd
from accelctl.driver.ring import CompletionRing, SubmissionRing
from accelctl.driver.tracker import Completion, Request, RequestState, TrackerTable
from accelctl.errors import QueueFullError

if TYPE_CHECKING:
    from accelctl.driver.controller import Controller

#: The CQE body without the status word: read only after the status word showed a new phase.
CQE_BODY = abi.CQE_BODY
_SQE_CID_HWORD = abi.SQE_CID_OFFSET // 2  # the cid as u16 index within one SQE


def reap_cap_for(depth: int) -> int:
    return max(1, min(depth // 4, 128))


class QueueState:
    """Plain constants (compared with ``is``) rather than an Enum: checked per submission."""

    ENABLED = "enabled"
    DISABLED = "disabled"  # controller resetting: new work queues up
    FAILED = "failed"  # device failed or removed: new work fails at once
    DELETED = "deleted"


class QueuePair:
    def __init__(
        self,
        controller: Controller | None,
        qid: int,
        depth: int,
        sq_mem: memoryview,
        cq_mem: memoryview,
        doorbells: memoryview,
        sq_doorbell_index: int,
        cq_doorbell_index: int,
        kick: EventFd,
        irq: EventFd,
        *,
        strict: bool = False,
    ) -> None:
        self.controller = controller
        self.qid = qid
        self.depth = depth
        self.sq = SubmissionRing(sq_mem, depth)
        self._sq_u16 = sq_mem[: depth * abi.SQE_SIZE].cast("H")
        self.cq = CompletionRing(cq_mem, depth)
        self._doorbells = doorbells  # memoryview cast("I") of the doorbell page
        self._sq_db = sq_doorbell_index
        self._cq_db = cq_doorbell_index
        self.kick = kick
        self.irq = irq
        self.reap_cap = reap_cap_for(depth)
        self.trackers = TrackerTable(max(1, depth - self.reap_cap), strict=strict)
        self.queued: deque[Request] = deque()
        #: In-flight requests in submission order, for the timeout scan (finished ones are skipped).
        self.timeline: deque[Request] = deque()
        self.state = QueueState.ENABLED
        self.default_timeout_s: float | None = None
        #: Set by the controller when this qpair is not the one to drain the irq eventfd.
        self.drain_irq = True
        self._in_completion = False
        #: CQ entries consumed since the CQ head doorbell was last written (< reap_cap). The
        #: doorbell is written once per reap_cap entries, not per reaping call: the device reads
        #: it only when the CQ looks full, and with trackers = depth - reap_cap the entries it
        #: cannot yet reuse stay below depth (unrung < reap_cap, in flight <= trackers), so the
        #: CQ still never overflows; saves a store and a cache-line transfer per call.
        self._cq_unrung = 0
        #: NEED_WAKEUP handshake (see _ring): the fence, None = always kick.
        self._fence: Any = None
        self._sq_flags = abi.sq_flags_index(qid)
        self.kicks_sent = 0
        self.kicks_skipped = 0

    # -- submission -------------------------------------------------------------------------

    def _place(self, req: Request, now: float, publish: bool = False) -> bool:
        """Write ``req`` into the SQ if a tracker and a slot are free. No kick; with ``publish``
        the new tail is stored in the SQ doorbell at once, before the host-only bookkeeping, so
        the device starts on the command while the host finishes it (then ``_ring(False)`` does
        only the NEED_WAKEUP handshake).

        (SubmissionRing.free_slots / advance and TrackerTable.assign, inlined: this runs once
        per command.)"""
        sq = self.sq
        tail = sq.tail
        depth = sq.depth
        trackers = self.trackers
        free = trackers.free
        if (sq.head - tail - 1) % depth == 0 or not free:
            return False
        tag = free.popleft()
        gen = (trackers.gens[tag] + 1) & 0xF
        trackers.gens[tag] = gen
        trackers.slots[tag] = req
        req.tag = tag
        cid = req.cid = (gen << 12) | tag
        off = tail * 64
        sq.mem[off:off + 64] = req.sqe
        self._sq_u16[(off >> 1) + _SQE_CID_HWORD] = cid
        tail += 1
        sq.tail = tail = 0 if tail == depth else tail
        if publish:
            self._doorbells[self._sq_db] = tail
        req.state = 1  # RequestState.INFLIGHT
        trackers.counters.submitted += 1
        if req.timeout_s is not None:
            req.deadline = now + req.timeout_s
            self.timeline.append(req)
        return True

    def _ring(self, store_tail: bool = True) -> None:
        """Publish the SQ tail; kick the engine unless NEED_WAKEUP says it is awake. With
        ``store_tail`` False the tail is already in the doorbell (``_place(publish=True)``).

        Without the handshake (``_fence`` None: a 1.0 device, or no fence on this CPU) the kick
        is always sent. With it: store the tail, full fence, read the SQ flags; the engine sets
        the flag, fences and re-scans the doorbells before it sleeps, so skipping the kick when
        the flag is clear cannot leave the doorbell unseen (driver-core.md 2.3)."""
        doorbells = self._doorbells
        if store_tail:
            doorbells[self._sq_db] = self.sq.tail
        fence = self._fence
        if fence is not None:
            fence()
            if not doorbells[self._sq_flags] & 1:  # abi.SQ_FLAG_NEED_WAKEUP clear: engine awake
                self.kicks_skipped += 1
                return
        self.kicks_sent += 1
        self.kick.signal()

    def enable_need_wakeup(self, fence: Any) -> None:
        """Use the NEED_WAKEUP handshake (ABI 1.1 "need_wakeup") with this full-fence callable."""
        self._sq_flags = abi.sq_flags_index(self.qid)
        self._fence = fence

    def _accept(self, req: Request) -> None:
        state = self.state
        if state is QueueState.FAILED or state is QueueState.DELETED:
            # The request is ended at once (exactly once) with the controller's failure status.
            req.qpair = self
            for buf in req.buffers:
                buf.acquire()
            self.trackers.finish(req, self._failure_completion())
            return
        req.qpair = self
        if req.timeout_s is None:
            req.timeout_s = self.default_timeout_s
        if req.buffers:
            for buf in req.buffers:
                buf.acquire()

    def _failure_completion(self) -> Completion:
        if self.controller is not None:
            return self.controller.failure_completion()
        return Completion(abi.STATUS_ABORTED_SQ_DELETION | abi.STATUS_DNR, source="failed")

    def submit(self, req: Request, *, block: bool = True) -> Request:
        """Send one command (doorbell + kick now), or queue it in order behind others."""
        if self.state is QueueState.ENABLED and not self.queued and req.state == 0 and req.qpair is None:
            # The common case, _accept inlined (this runs once per sync command).
            req.qpair = self
            if req.timeout_s is None:
                req.timeout_s = self.default_timeout_s
            if req.buffers:
                for buf in req.buffers:
                    buf.acquire()
            if self._place(req, time.monotonic(), True):
                self._ring(False)
                return req
        else:
            self._accept(req)
            if req.done:
                return req
            if self.state is QueueState.ENABLED and not self.queued and self._place(req, time.monotonic()):
                self._ring()
                return req
        if not block:
            for buf in req.buffers:
                buf.release()
            req.qpair = None
            raise QueueFullError(f"queue {self.qid}: no free slot")
        else:
            self.queued.append(req)
        return req

    def submit_many(self, reqs: Iterable[Request]) -> int:
        """Send a batch with one doorbell store and one kick. Returns how many went out now.

        The common case (queue enabled, nothing queued ahead) places the SQEs in one loop with
        the ring and tracker state in locals (``_accept`` + ``_place`` inlined); anything else
        goes through the general per-request path."""
        if self.state is not QueueState.ENABLED or self.queued:
            return self._submit_many_slow(reqs)
        sq = self.sq
        tail = sq.tail
        head = sq.head
        depth = sq.depth
        mem = sq.mem
        sq_u16 = self._sq_u16
        trackers = self.trackers
        free = trackers.free
        take_tag = free.popleft
        gens = trackers.gens
        slots = trackers.slots
        default_timeout = self.default_timeout_s
        timeline_append = self.timeline.append
        now = time.monotonic()
        placed = 0  # by the loop below (counted in trackers.counters at the end)
        placed_slow = 0  # by _place (counts itself)
        it = iter(reqs)
        for req in it:
            if req.state != 0 or req.qpair is not None:  # not a fresh request: general path
                sq.tail = tail
                placed_slow += self._submit_many_slow((req,), ring=False)
                tail, head = sq.tail, sq.head
                if self.queued:
                    break
                continue
            req.qpair = self
            timeout_s = req.timeout_s
            if timeout_s is None:
                timeout_s = req.timeout_s = default_timeout
            if req.buffers:
                for buf in req.buffers:
                    buf.acquire()
            if not free or (head - tail - 1) % depth == 0:
                self.queued.append(req)  # no tracker / slot: everything after it queues too
                break
            tag = take_tag()
            gen = (gens[tag] + 1) & 0xF
            gens[tag] = gen
            slots[tag] = req
            req.tag = tag
            cid = req.cid = (gen << 12) | tag
            off = tail * 64
            mem[off:off + 64] = req.sqe
            sq_u16[(off >> 1) + _SQE_CID_HWORD] = cid
            tail += 1
            if tail == depth:
                tail = 0
            sq.tail = tail  # kept current: the slow path above may place more behind it
            req.state = 1  # RequestState.INFLIGHT
            if timeout_s is not None:
                req.deadline = now + timeout_s
                timeline_append(req)
            placed += 1
        if placed:
            trackers.counters.submitted += placed
        for req in it:  # after the first request that had to queue: queue the rest, in order
            self._accept(req)
            if not req.done:
                self.queued.append(req)
        if placed or placed_slow:
            self._ring()
        return placed + placed_slow

    def _submit_many_slow(self, reqs: Iterable[Request], *, ring: bool = True) -> int:
        placed = 0
        now = time.monotonic()
        enabled = self.state is QueueState.ENABLED
        for req in reqs:
            self._accept(req)
            if req.done:
                continue
            if enabled and not self.queued and self._place(req, now):
                placed += 1
            else:
                self.queued.append(req)
        if placed and ring:
            self._ring()
        return placed

    def _resubmit_queued(self) -> None:
        """Move queued requests onto the ring, in FIFO order, as far as trackers allow."""
        if self.state is not QueueState.ENABLED or not self.queued:
            return
        now = time.monotonic()
        placed = 0
        queued = self.queued
        while queued and self._place(queued[0], now):
            queued.popleft()
            placed += 1
        if placed:
            self._ring()

    def cancel_queued(self, req: Request) -> bool:
        try:
            self.queued.remove(req)
        except ValueError:
            return False
        self.trackers.finish(req, Completion(abi.STATUS_ABORTED_BY_REQUEST, source="cancel"))
        return True

    # -- completion -------------------------------------------------------------------------

    def process_completions(self, max_completions: int = 0, *, source: str = "cqe") -> int:
        """Reap new CQEs and run their callbacks here. Returns how many commands completed.

        Not re-entrant: a callback calling it again on the same qpair gets 0 (the outer call
        goes on reaping), as in SPDK's ``in_completion_context``.

        ``TrackerTable.finish`` is inlined for CQEs (this runs once per command): a CQE whose
        tag holds an in-flight request with the same CID is, by the table's invariant, the
        first and only way that request ends; anything else is counted as stale."""
        if self._in_completion:
            return 0
        if self.drain_irq:
            self.irq.drain()  # before the scan: a CQE posted meanwhile re-arms it (pitfall 9)
        cq = self.cq
        status_words = cq._status
        head = cq.head
        phase = cq.phase
        if (status_words[head * 8 + 7] & 1) != phase:  # nothing new: the common poll answer
            if self.timeline or self.queued:
                self._after_reap()  # e.g. queued work held back by a reset that has finished since
            return 0
        polled = False
        if source != "cqe":
            polled = source == "polled"
            if not polled:
                raise ValueError(f"completions reaped from the CQ have source 'cqe' or 'polled', not {source!r}")
        mem = cq.mem
        depth = cq.depth
        trackers = self.trackers
        slots = trackers.slots
        free_append = trackers.free.append
        capacity = trackers.capacity
        unpack = CQE_BODY.unpack_from
        sq = self.sq
        cap = self.reap_cap
        limit = max_completions if max_completions > 0 else 1 << 62
        done = 0
        stale = 0
        reaped = self._cq_unrung  # consumed entries the CQ head doorbell does not show yet
        self._in_completion = True
        try:
            while True:
                word = status_words[head * 8 + 7]  # abi.CQE_STATUS_HWORD: status word first
                if (word & 1) != phase:
                    break
                cdw0, cdw1, sqhd, sqid, cid = unpack(mem, head * 16)
                head += 1
                if head == depth:
                    head = 0
                    phase ^= 1
                reaped += 1
                if sqhd < depth:
                    sq.head = sqhd
                # Range, occupancy and generation checked before anything is touched.
                tag = cid & 0xFFF
                req = slots[tag] if tag < capacity else None
                if req is not None and req.cid == cid and req.state < 3:  # < RequestState.DONE
                    # TrackerTable.finish, inlined: state, tag, buffers, counters, callback.
                    req.completion = Completion(word & 0xFFFE, cdw0 | (cdw1 << 32), sqhd, sqid, cid, source)
                    req.state = 3  # RequestState.DONE
                    slots[tag] = None
                    free_append(tag)
                    req.tag = -1
                    if req.buffers:
                        for buf in req.buffers:
                            buf.release()
                    done += 1
                    callback = req.callback
                    if callback is not None:
                        cq.head = head  # the ring as the callback may look at it
                        cq.phase = phase
                        callback(req)
                        head = cq.head  # a callback may have reset the rings
                        phase = cq.phase
                else:
                    stale += 1
                if reaped >= cap:  # the CQ head doorbell, once per reap_cap consumed entries
                    self._doorbells[self._cq_db] = head
                    reaped = 0
                if done >= limit:
                    break
        finally:
            self._in_completion = False
            cq.head = head
            cq.phase = phase
            self._cq_unrung = reaped
            counters = trackers.counters
            counters.completed += done
            if polled:
                counters.completion_polled += done
            if stale:
                counters.stale_cqe += stale
        self._after_reap()
        return done

    def spin_reap_own(self, req: Request, spins: int) -> bool:
        """Poll mode's sync path: look at the CQ phase bit up to ``spins`` times; when the new
        entry at the head is ``req``'s own completion, end ``req`` from it here. Returns whether
        ``req`` has ended (False: the caller goes on with the general wait).

        Why a second reaper: for one command in flight, ``process_completions`` spends more on
        its set-up (reentrancy guard, irq drain, ~15 locals, counters, queued work) than on the
        entry, about 1 us of a ~5 us round trip (docs/driver-core.md). This path takes exactly
        one entry, and only when it is ``req``'s: the head holds it and ``req`` is in flight
        under that CID, which by the tracker table's invariant makes this its first and only
        end. Anything else (another command's entry first, a reaping callback further up the
        stack) goes to ``process_completions``. The steps are the loop body of
        ``process_completions``, for one entry: keep the two in step.
        """
        cq = self.cq
        status_words = cq._status
        phase = cq.phase
        for _ in range(spins):
            head = cq.head
            word = status_words[head * 8 + 7]  # abi.CQE_STATUS_HWORD: status word first
            if (word & 1) == phase:
                break
        else:
            return False
        cdw0, cdw1, sqhd, sqid, cid = CQE_BODY.unpack_from(cq.mem, head * 16)
        if cid != req.cid or req.state >= 3 or self._in_completion:
            self.process_completions()
            return req.state >= 3
        head += 1
        if head == cq.depth:
            head = 0
            cq.phase = phase ^ 1
        cq.head = head
        if sqhd < cq.depth:
            self.sq.head = sqhd
        reaped = self._cq_unrung + 1
        if reaped >= self.reap_cap:  # the CQ head doorbell, once per reap_cap consumed entries
            self._doorbells[self._cq_db] = head
            reaped = 0
        self._cq_unrung = reaped
        req.completion = Completion(word & 0xFFFE, cdw0 | (cdw1 << 32), sqhd, sqid, cid, "cqe")
        req.state = 3  # RequestState.DONE
        trackers = self.trackers
        tag = req.tag
        trackers.slots[tag] = None
        trackers.free.append(tag)
        req.tag = -1
        if req.buffers:
            for buf in req.buffers:
                buf.release()
        trackers.counters.completed += 1
        callback = req.callback
        if callback is not None:
            self._in_completion = True  # as inside process_completions: a nested call reaps nothing
            try:
                callback(req)
            finally:
                self._in_completion = False
        self._after_reap()
        return True

    def _after_reap(self) -> None:
        """After reaping: drop ended requests from the front of the timeout timeline, then move
        queued work onto the freed trackers. Commands mostly end in order, so the trim keeps the
        timeline as short as what is in flight; without it every request would stay referenced
        until its deadline passed (seconds of garbage for the cyclic GC)."""
        timeline = self.timeline
        while timeline and timeline[0].state >= 3:
            timeline.popleft()
        if self.queued:
            self._resubmit_queued()

    # -- timeouts and recovery (driven by the controller) ------------------------------------

    def expired(self, now: float) -> list[Request]:
        """In-flight commands past their deadline, oldest first (scan stops at the first live one)."""
        timeline = self.timeline
        while timeline and timeline[0].state >= RequestState.DONE:
            timeline.popleft()
        out = []
        for req in timeline:
            if req.deadline > now:
                break
            if req.state < RequestState.DONE:
                out.append(req)
        return out

    def reset_rings(self) -> None:
        """After the device dropped this queue: zero both rings and expect phase 1 again."""
        self.sq.reset()
        self.cq.reset()
        self._cq_unrung = 0
        self.timeline.clear()

    def cancel_inflight(self, completion_for: Any) -> int:
        """End every command the device owned, once. Only after the queue was disabled and drained."""
        n = 0
        for req in self.trackers.in_flight():
            if self.trackers.finish(req, completion_for(req)):
                n += 1
        return n

    def cancel_all_queued(self, completion: Completion) -> int:
        n = 0
        while self.queued:
            req = self.queued.popleft()
            if self.trackers.finish(req, completion):
                n += 1
        return n

    @property
    def outstanding(self) -> int:
        return self.trackers.outstanding + len(self.queued)

    def release(self) -> None:
        """Drop the views of the ring memory (so the buffer can be unmapped)."""
        self._sq_u16.release()
        self.sq.release()
        self.cq.release()

    def fileno(self) -> int:
        """The CQ interrupt eventfd: readable when completions may be waiting."""
        return self.irq.fd

    def __repr__(self) -> str:
        return f"QueuePair(qid={self.qid}, depth={self.depth}, state={self.state}, outstanding={self.outstanding})"
