"""Resets carried out by the simulator (and the Linux executor against a scratch tree), with
real processes: verification failures, in-use refusal, confirmation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from accelctl.sim.fixture import build_fixture, bundled_spec_path
from tests.snapshot._cli import run


@pytest.fixture
def tree(tmp_path, monkeypatch):
    # a private copy (resets mutate it) and a private simulator runtime dir (firmware state)
    monkeypatch.setenv("ACCELCTL_RUNTIME_DIR", str(tmp_path / "run"))
    return str(build_fixture(bundled_spec_path("two-socket"), tmp_path / "sys"))


def reset(tree, *args, timeout=120):
    return run("--sysfs-root", tree, "reset", *args, "--yes", "--json", "--timeout", "30", timeout=timeout)


def test_card_reset_comes_back_the_same(tree):
    r = reset(tree, "card0", "--level", "card")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    res = doc["result"]
    assert res["ok"] and res["differences"] == []
    names = [s["name"] for s in res["timeline"]]
    assert names.count("sim_device_reset") == 4 and "wait_reappear" in names and "verify" in names
    assert all(s["duration_s"] >= 0 for s in res["timeline"])
    checked = {c["bdf"]: c for c in res["checks"]}
    assert len(checked) == 9 and checked["0000:05:00.0"]["after"]["identify_serial"]


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("no-return", "0000:06:00.0: did not come back"),
        ("narrow-link", "0000:06:00.0: link width x16 -> x8"),
        ("new-serial", "0000:06:00.0: serial 4d-49-33-30-00-00-00-01 ->"),
    ],
)
def test_injected_verification_failure_exits_7_saying_what_differs(tree, fault, says):
    r = reset(tree, "card0.ep1", "--level", "flr", "--inject", fault)
    assert r.returncode == 7, (r.returncode, r.stderr)
    assert "reset done, verification failed" in r.stderr and says in r.stderr
    doc = json.loads(r.stdout)
    assert doc["result"]["ok"] is False and any(says in d for d in doc["result"]["differences"])


def test_in_use_through_the_simulator_is_refused_naming_the_holder(tree):
    from accelctl.machine import open_machine
    from accelctl.sim import service

    open_machine(sysfs_root=tree).platform.start_daemon()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time\n"
         "from accelctl.endpoints import open_endpoint\n"
         "s = open_endpoint('0000:06:00.0', sysfs_root=sys.argv[1])\n"
         "print('open', flush=True)\n"
         "time.sleep(60)\n", tree],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        r = run("--sysfs-root", tree, "reset", "card0", "--level", "card", "--yes")
        assert r.returncode == 8, (r.returncode, r.stderr)
        assert f"pid {holder.pid}" in r.stderr and "0000:06:00.0" in r.stderr
        dry = json.loads(run("--sysfs-root", tree, "reset", "card0", "--level", "card", "--dry-run", "--json").stdout)
        assert [h["pid"] for h in dry["plan"]["in_use"]] == [holder.pid]
        # an endpoint of another card is not in use
        assert run("--sysfs-root", tree, "reset", "card1", "--level", "card", "--yes").returncode == 0
        forced = reset(tree, "card0", "--level", "card", "--force")
        assert forced.returncode == 0, forced.stderr
    finally:
        holder.kill()
        holder.wait(5)
        service.stop(tree)


def test_real_system_detector_sees_an_open_resource_file(tree):
    res = os.path.join(tree, "bus", "pci", "devices", "0000:07:00.0", "resource")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; f=open(sys.argv[1]); print('open', flush=True); time.sleep(60)", res],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        r = run("--sysfs-root", tree, "reset", "card0.ep2", "--level", "flr", "--yes", "--platform", "linux")
        assert r.returncode == 8 and f"pid {holder.pid}" in r.stderr
    finally:
        holder.kill()
        holder.wait(5)


def test_linux_executor_writes_only_the_kernel_files_under_the_root(tree):
    dev = os.path.join(tree, "bus", "pci", "devices", "0000:07:00.0")
    # --force: the in-use check is not what this tests (run as a user who is not root, it cannot
    # see every process, and unknown is refused)
    r = run("--sysfs-root", tree, "reset", "card0.ep2", "--level", "flr", "--yes", "--json",
            "--platform", "linux", "--timeout", "30", "--force")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(dev, "reset")) as f:
        assert f.read() == "1"
    with open(os.path.join(dev, "reset_method")) as f:
        assert f.read() == "flr bus"  # selected flr for the reset, then put back
    res = json.loads(r.stdout)["result"]
    steps = [(s["name"], s["detail"]) for s in res["timeline"]]
    assert [n for n, _ in steps[:4]] == ["read_before", "set_reset_method", "write_reset", "restore_reset_method"]
    assert steps[1][1].startswith("'flr' -> ") and all(tree in d for _, d in steps[1:4])


def test_confirmation_prompt_defaults_to_no(tree):
    # a pseudo-terminal: the prompt appears and an empty answer means No
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.executable, [sys.executable, "-m", "accelctl", "--sysfs-root", tree,
                                   "reset", "card0.ep0", "--level", "flr"])
    out = b""
    deadline = time.monotonic() + 30
    while b"[y/N]" not in out and time.monotonic() < deadline:
        try:
            out += os.read(fd, 4096)
        except OSError:
            break
    os.write(fd, b"\n")
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert b"[y/N]" in out
    assert os.waitstatus_to_exitcode(status) == 8
