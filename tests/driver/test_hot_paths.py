"""The fast paths of submission and reaping behave like the general ones (order, exactly-once,
queueing when trackers run out, timeouts, periodic service), and the NEED_WAKEUP handshake skips
kicks only while the engine is awake, never losing a doorbell."""

from __future__ import annotations

import random
import time

import pytest

from accelctl.protocol import abi
from accelctl.driver import commands as cmd
from accelctl.protocol.fence import make_fence
from accelctl.driver.session import Session
from tests._wait import wait_until

HAVE_FENCE = make_fence() is not None


def _drained(dev: Session, q) -> bool:  # type: ignore[no-untyped-def]
    """Reap until nothing of `q` is outstanding (True), or the hang guard passes."""

    def done() -> bool:
        dev.poll(0.05)
        return not q.outstanding

    return wait_until(done, interval=0)


def test_batch_beyond_the_trackers_queues_the_rest_in_order(endpoint: str) -> None:
    with Session(endpoint) as dev:
        q = dev.create_qpair(depth=8)  # 8 - reap cap 2 = 6 trackers
        order: list[int] = []
        reqs = q.submit_many([cmd.fill(i * 64, 64, i) for i in range(40)],
                             callback=lambda r: order.append(r.user_data))
        for i, r in enumerate(reqs):
            r.user_data = i
        assert len(q.qpair.queued) == 40 - q.qpair.trackers.capacity
        assert _drained(dev, q)
        assert order == list(range(40))
        assert all(r.completion is not None and r.completion.ok for r in reqs)
        assert q.qpair.trackers.counters.submitted == 40 and q.qpair.trackers.counters.completed == 40
        q.close()


def test_a_batch_behind_queued_work_goes_after_it(endpoint: str) -> None:
    with Session(endpoint) as dev:
        q = dev.create_qpair(depth=8)
        order: list[str] = []
        first = q.submit_many([cmd.fill(0, 64, i) for i in range(10)], callback=lambda r: order.append("a"))
        second = q.submit_many([cmd.fill(64, 64, i) for i in range(3)], callback=lambda r: order.append("b"))
        while q.outstanding:
            dev.poll(0.05)
        assert order == ["a"] * 10 + ["b"] * 3
        assert all(r.done for r in first + second)
        q.close()


def test_finished_commands_leave_the_timeout_timeline(endpoint: str) -> None:
    """A finished request must not stay referenced until its deadline (seconds of garbage)."""
    with Session(endpoint, io_timeout_s=30.0) as dev:
        q = dev.queue
        for i in range(300):
            q.execute(cmd.fill(0, 64, i))
        reqs = q.submit_many([cmd.fill(0, 64, i) for i in range(32)])
        while q.outstanding:
            dev.poll(0.05)
        assert all(r.done for r in reqs)
        assert len(q.qpair.timeline) == 0


@pytest.mark.parametrize("mode", ["poll", "interrupt"])
def test_fast_execute_still_services_async_events(endpoint: str, mode: str) -> None:
    """Poll-mode execute ends within its own short spin; the 1 ms service tick (admin
    completions such as async events, timeouts, device events) must still run."""
    with Session(endpoint, wait=mode) as dev:
        temp = dev.log_page("health")["temperature_k"]
        dev.set_feature(abi.Feature.TEMPERATURE_THRESHOLD, temp - 1)  # over already: health event
        def event_seen() -> bool:
            dev.queue.execute(cmd.fill(0, 64, 1))  # only fast sync commands, no poll()/sleep
            return bool(dev.controller.events)

        assert wait_until(event_seen, interval=0)
        assert dev.controller.events and dev.controller.events[0] & 0x7 == abi.AsyncEventType.HEALTH
        dev.set_feature(abi.Feature.TEMPERATURE_THRESHOLD, 358)


@pytest.fixture(scope="module")
def process_sim():  # type: ignore[no-untyped-def]
    """A daemon in its own process: with an embedded one the engine thread shares this
    process's GIL, so it can never spin while the host runs (and the races below never happen)."""
    from ._sim import SimHarness

    sim = SimHarness.process()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.mark.skipif(not HAVE_FENCE, reason="no full fence on this CPU: kicks are always sent")
