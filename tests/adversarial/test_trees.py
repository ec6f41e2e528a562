"""Hostile directory trees given as --sysfs-root: what a tree can do to the command reading it.

What must hold (docs/security.md): a scan finishes whatever sits where an attribute should be
(a FIFO nobody writes, a device node); only regular files are read; a directory the reader may
not enter is reported as unreadable, never as a device that vanished; a root the reader cannot
reach is a permission error (exit 4), not a crash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from accelctl.cli._errors import ExitCode, exit_code_for
from accelctl.errors import SysfsPermissionError
from tests.discovery.minitree import MiniTree

from ._second_user import needs_root, run_as_other_user

REPO = str(Path(__file__).resolve().parents[2])
ACCEL = (0x1E52, 0x401E, 0x120000)
BDF = "0000:01:00.0"

#: A hang guard, not a speed bound: a FIFO nobody writes blocks a plain open() for ever.
HANG_GUARD_S = 120


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    t = MiniTree(tmp_path / "sys")
    dev = t.add(f"pci0000:00/{BDF}", *ACCEL, attrs={"numa_node": "0\n"})
    return t.root, dev


def _scan_in_child(root: Path) -> dict:
    """`list --all --json` of `root` in a child process (a hang must not hang the test run)."""
    r = subprocess.run(
        [sys.executable, "-m", "accelctl", "--sysfs-root", str(root), "list", "--all", "--json"],
        capture_output=True, text=True, timeout=HANG_GUARD_S, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _function(doc: dict, bdf: str = BDF) -> dict:
    for fn in doc["devices"]:
        if fn["id"] == bdf:
            return fn
    raise AssertionError(f"{bdf} not in {[f['id'] for f in doc['devices']]}")


@pytest.mark.parametrize("attr", ["config", "numa_node"])
def test_a_fifo_where_an_attribute_should_be_does_not_hang_the_scan(tmp_path, attr):
    """Issue 14: a FIFO as `config` or `numa_node` hung every command, root or not."""
    root, dev = _tree(tmp_path)
    (dev / attr).unlink()
    os.mkfifo(dev / attr)
    doc = _scan_in_child(root)
    fn = _function(doc)
    assert fn["vendor_id"] == "1e52"  # the rest of the device still reads


@needs_root
def test_a_fifo_does_not_hang_a_scan_by_another_user(public_tmp):
    """The same FIFOs, read by a user who is not root (the tree is root's, the FIFOs readable)."""
    root, dev = _tree(public_tmp)
    for attr in ("config", "numa_node"):
        (dev / attr).unlink()
        os.mkfifo(dev / attr, 0o644)
    from accelctl.sysfs import SysfsRoot
    from accelctl.topology import build_topology  # imported before dropping privilege

    def scan_as_other_user() -> None:
        signal.alarm(HANG_GUARD_S)  # a hang ends the child (SIGALRM), which fails the test
        topo = build_topology(SysfsRoot(root))
        signal.alarm(0)
        fn = topo.functions[BDF]
        assert fn.numa_node is None
        assert fn.vendor_id == 0x1E52  # the rest of the device still reads

    run_as_other_user(scan_as_other_user)


def test_a_device_node_is_not_read(tmp_path):
    """Only regular files are attributes: /dev/zero in place of numa_node must not become 0."""
    root, dev = _tree(tmp_path)
    (dev / "numa_node").unlink()
    os.symlink("/dev/zero", dev / "numa_node")
    fn = _function(_scan_in_child(root))
    assert fn["numa_node"] is None
    assert "numa_node" in json.dumps(fn["unknown"])


@pytest.mark.parametrize("attr", ["reset_method", "numa_node", "config"])
def test_an_attribute_that_is_a_link_to_a_host_file_is_not_read(tmp_path, attr):
    """Issue 14, a tree unpacked by hand (`tar x`) then given as --sysfs-root: no kernel makes an
    attribute a symbolic link, so `reset_method -> /etc/...` must not put the host file's text
    in the output (a regular file, so the not-a-regular-file check alone let it through)."""
    root, dev = _tree(tmp_path)
    secret = tmp_path / "host-secret"
    secret.write_text("TOP-SECRET-7c1d\n")
    if (dev / attr).exists():
        (dev / attr).unlink()
    os.symlink(secret, dev / attr)
    fn = _function(_scan_in_child(root))
    assert "TOP-SECRET" not in json.dumps(fn)
    assert attr in fn["unknown"]
    from accelctl.topology import build_topology

    assert "symbolic link" in build_topology(root).functions[BDF].unknown[attr]


def test_topology_json_shape_is_what_these_tests_read(tmp_path):
    root, _ = _tree(tmp_path)
    fn = _function(_scan_in_child(root))
    assert fn["numa_node"] == 0


@needs_root
def test_an_unreadable_device_directory_is_reported_as_unreadable(public_tmp):
    """Issue 14: an EACCES device directory was reported as DEVICE_VANISHED."""
    root, dev = _tree(public_tmp)
    os.chmod(dev, 0o000)
    from accelctl.topology import build_topology  # imported before dropping privilege
    from accelctl.sysfs import SysfsRoot

    def scan_as_other_user() -> None:
        topo = build_topology(SysfsRoot(root))
        codes = {w.code: w.message for w in topo.warnings}
        assert "DEVICE_VANISHED" not in codes, codes
        assert "DEVICE_UNREADABLE" in codes, codes
        assert "permission denied" in codes["DEVICE_UNREADABLE"].lower()

    run_as_other_user(scan_as_other_user)


@needs_root
def test_an_unreachable_sysfs_root_is_a_permission_error(public_tmp):
    """Issue 14: an unreadable --sysfs-root exited 2 (documented: 4)."""
    private = public_tmp / "private"
    (private / "sys").mkdir(parents=True)
    os.chmod(private, 0o700)  # root's: the other user cannot even stat sys/
    from accelctl.platform.roots import open_source

    def open_as_other_user() -> None:
        try:
            open_source(sysfs_root=str(private / "sys"))
        except SysfsPermissionError as err:
            assert exit_code_for(err) is ExitCode.PERMISSION
            assert str(private / "sys") in str(err)
        else:
            raise AssertionError("an unreachable root was accepted")

    run_as_other_user(open_as_other_user)
