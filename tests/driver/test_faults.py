"""The fault matrix: each injected fault with its expected outcome (driver-core.md 5.2)."""

from __future__ import annotations

import pytest

from accelctl.protocol import abi
from accelctl.driver import commands as cmd
from accelctl.driver.controller import ControllerState
from accelctl.driver.session import Session
from accelctl.errors import CommandAbortedError, CommandError, DeviceFailedError, DeviceRemovedError
from tests._wait import HANG_GUARD_S, wait_until

FILL = int(abi.IoOpcode.FILL)
FAST = dict(io_timeout_s=0.2, abort_timeout_s=0.2, admin_timeout_s=1.0, ready_timeout_s=1.0)


def _counters(dev: Session):  # type: ignore[no-untyped-def]
    return dev.controller.counters


def _io_trackers(dev: Session):  # type: ignore[no-untyped-def]
    return dev.queue.qpair.trackers.counters


def test_dropped_completion_escalates_abort_then_reset(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    with Session(endpoint, **FAST) as dev:
        dev.execute(cmd.flush())
        sim.add_fault(kind="drop_cqe", opcode=FILL, qid=dev.queue.qid)
        with pytest.raises(CommandAbortedError) as info:
            dev.execute(cmd.fill(0, 64, 1))
        assert info.value.retryable  # ended by the reset: ABORTED_SQ_DELETION, DNR clear
        c = _counters(dev)
        assert (c.aborts_sent, c.aborts_not_aborted, c.resets) == (1, 1, 1)
        dev.execute(cmd.fill(0, 64, 2))  # the session recovered
        assert dev.controller.state is ControllerState.LIVE


def test_duplicate_completion_is_counted_not_delivered(sim, endpoint: str, ledger) -> None:  # type: ignore[no-untyped-def]
    ledger.allow_stale_cqe = True
    with Session(endpoint, **FAST) as dev:
        dev.execute(cmd.flush())
        sim.add_fault(kind="duplicate_cqe", opcode=FILL)
        dev.execute(cmd.fill(0, 64, 1))
        dev.execute(cmd.flush())  # reaps the duplicate if it came late
        assert _io_trackers(dev).stale_cqe == 1


def test_delayed_completion_is_aborted_by_request(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    with Session(endpoint, **FAST) as dev:
        dev.execute(cmd.flush())
        sim.add_fault(kind="delay_cqe", opcode=FILL, delay_ms=2000)
        with pytest.raises(CommandAbortedError) as info:
            dev.execute(cmd.fill(0, 64, 1))
        assert not info.value.retryable
        assert _counters(dev).aborts_sent == 1 and _counters(dev).resets == 0


def test_short_delay_is_overtaken_and_completes(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    with Session(endpoint, io_timeout_s=2.0) as dev:
        dev.execute(cmd.flush())
        sim.add_fault(kind="delay_cqe", opcode=FILL, delay_ms=100)
        order: list[str] = []
        q = dev.queue
        q.submit(cmd.fill(0, 64, 1), callback=lambda r: order.append("delayed"))
        q.submit(cmd.flush(), callback=lambda r: order.append("flush-or-next"))
        while q.outstanding:
            dev.poll(0.5)
        assert order[-1] == "delayed" or order == ["delayed", "flush-or-next"]


def test_corrupted_completion_fails_once(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    with Session(endpoint, **FAST) as dev:
        dev.execute(cmd.flush())
        sim.add_fault(kind="corrupt_cqe", opcode=FILL, seed=3)
        with pytest.raises(CommandError):
            dev.execute(cmd.fill(0, 64, 1))
        dev.execute(cmd.fill(0, 64, 2))


def test_bogus_cid_is_ignored_and_the_command_recovered(sim, endpoint: str, ledger) -> None:  # type: ignore[no-untyped-def]
    ledger.allow_stale_cqe = True
    with Session(endpoint, **FAST) as dev:
        dev.execute(cmd.flush())
        sim.add_fault(kind="bogus_cid", opcode=FILL)
        with pytest.raises(CommandAbortedError) as info:
            dev.execute(cmd.fill(0, 64, 1))
        assert info.value.retryable
        assert _io_trackers(dev).stale_cqe == 1
        dev.execute(cmd.fill(0, 64, 2))


def test_lost_interrupt_is_found_by_polling(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    with Session(endpoint, **FAST) as dev:
        dev.execute(cmd.flush())
        # Slow, so the host is asleep when the completion lands without its interrupt.
        sim.add_fault(kind="slow", opcode=FILL, delay_ms=30)
        sim.add_fault(kind="lost_irq", opcode=FILL)
        cpl = dev.execute(cmd.fill(0, 64, 1))
        assert cpl.ok and cpl.source == "polled"
        assert _io_trackers(dev).completion_polled == 1
        # found by the timeout scan's CQ poll, before any escalation: no timeout counted, no
        # abort, no reset
        counters = _counters(dev)
        assert (counters.timeouts, counters.aborts_sent, counters.resets) == (0, 0, 0)


def test_slow_device_within_timeout_completes(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    with Session(endpoint, io_timeout_s=2.0) as dev:
        dev.execute(cmd.flush())
        sim.add_fault(kind="slow", opcode=FILL, delay_ms=150, count=0)
        assert dev.execute(cmd.fill(0, 64, 1)).ok
        # the device was slow for this command (the fault fired once) and the driver waited it out
        assert [f["fired"] for f in sim.faults() if f["kind"] == "slow"] == [1]
        assert _counters(dev).timeouts == 0 and _counters(dev).aborts_sent == 0


def test_fatal_status_resets_and_recovers(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    with Session(endpoint, **FAST) as dev:
        dev.execute(cmd.flush())
        sim.add_fault(kind="fatal", opcode=FILL)
        with pytest.raises(CommandAbortedError) as info:
            dev.execute(cmd.fill(0, 64, 1))
        assert info.value.retryable
        assert _counters(dev).resets >= 1
        dev.execute(cmd.fill(0, 64, 2))
        assert dev.controller.state is ControllerState.LIVE


def test_reset_failing_fewer_times_than_the_limit_recovers(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    with Session(endpoint, max_resets=3, **FAST) as dev:
        dev.execute(cmd.flush())
        sim.add_fault(kind="reset_fail", count=2)
        dev.reset()
        assert _counters(dev).reset_failures == 2
        dev.execute(cmd.fill(0, 64, 1))


def test_reset_failing_n_times_marks_the_device_failed(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    with Session(endpoint, max_resets=3, **FAST) as dev:
        q = dev.queue
        dev.execute(cmd.flush())
        sim.add_fault(kind="reset_fail", count=3)
        sim.add_fault(kind="drop_cqe", opcode=FILL)
        outcomes: list[str] = []
        resubmitted = []

        def resubmit(req) -> None:  # type: ignore[no-untyped-def]
            # A callback retrying during the reset: its command waits (queued) for the outcome.
            outcomes.append(req.completion.source)
            if req.completion.retryable:
                resubmitted.append(q.submit(cmd.fill(0, 64, 9), callback=lambda r: outcomes.append(r.completion.source)))

        held = [q.submit(cmd.fill(0, 64, i), callback=resubmit) for i in range(3)]
        with pytest.raises(CommandAbortedError) as info:
            q.wait(held[0])  # in flight at the first reset: cancelled once, retryable
        assert info.value.retryable
        assert dev.controller.state is ControllerState.FAILED
        assert _counters(dev).reset_failures == 3
        assert len(resubmitted) == 1  # only the dropped command was in flight at the reset
        for r in resubmitted:  # queued during the failing resets: fail cleanly, DNR set
            with pytest.raises(DeviceFailedError):
                q.wait(r)
            assert r.completion.dnr
        assert sorted(outcomes) == ["cqe", "cqe", "failed", "reset"]
        with pytest.raises(DeviceFailedError):
            dev.execute(cmd.flush())


def test_removal_fails_everything_once(ledger) -> None:  # type: ignore[no-untyped-def]
    from ._sim import SimHarness

    sim = SimHarness.embedded()  # removal is permanent: a daemon of its own
    try:
        with Session(sim.socket_path(), io_timeout_s=10.0) as dev:
            q = dev.queue
            dev.execute(cmd.flush())
            # Completions held back by the device: these commands are in flight at the removal.
            sim.add_fault(kind="delay_cqe", opcode=FILL, delay_ms=5000, count=0)
            endings: list[str] = []
            reqs = [q.submit(cmd.fill(0, 64, i), callback=lambda r: endings.append(r.completion.source))
                    for i in range(5)]
            sim.add_fault(kind="remove", now=True)
            with pytest.raises(DeviceRemovedError):
                q.wait(reqs[-1])
            # noticed through the device, not by a timeout (none counted, nothing aborted)
            assert _counters(dev).timeouts == 0 and _counters(dev).aborts_sent == 0
            assert all(r.done for r in reqs) and endings == ["removed"] * 5
            with pytest.raises(DeviceRemovedError):
                dev.execute(cmd.flush())
    finally:
        sim.stop()


def test_device_reset_makes_other_sessions_stale(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    from accelctl.errors import SessionStaleError

    with Session(endpoint, **FAST) as a, Session(endpoint, **FAST) as b:
        a.execute(cmd.flush())
        b.execute(cmd.flush())
        sim.add_fault(kind="delay_cqe", opcode=FILL, delay_ms=5000, count=0)  # held in the device
        ended: list[str] = []
        b_reqs = [b.queue.submit(cmd.fill(0, 64, i), callback=lambda r: ended.append(r.completion.source))
                  for i in range(4)]
        assert wait_until(lambda: sum(x["held"] for x in sim.sessions()) >= 4)  # the device holds all four
        a.reset(device=True)
        sim.clear_faults()
        a.execute(cmd.fill(0, 64, 1))  # the resetting session recovered and goes on
        # B's in-flight commands end once: aborted by the device reset (the device posted that
        # before it made B stale) or cancelled as stale, never both, never lost.
        with pytest.raises((CommandAbortedError, SessionStaleError)):
            b.queue.wait(b_reqs[-1], timeout=HANG_GUARD_S)
        assert len(ended) == 4 and all(r.done for r in b_reqs)
        with pytest.raises(SessionStaleError):
            b.execute(cmd.flush(), timeout=HANG_GUARD_S)
        assert b.controller.state is ControllerState.STALE


def test_async_event_is_delivered_and_rearmed(endpoint: str) -> None:
    with Session(endpoint) as dev:
        temp = dev.log_page("health")["temperature_k"]
        dev.set_feature(abi.Feature.TEMPERATURE_THRESHOLD, temp - 1)  # already over: health event
        def event_arrived() -> bool:
            dev.poll(0.05)
            return bool(dev.controller.events)

        assert wait_until(event_arrived, interval=0), "no async event arrived"
        assert dev.controller.events[0] & 0x7 == abi.AsyncEventType.HEALTH
        dev.set_feature(abi.Feature.TEMPERATURE_THRESHOLD, 358)
        assert dev.controller._aer is not None and not dev.controller._aer.done  # re-armed


def test_keep_alive_is_sent_from_the_callers_reaping(endpoint: str) -> None:
    with Session(endpoint, keep_alive_ms=100) as dev:
        # three keep-alives go out from nothing but the caller polling (however long that takes)
        def three_sent() -> bool:
            dev.poll(0.02)
            return dev.controller.counters.keep_alives >= 3

        assert wait_until(three_sent, interval=0)
        assert dev.controller.state is ControllerState.LIVE