def test_kicks_are_skipped_while_the_engine_spins_and_sent_when_it_sleeps(ledger, process_sim) -> None:  # type: ignore[no-untyped-def]
    with Session(process_sim.socket_path(), wait="poll") as dev:  # the device polls 200 us after work
        assert abi.FEATURE_NEED_WAKEUP in dev.controller.caps["features"]
        q = dev.queue
        qp = q.qpair
        for i in range(300):
            q.execute(cmd.fill(0, 64, i))
        assert qp.kicks_skipped > 0
        # Idle: the engine sets NEED_WAKEUP before it sleeps; the next doorbell is kicked.
        flags = abi.sq_flags_index(qp.qid)
        assert wait_until(lambda: dev.controller.doorbells[flags] & abi.SQ_FLAG_NEED_WAKEUP, interval=0.001)
        sent = qp.kicks_sent
        assert q.execute(cmd.fill(0, 64, 1)).ok
        assert qp.kicks_sent == sent + 1


def test_need_wakeup_can_be_turned_off(endpoint: str) -> None:
    with Session(endpoint, wait="poll", need_wakeup=False) as dev:
        q = dev.queue
        for i in range(100):
            q.execute(cmd.fill(0, 64, i))
        assert q.qpair.kicks_skipped == 0 and q.qpair.kicks_sent >= 100


@pytest.mark.skipif(not HAVE_FENCE, reason="no full fence on this CPU")
@pytest.mark.parametrize("mode", ["poll", "interrupt"])
def test_no_lost_wakeup_against_a_device_process(ledger, process_sim, mode: str) -> None:  # type: ignore[no-untyped-def]
    """The engine polls only 5 us after work, so submissions keep racing its way to sleep. A
    doorbell it never saw would only be found by the timeout path (abort / reset). The timeout is
    long so that only a lost doorbell can reach it, never a busy machine."""
    rng = random.Random(7)
    with Session(process_sim.socket_path(), wait=mode, io_timeout_s=30.0) as dev:
        dev.set_feature(abi.Feature.DEVICE_POLL_US, 5)
        q = dev.queue
        for i in range(4000):
            assert q.execute(cmd.fill((i % 64) * 64, 64, i)).source == "cqe"
            end = time.perf_counter() + rng.random() * 15e-6
            while time.perf_counter() < end:
                pass
        c = dev.controller.counters
        assert (c.timeouts, c.aborts_sent, c.resets) == (0, 0, 0)
        assert q.qpair.kicks_sent > 0
        assert q.qpair.trackers.counters.completion_polled == 0


