"""Opening a session survives a lost admin completion (issue 14: "Session open gives up after
one lost admin completion (a retryable error, 5 of 8 runs)").

A dropped completion during bring-up is what a flaky link or a firmware hiccup looks like: the
command times out, the controller resets and the command ends ABORTED_SQ_DELETION, which is
retryable. Open must retry it, as it would any command after open, not give up.
"""

from __future__ import annotations

import pytest

from accelctl.driver.session import Session
from accelctl.protocol import abi

from ._daemon import BDF, add_fault, admin_request, assert_survived


@pytest.mark.parametrize(("opcode", "wait"), [
    (abi.AdminOpcode.IDENTIFY, "interrupt"),
    (abi.AdminOpcode.IDENTIFY, "poll"),
    (abi.AdminOpcode.SET_FEATURES, "poll"),  # DEVICE_POLL_US, sent at open in poll mode only
])
def test_open_retries_a_lost_admin_completion(daemon, opcode, wait):
    # the next bring-up admin command of this opcode loses its completion (once)
    add_fault(daemon, kind="drop_cqe", qid=0, opcode=int(opcode), count=1)
    with Session(daemon.socket(), wait=wait, admin_timeout_s=0.5) as dev:
        assert dev.identify()["serial"] == "aa-00-00-00-00-00-00-01"
        assert dev.controller.counters.resets >= 1  # it did time out and recover
        assert dev.controller.counters.bring_up_retries == 1
        aers = [s["aers"] for s in admin_request(daemon, abi.CtrlCmd.INTROSPECT, b"")["endpoints"][BDF]["sessions"]]
        assert aers == [1]  # one async event request outstanding, not one per recovery
        dev.write_memory(0, b"opened")
        assert dev.read_memory(0, 6) == b"opened"
    faults = admin_request(daemon, abi.CtrlCmd.FAULT, {"bdf": BDF})["faults"]
    assert faults == []  # the fault fired (and was used up)
    assert_survived(daemon)


def test_open_gives_up_when_every_completion_is_lost(daemon):
    """Retrying is bounded: a device that never answers still fails the open, with a clear error."""
    from accelctl.errors import DriverError

    add_fault(daemon, kind="drop_cqe", qid=0, opcode=int(abi.AdminOpcode.IDENTIFY), count=0)
    with pytest.raises(DriverError):
        Session(daemon.socket(), admin_timeout_s=0.2, max_resets=2)
    admin_request(daemon, abi.CtrlCmd.FAULT, {"bdf": BDF, "clear": True})
    assert_survived(daemon)
