"""ABI 1.1 NEED_WAKEUP: the SQ flags in the status area, from a raw client's point of view.

The device sets an SQ's NEED_WAKEUP flag whenever its engine may sleep and clears it while the
engine is awake; a client that stores its tail, fences and then finds the flag clear may skip
the kick. A 1.0 client that always kicks keeps working (every other test here is one).
"""

from __future__ import annotations

import pytest
from rawclient import RawClient

from accelctl.protocol import abi
from accelctl.protocol.fence import make_fence
from tests._wait import wait_until

FENCE = make_fence()


def _flag(c: RawClient, qid: int) -> int:
    assert c.db is not None
    return c.db[abi.sq_flags_index(qid)] & abi.SQ_FLAG_NEED_WAKEUP


def _wait_flag(c: RawClient, qid: int, want: int) -> bool:
    return wait_until(lambda: _flag(c, qid) == want, interval=0.001)


def _set_poll_us(c: RawClient, us: int) -> None:
    cpl = c.admin(abi.AdminOpcode.SET_FEATURES, cdw10=abi.Feature.DEVICE_POLL_US, cdw11=us)
    assert abi.status_ok(cpl["status"])


def test_version_offers_need_wakeup_and_flags_live_in_the_status_area(sock_a):
    assert abi.ABI_VERSION >= (1, 1)
    assert abi.sq_flags_index(0) * 4 == abi.STATUS_SQ_FLAGS_OFFSET >= abi.STATUS_AREA_OFFSET
    assert (abi.sq_flags_index(abi.MAX_QUEUES - 1) + 1) * 4 <= abi.DOORBELL_PAGE_SIZE
    with RawClient(sock_a) as c:
        caps = c.json(abi.CtrlCmd.VERSION, {"abi": [1, 0]})  # a 1.0 client is still served
        assert caps["abi"] == list(abi.ABI_VERSION) and caps["abi"][1] >= 1
        assert abi.FEATURE_NEED_WAKEUP in caps["features"]


@pytest.mark.skipif(FENCE is None, reason="no full fence on this CPU: the device keeps NEED_WAKEUP set")
def test_flag_is_set_while_the_engine_sleeps_and_clear_while_it_spins(sock_a):
    with RawClient(sock_a) as c:
        c.enable()
        c.create_io_queue(1)
        # Idle: the engine sleeps on its kicks, so both SQs ask for one.
        assert _wait_flag(c, 0, 1) and _wait_flag(c, 1, 1)
        # A command with a long device poll: the engine is awake (spinning) after it for longer
        # than any pause of this test on a busy machine (until the poll is set back below).
        _set_poll_us(c, 60_000_000)
        cpl = c.io(1, abi.IoOpcode.FILL, cdw10=0, cdw12=64, cdw13=7)
        assert abi.status_ok(cpl["status"])
        assert _flag(c, 1) == 0 and _flag(c, 0) == 0
        # Skip the kick, as a NEED_WAKEUP client may: the spinning engine still sees the doorbell.
        c.submit(1, abi.IoOpcode.FILL, cdw10=64, cdw12=64, cdw13=8, ring=False)
        c.db[abi.sq_doorbell_index(1)] = c.queues[1]["tail"]
        cpl = c.wait_cqe(1, use_irq=False)
        assert cpl is not None and abi.status_ok(cpl["status"])
        # Back to a short poll: once idle, the engine sets the flags again before it sleeps.
        _set_poll_us(c, 0)
        assert _wait_flag(c, 0, 1) and _wait_flag(c, 1, 1)

# Racing submissions against the engine's way to sleep: tests/driver/test_hot_paths.py, against a
# daemon process (an embedded engine shares this process's GIL, so the race would not happen).
