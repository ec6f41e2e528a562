"""Driver-core test harness: a simulator daemon per test module, and the ledger checked after
every test (driver-core.md 5.1):

- every command that reached a queue ended exactly once (its callback ran once) and is DONE or
  CANCELLED;
- every session the test opened is closed, with every tracker free and nothing queued;
- every DMA buffer's reference count is zero;
- the daemon holds no connection of this test once its sessions are closed;
- no stale CQE and no double finish, unless the test says it injected them.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

import pytest

from accelctl.driver import controller as controller_mod
from accelctl.driver import dma as dma_mod
from accelctl.driver import tracker as tracker_mod

from tests._wait import wait_until

from ._sim import SimHarness


class Ledger:
    def __init__(self) -> None:
        self.requests: list[tracker_mod.Request] = []
        self.callbacks: collections.Counter[int] = collections.Counter()
        self.controllers: list[controller_mod.Controller] = []
        self.buffers: list[dma_mod.DmaBuffer] = []
        #: Set by tests that inject duplicate / bogus completions on purpose.
        self.allow_stale_cqe = False

    def stale_cqes(self) -> int:
        return sum(qp.trackers.counters.stale_cqe for c in self.controllers for qp in _qpairs(c))

    def check(self) -> None:
        for ctrl in self.controllers:
            assert ctrl.state is controller_mod.ControllerState.CLOSED, f"session left open ({ctrl.state})"
            for qp in _qpairs(ctrl):
                assert qp.trackers.outstanding == 0, f"qpair {qp.qid}: trackers still busy"
                assert not qp.queued, f"qpair {qp.qid}: requests still queued"
                assert qp.trackers.counters.double_finish == 0
        for req in self.requests:
            if req.qpair is None:
                continue  # built but never accepted (e.g. QueueFullError with block=False)
            assert self.callbacks[id(req)] == 1, f"{req!r} completed {self.callbacks[id(req)]} times"
            assert req.state in (tracker_mod.RequestState.DONE, tracker_mod.RequestState.CANCELLED)
        for buf in self.buffers:
            assert buf.refs == 0, f"{buf!r} still referenced"
        if not self.allow_stale_cqe:
            assert self.stale_cqes() == 0


def _qpairs(ctrl: controller_mod.Controller) -> list:
    seen = getattr(ctrl, "_ledger_qpairs", [])
    return seen


@pytest.fixture(autouse=True)
def ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    book = Ledger()
    orig_req_init = tracker_mod.Request.__init__
    orig_buf_init = dma_mod.DmaBuffer.__init__
    orig_ctrl_init = controller_mod.Controller.__init__
    orig_make_qpair = controller_mod.Controller._make_qpair

    def req_init(self, opcode, sqe, callback, buffers=(), timeout_s=None, user_data=None):  # type: ignore[no-untyped-def]
        def counted(req: tracker_mod.Request, _cb=callback) -> None:
            book.callbacks[id(req)] += 1
            if _cb is not None:
                _cb(req)

        orig_req_init(self, opcode, sqe, counted, buffers, timeout_s, user_data)
        book.requests.append(self)

    def buf_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        orig_buf_init(self, *args, **kwargs)
        book.buffers.append(self)

    def ctrl_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._ledger_qpairs = []
        book.controllers.append(self)
        try:
            orig_ctrl_init(self, *args, **kwargs)
        except BaseException:
            book.controllers.remove(self)
            raise

    def make_qpair(self, qid, depth):  # type: ignore[no-untyped-def]
        qp = orig_make_qpair(self, qid, depth)
        self._ledger_qpairs.append(qp)
        return qp

    monkeypatch.setattr(tracker_mod.Request, "__init__", req_init)
    monkeypatch.setattr(dma_mod.DmaBuffer, "__init__", buf_init)
    monkeypatch.setattr(controller_mod.Controller, "__init__", ctrl_init)
    monkeypatch.setattr(controller_mod.Controller, "_make_qpair", make_qpair)
    yield book
    book.check()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHarness]:
    """An embedded simulator daemon (thread) serving a few hand-built endpoints."""
    harness = SimHarness.embedded()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture
def endpoint(sim: SimHarness, ledger: Ledger) -> Iterator[str]:
    """The socket path of a clean endpoint; after the test, no connection of it may remain."""
    sim.clear_faults()
    path = sim.socket_path()
    yield path
    wait_until(lambda: sim.connection_count() == 0)
    assert sim.connection_count() == 0, f"daemon still holds connections: {sim.introspect()}"
    sim.clear_faults()
