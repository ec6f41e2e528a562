"""Carry out the reset steps of a plan, recording each in the timeline with how it ended.

A step that fails is recorded failed and never retried; on Linux the steps after it are not
done (recorded skipped), except those that put back what an earlier step changed (the kernel's
reset_method). Simulated devices are reset one by one, each independently of the others' fate.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from accelctl.errors import BackendError, DriverError, InvalidRequestError
from accelctl.platform import fixture_mutate
from accelctl.platform.linux import LinuxPlatform
from accelctl.reset.facts import Facts
from accelctl.reset.plan import ResetPlan
from accelctl.reset.probe import DriverProbe
from accelctl.reset.steps import RESTORE_ACTIONS
from accelctl.reset.timeline import Timeline

#: --inject kinds (simulated devices only): the simulator's reset faults, and a link that
#: retrains narrower (mirrored into the fixture tree).
INJECT_KINDS = ("no-return", "narrow-link", "new-serial", "reset-fail")
_DAEMON_FAULTS = {
    "no-return": {"kind": "no_return"},
    "new-serial": {"kind": "new_serial", "seed": 7},
    "reset-fail": {"kind": "reset_fail"},
}

Progress = Callable[[str], None]


@dataclass(slots=True)
class Execution:
    """What the executor learnt that the checks after it need."""

    #: endpoints the simulator reports gone for good after their reset: not waited for
    gone: set[str] = field(default_factory=set)
    #: remarks per device for the report ("serial changed: DSN updated")
    notes: dict[str, list[str]] = field(default_factory=dict)


def parse_injects(inject: list[str], plan: ResetPlan, endpoints: list[str]) -> dict[str, set[str]]:
    """bdf -> fault kinds. The default device is the target when it is an endpoint, else the
    first affected endpoint.

    Raises:
        InvalidRequestError: an unknown kind, or a device this reset does not touch.
    """
    out: dict[str, set[str]] = {}
    for item in inject:
        kind, _, bdf = item.partition(":")
        if kind not in INJECT_KINDS:
            raise InvalidRequestError(f"unknown fault {kind!r}; known: {', '.join(INJECT_KINDS)}")
        if not bdf:
            bdf = plan.target if plan.target in endpoints else (endpoints[0] if endpoints else plan.target)
        elif bdf.count(":") == 1:
            bdf = "0000:" + bdf
        if bdf not in plan.affected_bdfs:
            raise InvalidRequestError(f"fault target {bdf} is not affected by this reset")
        out.setdefault(bdf, set()).add(kind)
    return out


def run_linux_steps(plan: ResetPlan, platform: LinuxPlatform, tl: Timeline) -> Execution:
    """The sysfs writes of the plan, in order.

    Raises:
        SysfsPermissionError: a write was not permitted (not root).
    """
    failed: str | None = None
    for step in plan.steps:
        if step.path is None:
            continue  # waits and checks: not the executor's
        if failed is not None and step.action not in RESTORE_ACTIONS:
            tl.skipped(step.action, f"not done: {failed} failed")
            continue
        try:
            with tl.step(step.action, f"{step.value!r} -> {step.path}"):
                platform.write_attr(step.path, step.value or "1")
        except DriverError:
            failed = failed or step.action  # recorded failed in the timeline; restores still run
    return Execution()


def run_sim_steps(
    plan: ResetPlan,
    platform: Any,
    probe: DriverProbe,
    faults: dict[str, set[str]],
    before: dict[str, Facts],
    tl: Timeline,
    timeout_s: float,
) -> Execution:
    """The simulator's resets of the plan, then what a kernel would show after them mirrored into
    the fixture tree (a device gone, a new serial, a narrower link)."""
    ex = Execution()
    root = platform.root
    for step in plan.steps:
        if step.action == "controller_reset":
            _controller_reset(probe, step.value or plan.target, tl, timeout_s)
        elif step.action == "sim_device_reset" and step.value:
            _device_reset(platform, probe, step.value, faults.get(step.value, set()), before, tl, timeout_s, ex)
    for bdf, kinds in faults.items():
        if "narrow-link" in kinds:
            width = before[bdf].width or 2
            with tl.step("inject_narrow_link", bdf):
                fixture_mutate.set_link(root, bdf, width=max(1, width // 2))
    return ex


def _controller_reset(probe: DriverProbe, bdf: str, tl: Timeline, timeout_s: float) -> None:
    from accelctl.driver.session import Session

    try:
        with tl.step("controller_reset", bdf):
            if not probe.serves(bdf):
                raise BackendError(f"{bdf} is not served by the simulator: not reset")
            with Session(probe.sockets[bdf], admin_timeout_s=timeout_s, ready_timeout_s=timeout_s) as s:
                s.reset()
    except DriverError:
        pass  # recorded failed in the timeline: the verdict reads it from there


def _device_reset(
    platform: Any,
    probe: DriverProbe,
    bdf: str,
    kinds: set[str],
    before: dict[str, Facts],
    tl: Timeline,
    timeout_s: float,
    ex: Execution,
) -> None:
    try:
        with tl.step("sim_device_reset", bdf) as st:
            if not probe.serves(bdf):
                raise BackendError(f"{bdf} is not served by the simulator: not reset")
            sock = probe.sockets[bdf]
            daemon_faults = [_DAEMON_FAULTS[k] for k in sorted(kinds) if k in _DAEMON_FAULTS]
            if daemon_faults:
                platform.add_faults(sock, daemon_faults)
            try:
                gen = platform.device_reset(sock, timeout_s=timeout_s)
            except BackendError as err:
                if getattr(err, "errno", None) != errno.ENODEV:
                    raise
                # The reset was done and the device dropped off the bus, as a real one can: the
                # kernel would remove it from /sys. The checks after the wait report it missing.
                fixture_mutate.remove_function(platform.root, bdf)
                ex.gone.add(bdf)
                ex.notes.setdefault(bdf, []).append("did not come back after its reset (removed)")
                st.detail = f"{bdf}: reset done; the device did not come back ({err})"
                return
            st.detail = f"{bdf}: reset generation {gen}"
            _mirror_serial(platform, probe, bdf, before[bdf], ex)
    except DriverError:
        pass  # recorded failed in the timeline: the verdict reads it from there


def _mirror_serial(platform: Any, probe: DriverProbe, bdf: str, before: Facts, ex: Execution) -> None:
    """Firmware that reports another serial after the reset: the kernel's DSN re-read would show
    it in /sys too, so the fixture's DSN follows."""
    if before.identify_serial is None or before.serial is None:
        return
    ident = probe.identify(bdf)
    if ident is None or not ident.serial or ident.serial == before.identify_serial:
        return
    fixture_mutate.set_serial(platform.root, bdf, _as_dsn(ident.serial, before.serial))
    ex.notes.setdefault(bdf, []).append(f"firmware reports serial {ident.serial} after the reset")


def _as_dsn(identify_serial: str, like: str) -> str:
    """Render an identify serial in sysfs DSN form ("xx-xx-...-xx"), deriving 8 bytes from it."""
    import hashlib

    hexdigits = "".join(c for c in identify_serial.lower() if c in "0123456789abcdef")
    if len(hexdigits) != 16:
        hexdigits = hashlib.sha256(identify_serial.encode()).hexdigest()[:16]
    if hexdigits == like.replace("-", ""):
        hexdigits = hashlib.sha256(identify_serial.encode()).hexdigest()[:16]
    return "-".join(hexdigits[i : i + 2] for i in range(0, 16, 2))