@pytest.mark.parametrize("length", [0, 4, 6, 64, 4095, 4096, 4097, (1 << 20) + 6])
def test_fill_small_and_large(endpoint: str, length: int) -> None:
    with Session(endpoint) as dev:
        buf = dev.alloc_dma(max(length, 8) + 64)
        try:
            buf.view[:] = b"\xee" * len(buf.view)
            dev.execute(cmd.write(0, buf, 0, len(buf.view)))  # known background
            dev.execute(cmd.fill(0, length, 0x04030201))
            dev.execute(cmd.read(0, buf, 0, len(buf.view)))
            want = (bytes([1, 2, 3, 4]) * (length // 4 + 1))[:length]
            assert bytes(buf.view[:length]) == want
            assert bytes(buf.view[length:]) == b"\xee" * (len(buf.view) - length)
        finally:
            buf.close()


def test_a_callback_may_reset_the_controller_while_completions_are_reaped(endpoint: str) -> None:
    """Reaping keeps the CQ position in locals; a callback that resets the controller re-creates
    the rings under it, and reaping must go on from the new rings, not the old position."""
    with Session(endpoint, io_timeout_s=5.0) as dev:
        q = dev.queue
        ended: list[str] = []
        did_reset = [False]

        def on_done(req) -> None:  # type: ignore[no-untyped-def]
            ended.append(req.completion.source)
            if not did_reset[0]:
                did_reset[0] = True
                dev.reset()

        reqs = q.submit_many([cmd.fill(i * 64, 64, i) for i in range(16)], callback=on_done)
        assert _drained(dev, q)
        assert all(r.done for r in reqs) and len(ended) == 16
        assert dev.controller.counters.resets == 1
        for i in range(50):  # the queue works on after the reset, from the new rings
            assert q.execute(cmd.fill(0, 64, i)).ok
        assert q.qpair.trackers.counters.stale_cqe == 0


class _CountingReaps:
    """Counts calls of the general reaper on IO queues (qid > 0), to tell which path ended a
    sync command. Admin reaps (the 1 ms poll service) are not counted: how many there are
    depends on how fast the machine runs, not on what the code does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from accelctl.driver.qpair import QueuePair

        self.calls = 0
        general = QueuePair.process_completions

        def counted(qp, *args, **kwargs):  # type: ignore[no-untyped-def]
            if qp.qid:
                self.calls += 1
            return general(qp, *args, **kwargs)

        monkeypatch.setattr(QueuePair, "process_completions", counted)


def test_poll_execute_reaps_its_own_entry_across_ring_wraps(ledger, process_sim, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Poll-mode execute ends its command from its own CQE at the head (no general reap), and
    the ring state stays right over many phase wraps of a small queue: every command ends once,
    the CQ head doorbell is never more than reap_cap entries behind, the SQ head follows."""
    reaps = _CountingReaps(monkeypatch)
    # The quick spin is bounded by a count, not a time: made effectively unbounded here, the
    # in-place reaper always sees its own entry arrive, however slow or busy the machine is (on
    # a loaded 2-core machine 256 spins often run out first and the general reaper takes over,
    # which is correct behaviour but not what this test is about).
    from accelctl.driver.controller import Controller

    monkeypatch.setattr(Controller, "_QUICK_SPINS", 1 << 40)
    with Session(process_sim.socket_path(), wait="poll") as dev:
        q = dev.create_qpair(depth=8)
        qp = q.qpair
        for i in range(200):  # 25 wraps of an 8-entry ring
            cpl = q.execute(cmd.fill((i % 16) * 64, 64, i))
            assert cpl.ok and cpl.source == "cqe"
            assert 0 <= qp._cq_unrung < qp.reap_cap
            rung = dev.controller.doorbells[abi.cq_doorbell_index(qp.qid)]
            assert (qp.cq.head - rung) % qp.depth == qp._cq_unrung
            assert qp.sq.head == qp.sq.tail  # the device reported every entry consumed
        c = qp.trackers.counters
        assert (c.submitted, c.completed, c.stale_cqe) == (200, 200, 0)
        assert qp.trackers.outstanding == 0 and not qp.timeline
        assert reaps.calls == 0, "the general reaper ended a sync command whose own entry was at the head"
        # The device memory really took the fills.
        assert dev.read_memory(7 * 64, 4) == (199).to_bytes(4, "little")  # 199 % 16 == 7
        assert dev.read_memory(15 * 64, 4) == (191).to_bytes(4, "little")
        q.close()


def test_poll_execute_behind_async_commands_ends_them_first_in_order(ledger, process_sim) -> None:  # type: ignore[no-untyped-def]
    """The entry at the head is another command's: the general reaper takes over, so earlier
    commands' callbacks run (once, in order) before execute returns."""
    with Session(process_sim.socket_path(), wait="poll") as dev:
        q = dev.queue
        for rnd in range(20):
            order: list[int] = []
            reqs = q.submit_many([cmd.fill(i * 64, 64, i) for i in range(5)], callback=lambda r: order.append(r.user_data))
            for i, r in enumerate(reqs):
                r.user_data = i
            assert q.execute(cmd.fill(512, 64, rnd)).ok
            assert order == [0, 1, 2, 3, 4], order
            assert all(r.completion is not None and r.completion.ok for r in reqs)
        c = q.qpair.trackers.counters
        assert (c.submitted, c.completed) == (120, 120)


def test_poll_execute_counts_a_duplicate_completion_as_stale(ledger, process_sim) -> None:  # type: ignore[no-untyped-def]
    """A duplicate CQE lands behind the original: the in-place reap takes the original, the next
    command finds the duplicate at the head (not its own) and the general reaper drops it."""
    ledger.allow_stale_cqe = True
    with Session(process_sim.socket_path(), wait="poll") as dev:
        q = dev.queue
        q.execute(cmd.flush())
        process_sim.add_fault(kind="duplicate_cqe", opcode=abi.IoOpcode.FILL, count=3)
        for i in range(10):
            assert q.execute(cmd.fill(0, 64, i)).ok
        q.execute(cmd.flush())
        c = q.qpair.trackers.counters
        assert c.stale_cqe == 3 and c.completed == c.submitted == 12
    process_sim.clear_faults()
