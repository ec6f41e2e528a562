"""One machine per command: every path sees the same accelerators (--accel-id), the same names
($ACCELCTL_VISIBLE_DEVICES), scans the tree once, and shares one simulator with other commands.

Each test here failed on the tree before the Machine seam (issue 10 item 2, issue 11 item 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accelctl.errors import InvalidAcceleratorIdError
from accelctl.machine import open_machine
from accelctl.platform.roots import SourceKind

NVME = "144d:a80a"  # the two NVMe drives of the two-socket fixture: not accelerators by the table
NVME_BDF = "0000:0f:00.0"


@pytest.fixture
def env(tmp_path):
    """A private runtime dir per test; every simulator started in it is stopped at the end."""
    run_dir = tmp_path / "run"
    e = dict(os.environ, ACCELCTL_RUNTIME_DIR=str(run_dir), ACCELCTL_SIM_IDLE_EXIT_S="120")
    e.pop("ACCELCTL_VISIBLE_DEVICES", None)
    e.pop("ACCELCTL_ACCEL_IDS", None)
    yield e
    for fixture in ("two-socket", "one-card"):
        subprocess.run([sys.executable, "-m", "accelctl", "--fixture", fixture, "sim", "stop"],
                       env=e, capture_output=True, timeout=60)


def run(env, *args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "accelctl", *args], env=env, capture_output=True,
                          input=stdin if stdin is not None else b"", timeout=120)


def test_a_visible_set_holds_for_a_full_bdf_on_the_driver_path(env):
    # card1.ep0 of two-socket is 0000:0b:00.0 (see `accelctl --fixture two-socket list`)
    env = dict(env, ACCELCTL_VISIBLE_DEVICES="card0.ep0")
    by_name = run(env, "--fixture", "two-socket", "admin", "identify", "card1.ep0")
    by_bdf = run(env, "--fixture", "two-socket", "admin", "identify", "0000:0b:00.0")
    assert by_name.returncode == 3, by_name.stderr
    assert by_bdf.returncode == 3, by_bdf.stderr  # was 0: the driver had a resolver of its own
    assert b"not visible" in by_bdf.stderr
    allowed = run(env, "--fixture", "two-socket", "admin", "identify", "0000:05:00.0", "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["bdf"] == "0000:05:00.0"


def test_an_accel_id_makes_a_device_the_simulator_serves(env):
    plain = run(env, "--fixture", "two-socket", "admin", "identify", NVME_BDF)
    assert plain.returncode == 3  # an NVMe drive is no accelerator by the table
    counted = run(env, "--fixture", "two-socket", "--accel-id", NVME, "io", "write", NVME_BDF,
                  stdin=b"hello nvme", )
    # The simulator already running (started by nothing: the first command failed before it)
    # serves the machine's accelerators with the same rules as `list`.
    assert counted.returncode == 0, counted.stderr
    back = run(env, "--fixture", "two-socket", "--accel-id", NVME, "io", "read", NVME_BDF, "-n", "10")
    assert back.returncode == 0 and back.stdout == b"hello nvme", back.stderr


def test_a_daemon_started_with_other_rules_says_so(env):
    assert run(env, "--fixture", "two-socket", "admin", "identify", "card0.ep0").returncode == 0
    other = run(env, "--fixture", "two-socket", "--accel-id", NVME, "admin", "identify", NVME_BDF)
    assert other.returncode == 3
    assert b"accelctl sim stop --fixture two-socket, then retry" in other.stderr  # the way out, pasteable


@pytest.mark.parametrize("level", ["flr", "controller"])
def test_reset_with_an_accel_id_rescans_and_serves_with_it(env, level):
    # With the NVMe drives counted, 0000:0f:00.0 gets a card of its own; the reset's rescan and
    # the simulator must count it too (was: exit 7 "logical address ... -> None" for flr, a
    # KeyError, exit 70, for controller).
    listing = json.loads(run(env, "--fixture", "two-socket", "--accel-id", NVME, "list", "--json").stdout)
    name = next(d["name"] for d in listing["devices"] if d["id"] == NVME_BDF)
    r = run(env, "--fixture", "two-socket", "--accel-id", NVME, "reset", name, "--level", level, "--yes", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["result"]["ok"] is True
    assert doc["plan"]["affected"][0]["bdf"] == NVME_BDF


def test_one_scan_per_io_write(env, tmp_path):
    # Count every topology scan the CLI makes for one `io write` (was: 2, one per resolver).
    script = (
        "import sys, accelctl.topology as t, accelctl.topology.build as b\n"
        "calls = []\n"
        "orig = b.build_topology\n"
        "def counting(*a, **k):\n"
        "    calls.append(1)\n"
        "    return orig(*a, **k)\n"
        "t.build_topology = b.build_topology = counting\n"
        "from accelctl.cli import main\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    sys.stderr.write(f'SCANS={len(calls)}\\n')\n"
    )
    r = subprocess.run([sys.executable, "-c", script, "--fixture", "one-card", "io", "write", "card0.ep0"],
                       env=env, input=b"x" * 4096, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"SCANS=1\n" in r.stderr, r.stderr


def test_sources_know_what_they_are(tmp_path):
    fixture = open_machine(fixture="one-card")
    assert fixture.source.kind is SourceKind.FIXTURE and fixture.source.name == "one-card"
    assert fixture.platform.kind == "simulator" and fixture.source.has_devices
    copy = open_machine(sysfs_root=fixture.root.path)
    assert copy.source.kind is SourceKind.DIRECTORY and copy.platform.kind == "simulator"
    live = open_machine(sysfs_root="/sys")
    assert live.source.kind is SourceKind.LIVE and live.platform.kind == "linux"


def test_a_malformed_accel_id_fails_before_any_scan(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(InvalidAcceleratorIdError):
        open_machine(sysfs_root=missing, accel_ids=["1bcf:xyz"])


def test_concurrent_commands_share_one_simulator(env):
    # Three io commands at once on a fixture no simulator serves yet (was: 1-2 of 3 failed,
    # "is not an accelerator endpoint the simulator serves", every time).
    procs = [subprocess.Popen([sys.executable, "-m", "accelctl", "--fixture", "one-card", "io", "write",
                               "card0.ep0", "--address", hex(i * 4096)],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(3)]
    results = [p.communicate(input=bytes([65 + i]) * 16, timeout=120) for i, p in enumerate(procs)]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    status = json.loads(run(env, "--fixture", "one-card", "sim", "status", "--json").stdout)
    [daemon] = status["simulators"]
    assert daemon["fixture"] == "one-card" and daemon["mode"] == "process"
    for i in range(3):
        back = run(env, "--fixture", "one-card", "io", "read", "card0.ep0", "-n", "16", "--address", hex(i * 4096))
        assert back.stdout == bytes([65 + i]) * 16
