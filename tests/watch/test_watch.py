"""`watch --json --count N` in a real subprocess while the test mutates a fixture tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from accelctl.platform import fixture_mutate
from accelctl.sim.fixture import build_fixture, bundled_spec_path
from accelctl.sysfs import SysfsRoot


def test_watch_reports_link_aer_and_removal(tmp_path):
    tree = str(build_fixture(bundled_spec_path("two-socket"), tmp_path / "sys"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "accelctl", "--sysfs-root", tree, "watch", "--json", "--interval", "0.1",
         "--count", "4", "--duration", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1.5)  # let it take its first reading
        root = SysfsRoot(tree)
        fixture_mutate.set_link(root, "0000:06:00.0", width=4)
        time.sleep(0.5)
        fixture_mutate.bump_aer(root, "0000:07:00.0", "RxErr", by=50)
        time.sleep(0.5)
        fixture_mutate.remove_function(root, "0000:08:00.0")
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    # both ends of the link retrain: the card's downstream port and the endpoint
    assert [(e["action"], e["bdf"]) for e in events] == [
        ("link", "0000:04:01.0"),
        ("link", "0000:06:00.0"),
        ("aer", "0000:07:00.0"),
        ("remove", "0000:08:00.0"),
    ]
    _, link, aer, _ = events
    assert link["before"]["width"] == 16 and link["after"]["width"] == 4
    assert aer["severity"] == "correctable" and aer["delta"] == 50 and aer["rate_per_s"] > 0
    assert all(e["schema_version"] == 1 for e in events)


def test_watch_filters_to_accelerators_unless_all(tmp_path):
    tree = str(build_fixture(bundled_spec_path("two-socket"), tmp_path / "sys"))
    # a switch port's link changes: not an accelerator (no card) -> filtered out by default
    proc = subprocess.Popen(
        [sys.executable, "-m", "accelctl", "--sysfs-root", tree, "watch", "--json", "--interval", "0.1",
         "--duration", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(1.2)
    fixture_mutate.bump_aer(SysfsRoot(tree), "0000:00:01.1", "RxErr", by=5)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert [json.loads(line)["bdf"] for line in stdout.splitlines()] == []
    _ = os
