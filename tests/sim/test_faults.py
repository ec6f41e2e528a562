"""Every fault kind, observed from a raw ring client; resets and staleness."""

from __future__ import annotations

import errno

import pytest
from conftest import BDF_A
from rawclient import CtrlError, RawClient, admin_json

from accelctl.protocol import abi
from tests._wait import HANG_GUARD_S, wait_until

W = abi.IoOpcode.WRITE


@pytest.fixture
def c(sock_a):
    with RawClient(sock_a) as client:
        client.enable()
        client.create_io_queue(1, 64)
        client.buf, client.iova = client.alloc(4096)
        yield client


def _write(c, **kw):
    return c.submit(1, W, dptr=c.iova, cdw12=4096, **kw)


def test_drop_cqe_then_abort_says_not_aborted(c):
    c.fault(kind="drop_cqe", opcode=W, qid=1, nth=2)
    _write(c)
    assert c.wait_cqe(1)["cid"] == 0
    _write(c)
    assert c.wait_cqe(1, 0.3) is None  # second completion never comes
    ab = c.admin(abi.AdminOpcode.ABORT, cdw10=abi.abort_cdw10(1, 1))
    assert abi.status_ok(ab["status"]) and ab["result"] & abi.ABORT_RESULT_NOT_ABORTED
    _write(c)
    assert c.wait_cqe(1)["cid"] == 2  # count=1: later commands are normal


def test_duplicate_cqe(c):
    c.fault(kind="duplicate_cqe", qid=1)
    cid = _write(c)
    a, b = c.wait_cqe(1), c.wait_cqe(1)
    assert a["cid"] == b["cid"] == cid


def test_delay_cqe_overtaken_and_abortable(c):
    c.fault(kind="delay_cqe", qid=1, nth=1, count=2, delay_ms=300)
    first = _write(c)
    second = _write(c)
    third = _write(c)
    assert c.wait_cqe(1)["cid"] == third  # the delayed two are overtaken
    ab = c.admin(abi.AdminOpcode.ABORT, cdw10=abi.abort_cdw10(1, second))
    assert abi.status_ok(ab["status"]) and not ab["result"] & 1
    aborted = c.wait_cqe(1)
    assert aborted["cid"] == second and aborted["status"] == abi.STATUS_ABORTED_BY_REQUEST
    late = c.wait_cqe(1, 2.0)
    assert late["cid"] == first and abi.status_ok(late["status"])


def test_corrupt_cqe(c):
    c.fault(kind="corrupt_cqe", qid=1, seed=7)
    cid = _write(c)
    cpl = c.wait_cqe(1)
    assert cpl["cid"] == cid and not abi.status_ok(cpl["status"])


def test_bogus_cid(c):
    c.fault(kind="bogus_cid", qid=1)
    cid = _write(c)
    cpl = c.wait_cqe(1)
    assert cpl["cid"] != cid and abi.cid_tag(cpl["cid"]) == abi.cid_tag(cid)


def test_lost_interrupt(c):
    c.fault(kind="lost_irq", qid=1)
    cid = _write(c)
    cpl = None

    def posted() -> bool:
        nonlocal cpl
        cpl = c.peek(1)
        return cpl is not None

    assert wait_until(posted)  # the completion lands in the CQ ("completion polled")...
    assert cpl is not None and cpl["cid"] == cid
    assert not c.irq_pending(1)  # ...without its interrupt
    _write(c)
    assert c.wait_cqe(1) is not None and True


def test_slow_device(c):
    c.fault(kind="slow", qid=1, count=0, delay_ms=50)
    for _ in range(3):
        _write(c)
        assert c.wait_cqe(1) is not None
    # each command was held back (the fault fired for all three) and still completed
    (slow,) = admin_json(c.path, abi.CtrlCmd.FAULT, {})["faults"]
    assert (slow["kind"], slow["matched"], slow["fired"]) == ("slow", 3, 3)


def test_seeded_probability_is_deterministic(sock_a):
    def run():
        with RawClient(sock_a) as cl:
            cl.enable()
            cl.create_io_queue(1, 64)
            cl.fault(kind="drop_cqe", qid=1, opcode=abi.IoOpcode.FLUSH, count=0, probability=0.3, seed=42)
            for i in range(40):
                cl.submit(1, abi.IoOpcode.FLUSH, cid=i)
            # a marker the fault does not match: the queue runs in order, so once its completion
            # is in, every FLUSH completion that is coming is in too (no waiting for absence)
            cl.submit(1, abi.IoOpcode.FENCE, cid=99)
            seen = set()
            while (cpl := cl.wait_cqe(1)) is not None and cpl["cid"] != 99:
                seen.add(cpl["cid"])
            assert cpl is not None, "the marker never completed"
            cl.clear_faults()
            return [i in seen for i in range(40)]
    a, b = run(), run()
    assert a == b and 0 < a.count(False) < 40


def test_fatal_status_then_controller_reset(c):
    c.fault(kind="fatal", qid=1)
    _write(c)
    assert c.wait_cqe(1, 0.3) is None
    assert c.reg_read(abi.Reg.CSTS) & abi.CSTS_CFS
    assert c.db[abi.STATUS_CSTS_INDEX] & abi.CSTS_CFS
    c.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.CONTROLLER))
    assert c.reg_read(abi.Reg.CSTS) & (abi.CSTS_CFS | abi.CSTS_RDY) == 0
    s = c.introspect()["endpoints"][BDF_A]["sessions"][0]
    assert s["queues"] == [] and not s["stale"]


