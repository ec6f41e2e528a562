"""The daemon under attack: a simulator daemon in its own process for each test; and a
directory a second user can reach."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ._daemon import DaemonProcess, stop_cleanly


@pytest.fixture
def daemon():
    d = DaemonProcess()
    yield d
    stop_cleanly(d)


@pytest.fixture
def public_tmp():
    """A directory the second user can reach (pytest's tmp_path sits below a 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix="accelctl-adv-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    for dirpath, dirnames, _ in os.walk(d):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
    shutil.rmtree(d, ignore_errors=True)
