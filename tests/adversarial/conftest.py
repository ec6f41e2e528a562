"""The daemon under attack: a simulator daemon in its own process for each test."""

from __future__ import annotations

import pytest

from ._daemon import DaemonProcess, stop_cleanly


@pytest.fixture
def daemon():
    d = DaemonProcess()
    yield d
    stop_cleanly(d)
