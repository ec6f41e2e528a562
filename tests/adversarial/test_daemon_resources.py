"""One client must not exhaust, freeze or crash what the daemon shares with everyone (issue 14):
its memory mappings, its session locks, its connections and its file descriptors.

Each attack runs against a separate daemon process, with an honest client that must keep working.
"""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import textwrap

import pytest

from accelctl.protocol import abi
from accelctl.driver.transport import ControlChannel
from accelctl.sim.device.quota import MAX_CONNECTIONS_PER_PEER

from ._daemon import BDF, OTHER_BDF, REPO, CtrlError, DaemonProcess, RawClient, add_fault, assert_survived, stop_cleanly


def test_truncating_the_doorbell_page_is_refused(daemon):
    """The doorbell memfd handed to a client was not sealed: truncating it made the daemon's
    next store to it fault (SIGBUS, exit 135) and took every session down."""
    with RawClient(daemon.socket()) as attacker:
        attacker.enable()
        attacker.create_io_queue(1)
        _body, fds = attacker.request(abi.CtrlCmd.GET_DOORBELLS)
        try:
            seals = fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)
            assert seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_GROW and seals & fcntl.F_SEAL_SEAL
            with pytest.raises(PermissionError):
                os.ftruncate(fds[0], 0)
            with pytest.raises(PermissionError):
                fcntl.fcntl(fds[0], fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)  # nor freeze the device's writes
            assert os.fstat(fds[0]).st_size == abi.DOORBELL_PAGE_SIZE
        finally:
            os.close(fds[0])
        # the device still writes the page (status mirror) and reads it (doorbells)
        attacker.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.CONTROLLER))
    assert_survived(daemon)


def test_slow_fault_does_not_hold_the_session_lock(daemon):
    """A `slow` fault slept holding the session lock: INTROSPECT (and every control request of
    that session) waited behind it (19.5 s measured, unbounded). The engine now waits without
    the lock: INTROSPECT answers while the slow command is still outstanding."""
    add_fault(daemon, kind="slow", opcode=abi.IoOpcode.FLUSH, qid=1, delay_ms=60_000)
    with RawClient(daemon.socket(), timeout=90) as victim:
        victim.enable()
        victim.create_io_queue(1)
        victim.submit(1, abi.IoOpcode.FLUSH, cid=5)
        # wait (by introspection, which must answer) until the engine is in the slow wait
        watcher = ControlChannel(daemon.socket(), timeout_s=90)
        try:
            for _ in range(10_000):
                view = _introspect(watcher)["endpoints"][BDF]["sessions"]
                if any(s["slow_waiting"] for s in view):
                    break
            else:
                pytest.fail("the slow fault never fired")
            # the session's own control requests answer too, during the wait
            assert victim.reg_read(abi.Reg.CSTS) & abi.CSTS_RDY
            again = _introspect(watcher)["endpoints"][BDF]["sessions"]
            assert any(s["slow_waiting"] for s in again), "answered only after the wait ended"
            assert victim.peek(1) is None  # the slow command has not completed: we were not waiting for it
        finally:
            watcher.close()
        # a controller reset ends the wait at once (no 60 s join)
        victim.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.CONTROLLER))
    assert_survived(daemon)


def _introspect(ch: ControlChannel) -> dict:
    import json

    body, _ = ch.request(abi.CtrlCmd.INTROSPECT)
    return json.loads(body)


def test_big_compare_reports_the_first_difference(daemon):
    """A 64 MiB COMPARE looked for the first differing byte with a Python loop over the whole
    range (2.6 s holding its session). The answer must stay exact: the offset of the first
    difference, found in pieces."""
    size = 16 << 20
    with RawClient(daemon.socket()) as c:
        c.enable()
        c.create_io_queue(1)
        buf, iova = c.alloc(size)
        buf.view[:] = os.urandom(size)
        cpl = c.io(1, abi.IoOpcode.WRITE, timeout=30, dptr=iova, dlen=size, cdw10=0, cdw12=size)
        assert abi.status_ok(cpl["status"])
        for where in (size - 1, (1 << 20) + 3, 0):
            buf.view[where] ^= 0x40
            cpl = c.io(1, abi.IoOpcode.COMPARE, timeout=30, dptr=iova, dlen=size, cdw10=0, cdw12=size)
            assert cpl["status"] == abi.STATUS_COMPARE_FAILURE and cpl["result"] == where
        # through PASSTHRU (the shared control loop) big transfers are refused, small ones served
        sqe = abi.SQE.pack(abi.IoOpcode.COMPARE, 0, 9, 0, 0, 0, 0, iova, size, 0, 0, size, 0, 0, 0)
        reply, _ = c.request(abi.CtrlCmd.PASSTHRU, abi.CTRL_PASSTHRU.pack(1) + sqe)
        assert abi.CQE.unpack(reply)[5] & 0xFFFE == abi.STATUS_INVALID_FIELD
        sqe = abi.SQE.pack(abi.IoOpcode.COMPARE, 0, 9, 0, 0, 0, 0, iova, 4096, 0, 0, 4096, 0, 0, 0)
        reply, _ = c.request(abi.CtrlCmd.PASSTHRU, abi.CTRL_PASSTHRU.pack(1) + sqe)
        assert abi.CQE.unpack(reply)[5] & 0xFFFE == abi.STATUS_COMPARE_FAILURE
    assert_survived(daemon)


