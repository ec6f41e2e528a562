"""After the reset: wait (bounded) for every affected function to come back, then prove each came
back the same: present and readable, vendor:device, serial, link, the driver's identify round
trip and the device's logical address (put back when the reset lost it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from accelctl.errors import AccelError, DriverError
from accelctl.platform.linux import LinuxPlatform
from accelctl.reset.facts import Facts, differences, sysfs_facts
from accelctl.reset.probe import DriverProbe
from accelctl.reset.timeline import Timeline
from accelctl.topology import Topology

POLL_INTERVAL_S = 0.05
PROGRESS_EVERY_S = 1.0
#: After a bus rescan, how long functions get to show up again.
RESCAN_WAIT_S = 5.0

Progress = Callable[[str], None]
#: Scans the machine again with its own accelerator rules (Machine.rescan).
Rescan = Callable[[], Topology]


@dataclass(slots=True)
class DeviceCheck:
    bdf: str
    address: str | None
    before: Facts
    after: Facts
    differences: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "bdf": self.bdf,
            "name": self.address,
            "ok": self.ok,
            "differences": list(self.differences),
            "notes": list(self.notes),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


def _not_back(topo: Topology, bdfs: list[str]) -> list[str]:
    return [b for b in bdfs if b not in topo.functions or topo.functions[b].accessible is False]


def _poll_until_back(rescan: Rescan, bdfs: list[str], deadline: float, progress: Progress) -> Topology:
    """Re-read the tree until every function is present and readable, or the deadline passes."""
    start = time.monotonic()
    next_note = start + PROGRESS_EVERY_S
    while True:
        current = rescan()
        missing = _not_back(current, bdfs)
        now = time.monotonic()
        if not missing or now >= deadline:
            return current
        if now >= next_note:
            progress(
                f"waiting for {len(missing)} of {len(bdfs)} function(s) to come back "
                f"({now - start:.1f} s, giving up at {deadline - start:.0f} s): {', '.join(missing[:4])}"
            )
            next_note = now + PROGRESS_EVERY_S
        time.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - now)))


def wait_for_return(
    bdfs: list[str],
    *,
    gone: set[str],
    rescan: Rescan,
    platform: LinuxPlatform,
    timeout_s: float,
    tl: Timeline,
    progress: Progress,
) -> Topology:
    """The tree once every function is back (present, config readable), or at the deadline. The
    step fails when any is not back then, those reported gone included (not waited for)."""
    with tl.step("wait_reappear", f"{len(bdfs)} function(s), up to {timeout_s:g} s") as st:
        waiting = [b for b in bdfs if b not in gone]
        after = _poll_until_back(rescan, waiting, time.monotonic() + timeout_s, progress)
        if platform.kind == "linux" and any(b not in after.functions for b in waiting):
            # last resort, once: ask the kernel to rescan (a surprise-down may have removed them)
            progress("function(s) missing; rescanning the PCI bus once")
            try:
                platform.rescan()
            except AccelError as err:
                progress(f"rescan failed: {err}")
            after = _poll_until_back(rescan, waiting, time.monotonic() + min(RESCAN_WAIT_S, timeout_s), progress)
        not_back = _not_back(after, bdfs)
        if not_back:
            st.status = "failed"
            st.detail = f"{len(not_back)} of {len(bdfs)} function(s) not back: {', '.join(not_back)}"
        else:
            st.detail = f"{len(bdfs)} function(s) back"
    return after


def verify(
    bdfs: list[str],
    before: dict[str, Facts],
    after_topo: Topology,
    *,
    probe: DriverProbe,
    notes: dict[str, list[str]],
    tl: Timeline,
) -> list[DeviceCheck]:
    """One check per function, comparing it now with `before`."""
    after = sysfs_facts(after_topo, bdfs)
    checks = []
    with tl.step("verify", "sysfs identity, link, identify, logical address") as st:
        for b in bdfs:
            dev_notes = list(notes.get(b, []))
            now = after[b]
            if probe.serves(b) and now.present:
                now = _identify_after(probe, b, before[b], now, dev_notes)
            diffs = differences(before[b], now)
            if probe.serves(b) and now.present and now.identify_serial is None and before[b].identify_serial:
                diffs.append(f"{b}: identify round trip failed after the reset")
            la = before[b].logical_address
            if la is not None and now.present and now.logical_address != la:
                diffs.append(f"{b}: device logical address {la} -> {now.logical_address}")
            checks.append(DeviceCheck(b, before[b].address, before[b], now, diffs, dev_notes))
        failed = [c for c in checks if c.differences]
        if failed:
            st.status = "failed"
            st.detail = f"{len(failed)} of {len(checks)} function(s) differ"
        else:
            st.detail = f"{len(checks)} function(s) the same"
    return checks


def _identify_after(probe: DriverProbe, bdf: str, before: Facts, now: Facts, notes: list[str]) -> Facts:
    """`now` plus the driver's identify; a logical address the reset lost is put back first."""
    ident = probe.identify(bdf)
    if ident is None:
        notes.append("identify round trip failed after the reset")
        return now
    la = before.logical_address
    if la is not None and ident.logical_address is None:
        try:
            probe.set_logical_address(bdf, la)
        except DriverError as err:
            notes.append(f"logical address {la} lost; putting it back failed: {err}")
        else:
            notes.append(f"logical address {la} lost; re-applied")
            ident = probe.identify(bdf) or ident
    return now.with_identity(ident)
