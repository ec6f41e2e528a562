"""A session nobody closed is garbage-collected without device I/O: no drain, no register write,
no callback (the collector may run it at any time, in any thread). Only this process's fds and
maps go; the daemon releases its side when the socket closes, as the kernel does for a dead process.

The daemon's own tables are the witness: the test keeps a duplicate of the session's socket, so
the daemon still shows the dropped session's controller as it was left, then closes it.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

from accelctl.driver import commands as cmds
from accelctl.driver.session import Session
from accelctl.protocol import abi

from ._sim import SimHarness
from .conftest import Ledger


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _wait_for(condition, tries: int = 500) -> bool:
    import time

    for _ in range(tries):
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def sim() -> Iterator[SimHarness]:
    """A daemon in its own process, so every fd counted here is the client's."""
    harness = SimHarness.process()
    try:
        yield harness
    finally:
        harness.stop()


def test_a_dropped_session_does_no_device_io_and_runs_no_callback(sim: SimHarness, ledger: Ledger) -> None:
    gc.collect()
    baseline_fds = _open_fds()
    session = Session(sim.socket_path())
    session.write_memory(0, b"pooled")  # a pool buffer and the default IO queue exist
    sim.add_fault(kind="drop_cqe", opcode=int(abi.IoOpcode.FILL), count=0)
    callbacks: list[object] = []
    request = session.submit(cmds.fill(0, 4096, 7), callback=callbacks.append)
    [before] = sim.sessions()
    assert before["cc"] & abi.CC_EN
    keep = os.dup(session.controller.control.fileno())  # the daemon keeps the session while we hold this
    try:
        # Its commands (this one, the standing async event request) end with it, without a
        # callback, trackers left as they were: by design, so the ledger must not expect them.
        abandoned = session.controller
        ledger.controllers.remove(abandoned)
        ledger.requests[:] = [r for r in ledger.requests if r.qpair not in abandoned._ledger_qpairs]
        del abandoned
        del session, request
        gc.collect()
        # Only local resources went: every fd the session held but the duplicate is closed.
        assert _open_fds() == baseline_fds + 1
        [after] = sim.sessions()
        assert after["id"] == before["id"]
        assert after["cc"] == before["cc"]  # no disable written (the old finalizer wrote CC=0)
        assert after["csts"] == before["csts"]
        assert len(after["queues"]) == len(before["queues"])  # no queue deleted
        assert callbacks == []
    finally:
        os.close(keep)
    # The socket's last reference is gone: the daemon releases the session.
    assert _wait_for(lambda: not sim.sessions())
