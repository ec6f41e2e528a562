"""The daemon as a separate process: start/status/stop, and the daemon killed mid-IO."""

from __future__ import annotations

import os
import signal

import pytest
from rawclient import RawClient

from accelctl.protocol import abi
from accelctl.sim import service
from tests._wait import wait_until

fixture_mod = pytest.importorskip("accelctl.sim.fixture")


@pytest.fixture
def root(short_dir, monkeypatch):
    monkeypatch.setenv(service.RUNTIME_DIR_ENV, str(short_dir / "run"))
    try:
        path = fixture_mod.bundled_fixture_root("one-card")
    except Exception as exc:  # the fixture builder is written concurrently
        pytest.skip(f"bundled fixture unavailable: {exc}")
    yield path
    try:
        service.stop(path)
    except service.SimulatorError:
        pass


def _served(root, memory_size=16 << 20):
    """What the simulator platform serves for the fixture, with small device memories."""
    import dataclasses

    from accelctl.machine import open_machine

    served = open_machine(sysfs_root=root).platform.served_endpoints()
    return [dataclasses.replace(e, memory_size=memory_size) for e in served]


def test_process_lifecycle_and_daemon_killed_mid_io(root):
    st = service.start_process(root, _served(root))
    assert st.running and st.mode == "process" and st.pid != os.getpid()
    assert service.status(root).pid == st.pid
    bdf, path = sorted(st.sockets.items())[0]
    assert path == str(service.socket_path(root, bdf))
    with RawClient(path) as c:
        c.enable()
        c.create_io_queue(1)
        buf, iova = c.alloc(65536)
        for _ in range(50):
            c.submit(1, abi.IoOpcode.WRITE, dptr=iova, cdw12=65536)
            assert c.wait_cqe(1) is not None
        c.submit(1, abi.IoOpcode.WRITE, dptr=iova, cdw12=65536)
        os.kill(st.pid, signal.SIGKILL)
        assert wait_until(lambda: not service.status(root).running)  # the flock died with it
        assert c.sock.recv(10) == b""  # EOF: the client's signal that the device is gone
    # a new daemon starts over the stale socket files
    st2 = service.start_process(root, _served(root))
    assert st2.running and st2.pid != st.pid
    assert service.stop(root) is True
    assert not service.status(root).running
    assert service.stop(root) is False


def test_embedded_refuses_second_daemon_and_is_shared(root):
    with service.start_embedded(root, _served(root)) as sim:
        assert sim.endpoints
        st = service.status(root)
        assert st.running and st.mode == "embedded" and st.pid == os.getpid()
        with pytest.raises(service.SimulatorError):
            service.start_embedded(root, _served(root))
        st = service.ensure_running(root, lambda: pytest.fail("must reuse the running daemon"))
        assert set(st.sockets) == set(sim.endpoints)
        with RawClient(str(sim.socket_path(sim.endpoints[0]))) as c:
            info = c.json(abi.CtrlCmd.GET_INFO)
            assert info["bdf"] == sim.endpoints[0] and info["memory_size"] <= 16 << 20
    assert not service.status(root).running
