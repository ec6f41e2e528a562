"""Shared test set-up: stable rendering, and helpers to build fixture trees once per session."""

from __future__ import annotations

import os
import shutil

import pytest

os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("COLUMNS", "200")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    # Never read the developer's real state, cache or environment overrides in a test.
    cache = tmp_path_factory.getbasetemp() / "accelctl-cache"
    monkeypatch.setenv("ACCELCTL_CACHE_DIR", str(cache))
    for var in ("ACCELCTL_SYSFS_ROOT", "ACCELCTL_FIXTURE", "ACCELCTL_ACCEL_IDS", "ACCELCTL_DEBUG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session", autouse=True)
def _no_simulator_outlives_the_session(tmp_path_factory):
    """Commands start a fixture's simulator on demand as a background process that outlives them
    (it exits after minutes idle). Stop every one this session started, so none lingers."""
    base = str(tmp_path_factory.getbasetemp())
    yield
    import signal

    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"accelctl.sim.device" in argv and any(a.decode(errors="replace").startswith(base) for a in argv):
            try:
                os.kill(int(pid), signal.SIGTERM)
            except OSError:
                pass


def pytest_collection_modifyitems(config, items):
    # `long` tests (minutes of adversarial load) run only when asked for: -m long.
    if "long" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long: run with  python3 -m pytest -m long tests/adversarial")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


def lspci_available() -> bool:
    return shutil.which("lspci") is not None


@pytest.fixture(scope="session")
def real_roots(tmp_path_factory):
    """The real machines' trees (tests/real_machines.py), unpacked once per session:
    name -> sysfs root. Skips when ../shared/real-machines is not there."""
    from tests.real_machines import REAL, unpack_real_machines

    if not REAL.is_dir():
        pytest.skip(f"{REAL} is not here (a clone without it)")
    return unpack_real_machines(tmp_path_factory.mktemp("real-machines"))


requires_lspci = pytest.mark.skipif(not lspci_available(), reason="lspci (pciutils) not installed")
