"""Release on close and on SIGKILL; malformed messages and fd floods never hurt other clients."""

from __future__ import annotations

import array
import errno
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BDF_A
from rawclient import CtrlError, RawClient

from accelctl.protocol import abi
from accelctl.sim.device.quota import MAX_CONNECTIONS_PER_PEER
from tests._wait import wait_until


def _sessions(daemon):
    return daemon.introspect()["endpoints"][BDF_A]["sessions"]


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def _busy_client(c):
    c.enable()
    c.create_io_queue(1)
    c.create_io_queue(2)
    buf, iova = c.alloc(1 << 20)
    assert abi.status_ok(c.io(1, abi.IoOpcode.WRITE, dptr=iova, cdw12=4096)["status"])
    c.request(abi.CtrlCmd.SET_EVENT_NOTIFIER, b"", [os.eventfd(0, os.EFD_CLOEXEC)])


def test_close_releases_everything(daemon, sock_a):
    baseline = _open_fds()
    c = RawClient(sock_a)
    _busy_client(c)
    (s,) = _sessions(daemon)
    assert s["queues"] and s["dma_maps"] and s["kicks"] and s["irqs"] and s["notifier"] and s["engine_alive"]
    c.close()
    assert wait_until(lambda: _sessions(daemon) == [])
    # every fd the session held (memfd maps are mmaps, eventfds, doorbell memfd, socket) is gone;
    # the notifier eventfd we created in _busy_client leaked on OUR side only: it was sent, not kept.
    assert wait_until(lambda: _open_fds() <= baseline + 1)
    threads = [t for t in __import__("threading").enumerate() if t.name.startswith("accelsim-engine")]
    assert threads == []


CHILD = r"""
import os, sys, time
sys.path[:0] = [{tests!r}, {repo!r}]
from rawclient import RawClient
from accelctl.protocol import abi
c = RawClient({path!r})
c.enable(); c.create_io_queue(1)
buf, iova = c.alloc(1 << 20)
print("ready", flush=True)
c.submit(1, abi.IoOpcode.WRITE, dptr=iova, cdw12=65536)
c.wait_cqe(1)
print("io", flush=True)
while True:  # IO until killed
    c.submit(1, abi.IoOpcode.WRITE, dptr=iova, cdw12=65536)
    c.wait_cqe(1)
"""


def test_sigkill_of_client_process_releases_its_session_only(daemon, sock_a):
    with RawClient(sock_a) as survivor:
        survivor.enable()
        survivor.create_io_queue(1)
        buf, iova = survivor.alloc(4096)
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD.format(tests=str(Path(__file__).parent),
                                                repo=str(Path(__file__).parents[2]), path=sock_a)],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            assert len(_sessions(daemon)) == 2
            assert child.stdout.readline().strip() == "io"  # mid-IO
            child.send_signal(signal.SIGKILL)
            child.wait(5)
        finally:
            child.kill()
        assert wait_until(lambda: len(_sessions(daemon)) == 1)
        (s,) = _sessions(daemon)
        assert s["pid"] == os.getpid()
        for _ in range(100):
            assert abi.status_ok(survivor.io(1, abi.IoOpcode.WRITE, dptr=iova, cdw12=4096)["status"])


def _raw_send(path, data, fds=()):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(path)
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
    s.sendmsg([data], anc)
    return s


def _dropped(s):
    """The daemon closed the connection (EOF) without replying."""
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


def _eventfds(n):
    return [os.eventfd(0, os.EFD_CLOEXEC) for _ in range(n)]