def test_fatal_now_and_event_notifier(c):
    import os
    import select

    ev = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    c.request(abi.CtrlCmd.SET_EVENT_NOTIFIER, b"", [ev])
    c.fault(kind="fatal", now=True)
    assert select.select([ev], [], [], HANG_GUARD_S)[0]
    assert c.reg_read(abi.Reg.CSTS) & abi.CSTS_CFS
    os.close(ev)


def test_controller_reset_aborts_held_commands_retryably(c):
    c.fault(kind="delay_cqe", qid=1, delay_ms=10_000)
    cid = _write(c)
    assert wait_until(lambda: c.introspect()["endpoints"][BDF_A]["sessions"][0]["held"] == 1)  # in the device
    c.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.CONTROLLER))
    cpl = c.peek(1)  # posted before the queues went away
    assert cpl["cid"] == cid and cpl["status"] == abi.STATUS_ABORTED_SQ_DELETION
    assert abi.status_retryable(cpl["status"])


def test_reset_fails_n_times(c):
    c.fault(kind="reset_fail", count=2)
    for _ in range(2):
        with pytest.raises(CtrlError) as e:
            c.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.DEVICE))
        assert e.value.errno == errno.EIO
    body, _ = c.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.DEVICE))
    assert abi.CTRL_U32.unpack(body)[0] == 2


def test_device_reset_makes_other_sessions_stale(sock_a, daemon):
    with RawClient(sock_a) as a, RawClient(sock_a) as b:
        for cl in (a, b):
            cl.enable()
            cl.create_io_queue(1)
            cl.alloc(4096)
        body, _ = a.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.DEVICE))
        gen = abi.CTRL_U32.unpack(body)[0]
        assert gen == 2
        with pytest.raises(CtrlError) as e:
            b.reg_read(abi.Reg.CSTS)
        assert e.value.errno == errno.ENODEV
        assert b.db[abi.STATUS_RESET_GEN_INDEX] == 2 and b.db[abi.STATUS_SESSION_GEN_INDEX] == 1
        assert a.db[abi.STATUS_SESSION_GEN_INDEX] == 2
        sessions = {s["id"]: s for s in daemon.introspect()["endpoints"][BDF_A]["sessions"]}
        stale = [s for s in sessions.values() if s["stale"]]
        assert len(stale) == 1 and stale[0]["dma_maps"] == [] and stale[0]["queues"] == [] and stale[0]["kicks"] == []
        # the resetting session carries on after re-enabling
        assert a.reg_read(abi.Reg.CSTS) & abi.CSTS_RDY == 0
        a.queues.clear()
        a.enable()
        assert a.json(abi.CtrlCmd.GET_INFO)["reset_gen"] == 2


def test_device_reset_new_serial(c):
    c.fault(kind="new_serial", new_serial="11-22-33-44-55-66-77-88")
    c.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.DEVICE))
    assert c.json(abi.CtrlCmd.GET_INFO)["serial"] == "11-22-33-44-55-66-77-88"


def test_device_reset_no_return_removes(c, daemon):
    c.fault(kind="no_return")
    with pytest.raises(CtrlError) as e:
        c.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.DEVICE))
    assert e.value.errno == errno.ENODEV
    assert wait_until(lambda: daemon.endpoints[BDF_A].firmware.removed)
    assert c.db[abi.STATUS_CSTS_INDEX] == abi.CSTS_GONE
    assert c.sock.recv(10) == b""
    # The control loop marks the device removed, drops its connections, then unlinks the
    # socket: wait (bounded) for the last step rather than racing it.
    assert wait_until(lambda: not daemon.endpoints[BDF_A].socket_path.exists())


def test_removal_on_command(c, daemon, sock_b):
    c.fault(kind="remove", qid=1)
    _write(c)
    assert c.sock.recv(10) == b""  # connection closed by the daemon
    assert c.db[abi.STATUS_CSTS_INDEX] == abi.CSTS_GONE
    with RawClient(sock_b) as other:  # the other endpoint is untouched
        assert other.json(abi.CtrlCmd.GET_INFO)["removed"] is False


def test_daemon_death_embedded(c, daemon):
    c.fault(kind="daemon_death", qid=1)
    _write(c)
    assert c.sock.recv(10) == b""
    assert daemon.dead


def test_unknown_fault_kind_rejected(c):
    with pytest.raises(CtrlError) as e:
        c.fault(kind="meteor_strike")
    assert e.value.errno == errno.EINVAL


def test_async_event_request(c):
    c.submit(0, abi.AdminOpcode.ASYNC_EVENT_REQUEST, cid=77)
    assert c.wait_cqe(0, 0.1) is None  # held until an event
    cpl = c.admin(abi.AdminOpcode.SET_FEATURES, cdw10=abi.Feature.TEMPERATURE_THRESHOLD, cdw11=300)
    assert abi.status_ok(cpl["status"])
    ev = c.wait_cqe(0)
    assert ev["cid"] == 77 and ev["result"] & 0x7 == abi.AsyncEventType.HEALTH
