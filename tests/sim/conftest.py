"""Fixtures for simulator tests: a real daemon (embedded thread) on real sockets in a short dir."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

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
