"""One session must not reach another's device state (issue 14, "Security"): faults are armed
only through the administrative socket, and device memory a session allocated is its alone.
"""

from __future__ import annotations

import errno
import os
import stat

import pytest

from accelctl.protocol import abi

from ._daemon import BDF, CtrlError, RawClient, add_fault, admin_request, assert_survived
from ._second_user import OTHER_UID, needs_root, run_as_other_user

MiB = 1 << 20


# --- faults -----------------------------------------------------------------------------------


def test_a_session_cannot_inject_faults(daemon):
    """Any client could arm a fault on the endpoint (FAULT on its own connection), and a fault
    hits every session: here one that would drop every completion of the victim's queue."""
    with RawClient(daemon.socket()) as attacker:
        with pytest.raises(CtrlError) as info:
            attacker.json(abi.CtrlCmd.FAULT, {"add": [{"kind": "drop_cqe", "qid": 1, "count": 0}]})
        assert info.value.errno == errno.EPERM
        with pytest.raises(CtrlError) as info:
            attacker.json(abi.CtrlCmd.FAULT, {"add": [{"kind": "daemon_death", "now": True}]})
        assert info.value.errno == errno.EPERM
    assert admin_request(daemon, abi.CtrlCmd.FAULT, {"bdf": BDF})["faults"] == []
    assert_survived(daemon)


