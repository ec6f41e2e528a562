"""Carry out a reset plan and prove the devices came back the same.

Bounded everywhere: one reset attempt per device (a device that fails is reported failed, never
retried in a loop), a wait with a deadline, at most IDENTIFY_ATTEMPTS identify round trips.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from accelctl.errors import AccelError, BackendError, DriverError, VerificationError
from accelctl.platform.linux import LinuxPlatform
from accelctl.platform import fixture_mutate
from accelctl.reset.facts import Facts, differences, facts_of
from accelctl.reset.plan import ResetPlan
from accelctl.reset.timeline import Timeline
from accelctl.topology import Topology

if TYPE_CHECKING:
    from accelctl.machine import Machine

IDENTIFY_ATTEMPTS = 3
POLL_INTERVAL_S = 0.05
PROGRESS_EVERY_S = 1.0
INJECT_KINDS = ("no-return", "narrow-link", "new-serial")

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
            "address": self.address,
            "ok": self.ok,
            "differences": list(self.differences),
            "notes": list(self.notes),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


@dataclass(slots=True)
class ResetResult:
    reset_done: bool
    checks: list[DeviceCheck]
    timeline: Timeline
    failure: str | None = None

    @property
    def differences(self) -> list[str]:
        return [d for c in self.checks for d in c.differences]

    @property
    def ok(self) -> bool:
        return self.reset_done and not self.differences

    def error(self) -> AccelError:
        if not self.reset_done:
            return DriverError(f"reset failed: {self.failure}")
        diffs = self.differences
        return VerificationError(
            f"reset done, verification failed: {'; '.join(diffs)}", differences=diffs
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reset_done": self.reset_done,
            "failure": self.failure,
            "differences": self.differences,
            "checks": [c.to_dict() for c in self.checks],
            "timeline": [s.to_dict() for s in self.timeline.steps],
            "total_s": round(sum(s.duration_s for s in self.timeline.steps), 6),
        }


# --- reading the tree ------------------------------------------------------------------------


def _sysfs_facts(topo: Topology, bdfs: list[str]) -> dict[str, Facts]:
    from accelctl.addressing import compute_addresses

    by_bdf = compute_addresses(topo).by_bdf()
    return {
        b: facts_of(topo.functions.get(b), b, by_bdf[b].name if b in by_bdf else None) for b in bdfs
    }


def _identify(socket: str, timeout_s: float) -> dict[str, Any] | None:
    """identify + identify_endpoint through the driver core; None when no session can be opened."""
    from accelctl.driver.session import Session

    last: Exception | None = None
    for _ in range(IDENTIFY_ATTEMPTS):
        try:
            with Session(socket, admin_timeout_s=timeout_s, ready_timeout_s=timeout_s,
                         control_timeout_s=timeout_s) as s:
                ctrl = s.identify()
                ep = s.identify_endpoint()
                return {"serial": ctrl.get("serial"), "model": ctrl.get("model"),
                        "logical_address": ep.get("logical_address")}
        except (DriverError, OSError) as err:
            last = err
            time.sleep(0.05)
    _ = last
    return None


def _with_identify(f: Facts, ident: dict[str, Any] | None) -> Facts:
    if ident is None:
        return f
    la = ident.get("logical_address")
    return Facts(
        f.bdf, f.present, f.accessible, f.vendor_id, f.device_id, f.serial, f.speed_gts, f.width,
        f.address, ident.get("serial"), ident.get("model"),
        (la["card"], la["endpoint"], la["global_id"]) if la else None,
    )


# --- waiting ---------------------------------------------------------------------------------


def _wait_for(rescan: Rescan, bdfs: list[str], deadline: float, progress: Progress) -> Topology:
    """Re-read the tree until every function is present and readable, or the deadline passes."""
    start = time.monotonic()
    next_note = start + PROGRESS_EVERY_S
    while True:
        current = rescan()
        missing = [b for b in bdfs if b not in current.functions or current.functions[b].accessible is False]
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


# --- injected faults (simulator only) ----------------------------------------------------------


def _parse_injects(inject: list[str], plan: ResetPlan, endpoints: list[str]) -> dict[str, set[str]]:
    """bdf -> fault kinds. The default device is the target when it is an endpoint, else the
    first affected endpoint."""
    out: dict[str, set[str]] = {}
    for item in inject:
        kind, _, bdf = item.partition(":")
        if kind not in INJECT_KINDS:
            raise AccelError(f"unknown fault {kind!r}; known: {', '.join(INJECT_KINDS)}")
        if not bdf:
            bdf = plan.target if plan.target in endpoints else (endpoints[0] if endpoints else plan.target)
        elif ":" in bdf and bdf.count(":") == 1:
            bdf = "0000:" + bdf
        if bdf not in plan.affected_bdfs:
            raise AccelError(f"fault target {bdf} is not affected by this reset")
        out.setdefault(bdf, set()).add(kind)
    return out


# --- executors ---------------------------------------------------------------------------------


def _run_linux(plan: ResetPlan, platform: LinuxPlatform, tl: Timeline) -> None:
    for step in plan.steps:
        if step.path is None:
            continue
        with tl.step(step.action, f"{step.value!r} -> {step.path}"):
            platform.write_attr(step.path, step.value or "1")


def _run_sim(
    plan: ResetPlan,
    topo: Topology,
    platform: Any,
    sockets: dict[str, Any],
    faults: dict[str, set[str]],
    before: dict[str, Facts],
    tl: Timeline,
    timeout_s: float,
) -> tuple[list[str], dict[str, list[str]]]:
    """Returns (devices that failed to reset, notes per device)."""
    failed: list[str] = []
    notes: dict[str, list[str]] = {}
    root = topo.root
    for step in plan.steps:
        if step.action == "controller_reset":
            from accelctl.driver.session import Session

            sock = str(sockets[plan.target])
            with tl.step("controller_reset", plan.target):
                with Session(sock, admin_timeout_s=timeout_s, ready_timeout_s=timeout_s) as s:
                    s.reset()
        elif step.action == "sim_device_reset" and step.value:
            bdf = step.value
            sock = sockets.get(bdf)
            kinds = faults.get(bdf, set())
            with tl.step("sim_device_reset", bdf) as st:
                if sock is None:
                    st.status, st.detail = "skipped", f"{bdf}: no simulated endpoint"
                    continue
                daemon_faults = []
                if "no-return" in kinds:
                    daemon_faults.append({"kind": "no_return"})
                if "new-serial" in kinds:
                    daemon_faults.append({"kind": "new_serial", "seed": 7})
                if daemon_faults:
                    platform.add_faults(sock, daemon_faults)
                try:
                    gen = platform.device_reset(sock, timeout_s=timeout_s)
                    st.detail = f"{bdf}: reset generation {gen}"
                except BackendError as err:
                    st.status = "failed"
                    st.detail = f"{bdf}: {err}"
                    failed.append(bdf)
                    if getattr(err, "errno", None) == errno.ENODEV:
                        # the kernel would drop the device from /sys: mirror it in the fixture
                        fixture_mutate.remove_function(root, bdf)
                        notes.setdefault(bdf, []).append("did not come back (removed)")
                    continue
        # fixture-side faults the simulator has no notion of: a link that retrains narrower
    for bdf, kinds in faults.items():
        if "narrow-link" in kinds:
            width = before[bdf].width or 2
            with tl.step("inject_narrow_link", bdf):
                fixture_mutate.set_link(root, bdf, width=max(1, width // 2))
    return failed, notes


def run_reset(
    plan: ResetPlan,
    machine: Machine,
    *,
    timeout_s: float = 30.0,
    inject: list[str] | None = None,
    progress: Progress = lambda _m: None,
) -> ResetResult:
    """Execute `plan` and verify. Never raises for a failed verification (see ResetResult.ok).

    Raises:
        SysfsPermissionError: a sysfs write was not permitted (nothing else was done).
        AccelError: a bad --inject, or injection requested on real hardware.
    """
    topo = machine.topology()
    platform = machine.platform
    rescan = machine.rescan
    tl = Timeline()
    bdfs = plan.affected_bdfs
    with tl.step("read_before", f"{len(bdfs)} function(s)"):
        before = _sysfs_facts(topo, bdfs)
    if platform.kind != "simulator":
        if inject:
            raise AccelError("fault injection is only for simulated devices (fixtures)")
        progress(f"{plan.level.value} reset of {plan.target}: writing sysfs")
        failure = None
        try:
            _run_linux(plan, platform, tl)
        except DriverError as err:
            failure = str(err)
        return _finish(plan, topo, rescan, platform, tl, before, {}, failure, [], {}, timeout_s, progress, None)

    with platform.endpoint_sockets() as sockets:  # type: ignore[attr-defined]
        sockets = {k: str(v) for k, v in sockets.items()}
        endpoints = [b for b in bdfs if b in sockets]
        faults = _parse_injects(inject or [], plan, endpoints)
        with tl.step("identify_before", f"{len(endpoints)} endpoint(s)"):
            for b in endpoints:
                before[b] = _with_identify(before[b], _identify(sockets[b], min(5.0, timeout_s)))
        progress(f"{plan.level.value} reset of {plan.target}: {len(bdfs)} function(s)")
        failure = None
        failed: list[str] = []
        notes: dict[str, list[str]] = {}
        try:
            failed, notes = _run_sim(plan, topo, platform, sockets, faults, before, tl, timeout_s)
        except DriverError as err:
            failure = str(err)
        return _finish(plan, topo, rescan, platform, tl, before, sockets, failure, failed, notes, timeout_s,
                       progress, faults)


def _finish(
    plan: ResetPlan,
    topo: Topology,
    rescan: Rescan,
    platform: LinuxPlatform,
    tl: Timeline,
    before: dict[str, Facts],
    sockets: dict[str, str],
    failure: str | None,
    failed: list[str],
    notes: dict[str, list[str]],
    timeout_s: float,
    progress: Progress,
    faults: dict[str, set[str]] | None,
) -> ResetResult:
    bdfs = plan.affected_bdfs
    if failure is not None:
        return ResetResult(False, [], tl, failure)
    deadline = time.monotonic() + timeout_s
    with tl.step("wait_reappear", f"{len(bdfs)} function(s), up to {timeout_s:g} s") as st:
        # a device the simulator reported gone will not come back: do not wait for it
        waiting = [b for b in bdfs if b not in failed]
        after_topo = _wait_for(rescan, waiting, deadline, progress)
        missing = [b for b in waiting if b not in after_topo.functions]
        if missing and platform.kind == "linux":
            # last resort, once: ask the kernel to rescan (a surprise-down may have removed them)
            progress(f"{len(missing)} function(s) missing; rescanning the PCI bus once")
            try:
                platform.rescan()
            except AccelError as err:
                progress(f"rescan failed: {err}")
            after_topo = _wait_for(rescan, waiting, time.monotonic() + min(5.0, timeout_s), progress)
        if missing:
            st.status = "failed"
    after = _sysfs_facts(after_topo, bdfs)
    with tl.step("verify", "sysfs identity, link, identify, logical address") as vst:
        checks = []
        for b in bdfs:
            a = after[b]
            dev_notes = list(notes.get(b, []))
            if b in sockets and a.present:
                ident = _identify(sockets[b], min(5.0, timeout_s))
                if ident is None:
                    dev_notes.append("identify round trip failed after the reset")
                a = _with_identify(a, ident)
                if ident is not None and ident.get("serial") != before[b].identify_serial and a.serial == before[b].serial:
                    # the device reports another serial: the kernel's DSN re-read would show it too
                    if ident.get("serial") and before[b].serial:
                        fixture_mutate.set_serial(topo.root, b, _as_dsn(ident["serial"], before[b].serial))
                        a = _with_identify(_sysfs_facts(rescan(), [b])[b], ident)
                la_before = before[b].logical_address
                if la_before is not None and a.logical_address is None:
                    _reapply_address(sockets[b], la_before, timeout_s)
                    dev_notes.append(f"logical address {la_before} lost; re-applied")
                    a = _with_identify(a, _identify(sockets[b], min(5.0, timeout_s)))
            diffs = differences(before[b], a)
            if b in sockets and a.present and a.identify_serial is None and before[b].identify_serial:
                diffs.append(f"{b}: identify round trip failed after the reset")
            if before[b].logical_address is not None and a.logical_address != before[b].logical_address and a.present:
                diffs.append(f"{b}: device logical address {before[b].logical_address} -> {a.logical_address}")
            checks.append(DeviceCheck(b, before[b].address, before[b], a, diffs, dev_notes))
        if any(c.differences for c in checks):
            vst.status = "failed"
    return ResetResult(True, checks, tl)


def _as_dsn(identify_serial: str, like: str) -> str:
    """Render an identify serial in sysfs DSN form ("xx-xx-...-xx"), deriving 8 bytes from it."""
    import hashlib

    hexdigits = "".join(c for c in identify_serial.lower() if c in "0123456789abcdef")
    if len(hexdigits) != 16:
        hexdigits = hashlib.sha256(identify_serial.encode()).hexdigest()[:16]
    if hexdigits == like.replace("-", ""):
        hexdigits = hashlib.sha256(identify_serial.encode()).hexdigest()[:16]
    return "-".join(hexdigits[i : i + 2] for i in range(0, 16, 2))


def _reapply_address(socket: str, la: tuple[int, int, int], timeout_s: float) -> None:
    from accelctl.protocol import abi
    from accelctl.driver.session import Session

    with Session(socket, admin_timeout_s=min(5.0, timeout_s)) as s:
        s.set_feature(abi.Feature.LOGICAL_ADDRESS, abi.pack_logical_address(*la))


_ = os  # (kept for platform-specific extensions)