@pytest.mark.parametrize(
    "case",
    ["short", "size_mismatch", "truncated", "oversized", "reply_flag", "fd_flood", "fds_on_get_info",
     "two_fds_on_dma_map", "fds_on_unknown"],
)
def test_malformed_messages_drop_only_that_connection(daemon, sock_a, case):
    with RawClient(sock_a) as good:
        good.enable()
        good.create_io_queue(1)
        baseline = _open_fds()
        hdr = abi.CTRL_HEADER.pack
        fds: list[int] = []
        if case == "short":
            data = b"\x01\x02\x03"
        elif case == "size_mismatch":
            data = hdr(1, abi.CtrlCmd.GET_INFO, 99, 0, 0)
        elif case == "truncated":
            data = hdr(1, abi.CtrlCmd.REG_WRITE, 16 + abi.CTRL_REG_WRITE.size, 0, 0) + b"\0" * 4
        elif case == "oversized":
            data = hdr(1, abi.CtrlCmd.GET_INFO, 16 + 100000, 0, 0) + b"\0" * 100000
        elif case == "reply_flag":
            data = hdr(1, abi.CtrlCmd.GET_INFO, 16, abi.CtrlFlags.REPLY, 0)
        elif case == "fd_flood":
            fds = _eventfds(200)
            data = hdr(1, abi.CtrlCmd.SET_KICKS, 16 + 8, 0, 0) + abi.CTRL_FD_RANGE.pack(0, 200)
        elif case == "fds_on_get_info":
            fds = _eventfds(3)
            data = hdr(1, abi.CtrlCmd.GET_INFO, 16, 0, 0)
        elif case == "two_fds_on_dma_map":
            fds = _eventfds(2)
            data = hdr(1, abi.CtrlCmd.DMA_MAP, 16 + abi.CTRL_DMA_MAP.size, 0, 0) + abi.CTRL_DMA_MAP.pack(0, 4096, 0, 3)
        else:
            fds = _eventfds(1)
            data = hdr(1, 4242, 16, 0, 0)
        s = _raw_send(sock_a, data, fds)
        for fd in fds:
            os.close(fd)
        try:
            assert _dropped(s)
        finally:
            s.close()
        # the daemon closed every fd that came with the bad message
        assert wait_until(lambda: _open_fds() <= baseline)
        assert wait_until(lambda: len(_sessions(daemon)) == 1)
        assert abi.status_ok(good.io(1, abi.IoOpcode.FLUSH)["status"])


def test_semantic_errors_reply_and_close_fds(daemon, sock_a):
    with RawClient(sock_a) as c:
        c.json(abi.CtrlCmd.GET_INFO)  # the session exists (accepted) before the baseline is taken
        baseline = _open_fds()
        memfd = os.memfd_create("not-an-eventfd", os.MFD_CLOEXEC)
        with pytest.raises(CtrlError) as e:
            c.request(abi.CtrlCmd.SET_KICKS, abi.CTRL_FD_RANGE.pack(0, 1), [memfd])
        assert e.value.errno == errno.EINVAL
        kicks = _eventfds(2)
        with pytest.raises(CtrlError) as e:  # count disagrees with the fds attached
            c.request(abi.CtrlCmd.SET_KICKS, abi.CTRL_FD_RANGE.pack(0, 1), kicks)
        with pytest.raises(CtrlError) as e:
            c.request(abi.CtrlCmd.SET_IRQS, abi.CTRL_FD_RANGE.pack(63, 2), kicks)
        for fd in kicks + [memfd]:
            os.close(fd)
        assert wait_until(lambda: _open_fds() <= baseline)
        assert c.json(abi.CtrlCmd.GET_INFO)["bdf"] == BDF_A


def test_connection_flood_is_bounded(daemon, sock_a):
    socks = []
    try:
        for _ in range(80):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(sock_a)
            socks.append(s)
        # one process gets its per-peer share; the rest are closed at accept
        assert wait_until(lambda: len(_sessions(daemon)) == MAX_CONNECTIONS_PER_PEER)
    finally:
        for s in socks:
            s.close()
    assert wait_until(lambda: len(_sessions(daemon)) == 0)
    with RawClient(sock_a) as c:
        assert c.json(abi.CtrlCmd.GET_INFO)["bdf"] == BDF_A
