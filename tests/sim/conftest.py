"""Fixtures for simulator tests: a real daemon (embedded thread) on real sockets in a short dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from accelctl.sim import service  # noqa: E402
from accelctl.sim.device import DeviceDaemon, EndpointConfig  # noqa: E402

BDF_A = "0000:03:00.0"
BDF_B = "0000:04:00.0"
MEM = 8 << 20


@pytest.fixture
def short_dir():
    # AF_UNIX paths are limited to 107 bytes: pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix="asim")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def make_daemon(directory: Path, **kw) -> DeviceDaemon:
    endpoints = [
        EndpointConfig(BDF_A, serial="aa-bb-cc-dd-ee-ff-00-01", model="sim-x1", memory_size=MEM, card=0),
        EndpointConfig(BDF_B, serial="aa-bb-cc-dd-ee-ff-00-02", model="sim-x1", memory_size=MEM, card=1),
    ]
    d = DeviceDaemon(endpoints, directory / "sock", state_dir=directory / "state", **kw)
    d.start_thread()
    return d


@pytest.fixture
def daemon(short_dir):
    d = make_daemon(short_dir)
    yield d
    d.stop()


@pytest.fixture
def sock_a(daemon):
    return str(daemon.endpoints[BDF_A].socket_path)


@pytest.fixture
def sock_b(daemon):
    return str(daemon.endpoints[BDF_B].socket_path)


@pytest.fixture
def env(short_dir, monkeypatch):
    """The environment of CLI commands in a private runtime directory (this process uses it too);
    every simulator started there is stopped afterwards."""
    monkeypatch.setenv(service.RUNTIME_DIR_ENV, str(short_dir / "run"))
    e = dict(os.environ, ACCELCTL_SIM_IDLE_EXIT_S="120")
    for var in ("ACCELCTL_VISIBLE_DEVICES", "ACCELCTL_ACCEL_IDS", "ACCELCTL_FIXTURE", "ACCELCTL_SYSFS_ROOT"):
        e.pop(var, None)
    yield e
    subprocess.run([sys.executable, "-m", "accelctl", "sim", "stop", "--all"], env=e, capture_output=True, timeout=60)