_HOLDER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {sim!r})
    from rawclient import RawClient, Memfd, CtrlError
    from accelctl.protocol import abi
    import socket, os
    mode, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    held, refused = [], 0
    if mode == "connections":
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(path)
            held.append(s)
    else:  # mappings: as many DMA mappings as the daemon grants, on as many sessions as it allows
        clients = []
        for _ in range(8):
            try:
                c = RawClient(path)
                c.json(abi.CtrlCmd.GET_INFO)
            except (OSError, ConnectionError):
                break
            clients.append(c)
        for c in clients:
            for _ in range(n):
                buf = Memfd(4096)
                try:
                    c.request(abi.CtrlCmd.DMA_MAP, abi.CTRL_DMA_MAP.pack(c.next_iova, 4096, 0, 3), [buf.fd])
                    c.next_iova += 8192
                except (CtrlError, ConnectionError, OSError):
                    refused += 1
                buf.close()
    print("holding", refused, flush=True)
    sys.stdin.read()  # hold everything until the test is done
""")


def _holder(daemon: DaemonProcess, mode: str, n: int) -> tuple[subprocess.Popen, int]:
    """Another process (quotas are per peer process) that grabs and holds resources."""
    code = _HOLDER.format(sim=str(REPO / "tests" / "sim"))
    proc = subprocess.Popen([sys.executable, "-c", code, mode, daemon.socket(), str(n)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0] == "holding", line
    return proc, int(line[1])


def test_idle_connections_of_one_process_do_not_lock_out_others(daemon):
    """200 idle connections used to fill the endpoint's 64 slots: no one else could connect."""
    proc, _ = _holder(daemon, "connections", 200)
    try:
        view = _introspect_once(daemon)["endpoints"][BDF]["sessions"]
        assert len([s for s in view if s["pid"] == proc.pid]) == MAX_CONNECTIONS_PER_PEER
        assert_survived(daemon, daemon.socket(), daemon.socket(OTHER_BDF))
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def _introspect_once(daemon: DaemonProcess) -> dict:
    ch = ControlChannel(daemon.socket(), timeout_s=30)
    try:
        return _introspect(ch)
    finally:
        ch.close()


def test_dma_mappings_of_one_process_do_not_exhaust_the_daemon():
    """Each DMA mapping keeps a descriptor in the daemon; 1,000 mappings from one client used to
    exhaust its 1,024 and then nobody could connect (accept failed with EMFILE and ended the
    control loop). Here the daemon runs with that limit; one process maps all it can."""
    daemon = DaemonProcess(fd_limit=1024)
    try:
        proc, refused = _holder(daemon, "mappings", 1000)
        try:
            assert refused > 0  # the quota said no (ENOSPC) at some point
            assert_survived(daemon, daemon.socket(), daemon.socket(OTHER_BDF))
            with RawClient(daemon.socket()) as c:  # and the honest client may map buffers too
                for _ in range(20):
                    c.alloc(4096)
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)
    finally:
        stop_cleanly(daemon)


def test_refused_quota_is_enospc():
    daemon = DaemonProcess(fd_limit=1024)
    try:
        with RawClient(daemon.socket()) as c:
            with pytest.raises(CtrlError) as info:
                for _ in range(2000):
                    c.alloc(4096)
            assert info.value.errno == errno.ENOSPC
            assert c.json(abi.CtrlCmd.GET_INFO)["bdf"] == BDF  # the connection itself lives on
        assert_survived(daemon)
    finally:
        stop_cleanly(daemon)