def test_the_admin_socket_is_the_owners_only(daemon):
    mode = os.stat(daemon.admin_socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    add_fault(daemon, kind="drop_cqe", qid=1, nth=1_000_000)  # the owner may
    assert len(admin_request(daemon, abi.CtrlCmd.FAULT, {"bdf": BDF})["faults"]) == 1


@needs_root
def test_another_user_cannot_use_the_admin_socket(daemon):
    """Even with the directory and the socket opened to everyone, the daemon checks the peer."""
    for path in (daemon.workdir, daemon.socket_dir):
        os.chmod(path, 0o755)
    os.chmod(daemon.admin_socket, 0o777)

    def attack() -> None:
        with RawClient(daemon.admin_socket) as c:
            try:
                c.json(abi.CtrlCmd.FAULT, {"bdf": BDF, "add": [{"kind": "daemon_death", "now": True}]})
            except (ConnectionError, OSError):
                return  # closed at accept: refused
            raise AssertionError(f"uid {OTHER_UID} armed a fault")

    run_as_other_user(attack)
    assert admin_request(daemon, abi.CtrlCmd.FAULT, {"bdf": BDF})["faults"] == []
    assert_survived(daemon)


# --- device memory ------------------------------------------------------------------------------


def _io(c: RawClient, opcode: int, dev: int, length: int, iova: int, **kw) -> int:
    lo, hi = abi.split_u64(dev)
    return c.io(1, opcode, dptr=iova, dlen=length, cdw10=lo, cdw11=hi, cdw12=length, **kw)["status"]


def _alloc(c: RawClient, size: int, address: int = abi.MEM_ANY) -> int:
    body, _ = c.request(abi.CtrlCmd.MEM_ALLOC, abi.CTRL_MEM_ALLOC.pack(address, size, 0))
    return abi.CTRL_MEM_ADDR.unpack(body)[0]


def _wait_released(c: RawClient, session_id: int) -> None:
    """Until the daemon has released that session (it does so when it sees the EOF)."""
    for _ in range(100_000):
        if all(s["id"] != session_id for s in c.introspect()["endpoints"][BDF]["sessions"]):
            return
    pytest.fail(f"session {session_id} never released")


def test_device_memory_a_session_allocated_is_its_alone(daemon):
    """One session read and overwrote another's VICTIM bytes: device memory was one shared
    space. Memory a session allocates is now refused to every other session (read, write,
    compare, fill, copy in or out), and zeroed when it is freed or its owner goes away."""
    secret = b"VICTIM-" * 100
    with RawClient(daemon.socket()) as victim, RawClient(daemon.socket()) as attacker:
        for c in (victim, attacker):
            c.enable()
            c.create_io_queue(1)
        vbuf, viova = victim.alloc(MiB)
        where = _alloc(victim, MiB)
        vbuf.view[: len(secret)] = secret
        assert _io(victim, abi.IoOpcode.WRITE, where, 4096, viova) == 0

        abuf, aiova = attacker.alloc(MiB)
        denied = abi.STATUS_ACCESS_DENIED
        assert _io(attacker, abi.IoOpcode.READ, where, 4096, aiova) == denied
        assert _io(attacker, abi.IoOpcode.READ, where - 4096, 8192, aiova) == denied  # a range overlapping it
        assert bytes(abuf.view[: len(secret)]) != secret
        abuf.view[:4096] = b"X" * 4096
        assert _io(attacker, abi.IoOpcode.WRITE, where, 4096, aiova) == denied
        assert _io(attacker, abi.IoOpcode.COMPARE, where, 4096, aiova) == denied
        assert attacker.io(1, abi.IoOpcode.FILL, cdw10=where, cdw12=4096, cdw13=0x41414141)["status"] == denied
        # COPY out of it into scratch, and into it from scratch
        assert attacker.io(1, abi.IoOpcode.COPY, cdw10=0, cdw12=4096, cdw14=where)["status"] == denied
        assert attacker.io(1, abi.IoOpcode.COPY, cdw10=where, cdw12=4096, cdw14=0)["status"] == denied
        # nor may it allocate the same range, or free the victim's
        with pytest.raises(CtrlError) as info:
            _alloc(attacker, MiB, where)
        assert info.value.errno == errno.EBUSY
        with pytest.raises(CtrlError) as info:
            attacker.request(abi.CtrlCmd.MEM_FREE, abi.CTRL_MEM_ADDR.pack(where))
        assert info.value.errno == errno.ENOENT

        # the victim's bytes are intact and its own IO works
        vbuf.view[:4096] = bytes(4096)
        assert _io(victim, abi.IoOpcode.READ, where, 4096, viova) == 0
        assert bytes(vbuf.view[: len(secret)]) == secret
        victim_id = victim.json(abi.CtrlCmd.GET_INFO)["session_id"]
        victim.close()  # its process goes away: the allocation is freed and scrubbed
        _wait_released(attacker, victim_id)
        assert _io(attacker, abi.IoOpcode.READ, where, 4096, aiova) == 0
        assert bytes(abuf.view[:4096]) == bytes(4096)
    assert_survived(daemon)


def test_freed_memory_is_zeroed_and_allocation_limits_hold(daemon):
    with RawClient(daemon.socket()) as c:
        c.enable()
        c.create_io_queue(1)
        buf, iova = c.alloc(64 << 10)
        a = _alloc(c, 64 << 10)
        buf.view[:8] = b"leftover"
        assert _io(c, abi.IoOpcode.WRITE, a, 4096, iova) == 0
        c.request(abi.CtrlCmd.MEM_FREE, abi.CTRL_MEM_ADDR.pack(a))
        buf.view[:8] = b"........"
        assert _io(c, abi.IoOpcode.READ, a, 4096, iova) == 0
        assert bytes(buf.view[:8]) == bytes(8)
        for bad in ((abi.MEM_ANY, 0), (abi.MEM_ANY, 100), (3, 4096), (abi.MEM_ANY, 1 << 40)):
            with pytest.raises(CtrlError) as info:
                _alloc(c, bad[1], bad[0])
            assert info.value.errno in (errno.EINVAL, errno.ENOMEM, errno.ENOSPC)
        info_json = c.introspect()["endpoints"][BDF]["sessions"]
        assert info_json[0]["device_memory"] == []
    assert_survived(daemon)


def test_driver_sessions_keep_their_device_memory(daemon):
    """The same through the driver core's API, as a runtime would use it."""
    from accelctl.driver.session import Session
    from accelctl.errors import CommandError

    with Session(daemon.socket()) as victim, Session(daemon.socket()) as attacker:
        where = victim.alloc_device_memory(10_000)  # rounded up to whole pages
        assert where % 4096 == 0
        victim.write_memory(where, b"VICTIM" * 1000)
        with pytest.raises(CommandError) as info:
            attacker.read_memory(where + 4096, 16)
        assert info.value.status & 0xFFFE == abi.STATUS_ACCESS_DENIED
        with pytest.raises(CommandError):
            attacker.write_memory(where, b"overwritten")
        assert victim.read_memory(where, 6000) == (b"VICTIM" * 1000)[:6000]
        assert attacker.alloc_device_memory(4096) != where  # its own, elsewhere
        victim.free_device_memory(where)
        assert attacker.read_memory(where, 16) == bytes(16)  # zeroed when freed
    assert_survived(daemon)
