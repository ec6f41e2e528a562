"""Who holds a device, seen by a scan that is not root (issue 14, reset).

On a real machine the in-use check reads every process's /proc/PID/fd and maps. A user who is
not root cannot read other users' (EACCES), and the scan used to skip them in silence: a
device held by root's (or anyone else's) process counted as free, and the reset went ahead.
What cannot be seen is unknown, and unknown is refused like in use (exit 8) unless --force.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

import pytest

from accelctl.cli._errors import ExitCode, exit_code_for
from accelctl.errors import DeviceInUseError, InUseUnknownError
from accelctl.machine import open_machine
from accelctl.reset.plan import plan_reset
from accelctl.reset.policy import authorize
from accelctl.sim.fixture import build_fixture, bundled_spec_path

from ._second_user import OTHER_GID, OTHER_UID, needs_root, run_as_other_user

ENDPOINT = "0000:01:00.0"  # card0.ep0 of one-card
PR_SET_DUMPABLE = 4  # <linux/prctl.h>


@pytest.fixture
def tree_of_the_other_user(public_tmp):
    """A one-card tree the second user owns (so it may write its reset files)."""
    root = build_fixture(bundled_spec_path("one-card"), public_tmp / "sys")
    for dirpath, dirnames, filenames in os.walk(public_tmp):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), OTHER_UID, OTHER_GID)
    return root


@needs_root
def test_a_scan_that_cannot_see_every_process_refuses_as_unknown(tree_of_the_other_user):
    root = tree_of_the_other_user
    resource = os.path.join(root, "bus", "pci", "devices", ENDPOINT, "resource")
    holder = subprocess.Popen(  # root's process, holding the device's resource file open
        [sys.executable, "-c", "import sys; f = open(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
         resource], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        # root sees the holder and names it (and every lazy import is done before setuid)
        as_root = plan_reset(open_machine(sysfs_root=root, platform_kind="linux"), "card0.ep0", "flr")
        assert [h.pid for h in as_root.in_use] == [holder.pid] and as_root.in_use_unknown == []

        def plan_as_other_user() -> None:
            plan = plan_reset(open_machine(sysfs_root=root, platform_kind="linux"), "card0.ep0", "flr")
            assert plan.in_use == []  # the holder is out of its sight...
            (why,) = plan.in_use_unknown  # ...and that is said, not taken for "free"
            assert "cannot see the open files of" in why and "only root" in why
            with pytest.raises(InUseUnknownError) as refused:
                authorize(plan, force=False, yes=True, ask=None)
            assert exit_code_for(refused.value) is ExitCode.REFUSED
            assert "cannot tell whether the affected devices are in use" in refused.value.message
            assert "--force" in (refused.value.hint or "") and "root" in (refused.value.hint or "")
            authorize(plan, force=True, yes=True, ask=None)  # --force is the way through

        run_as_other_user(plan_as_other_user)
    finally:
        holder.kill()
        holder.wait()


@needs_root
def test_a_scan_that_sees_every_process_is_not_unknown(tree_of_the_other_user):
    """The rule is about what the scan cannot see, not about who runs it: root with nobody
    holding the device plans a reset with nothing unknown."""
    plan = plan_reset(open_machine(sysfs_root=tree_of_the_other_user, platform_kind="linux"), "card0.ep0", "flr")
    assert plan.in_use == [] and plan.in_use_unknown == []
    authorize(plan, force=False, yes=True, ask=None)


@needs_root
def test_a_holder_the_scan_can_see_is_named_though_others_are_unseen(tree_of_the_other_user):
    """The second user's own process holds the device: that holder is named (DeviceInUseError,
    its pid), not hidden behind "cannot tell"."""
    resource = os.path.join(tree_of_the_other_user, "bus", "pci", "devices", ENDPOINT, "resource")

    def plan_as_other_user() -> None:
        ready_r, ready_w = os.pipe()
        holder = os.fork()
        if holder == 0:  # the second user's process, holding the resource file open
            # a process that changed its uid is not dumpable, so its /proc/PID/fd is root's; a
            # program the user started (exec) is dumpable again: be that program
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            f = open(resource, "rb")  # noqa: SIM115 - held until killed
            os.write(ready_w, b"1")
            while f:
                signal.pause()
        try:
            assert os.read(ready_r, 1) == b"1"
            plan = plan_reset(open_machine(sysfs_root=tree_of_the_other_user, platform_kind="linux"),
                              "card0.ep0", "flr")
            assert [h.pid for h in plan.in_use] == [holder]
            assert plan.in_use_unknown  # root's processes are still out of sight
            with pytest.raises(DeviceInUseError) as refused:
                authorize(plan, force=False, yes=True, ask=None)
            assert type(refused.value) is DeviceInUseError and f"pid {holder}" in refused.value.message
        finally:
            os.kill(holder, signal.SIGKILL)
            os.waitpid(holder, 0)

    run_as_other_user(plan_as_other_user)
