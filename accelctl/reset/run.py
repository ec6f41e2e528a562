"""A planned, authorised reset from start to verdict: read the devices, carry out the steps,
wait for the devices, verify them.

Bounded everywhere: one reset attempt per device (a device that fails is reported failed, never
retried in a loop), a wait with a deadline, at most IDENTIFY_ATTEMPTS identify round trips.
Progress goes to a callback; nothing is printed.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from accelctl.reset.execute import Progress, parse_injects, run_linux_steps, run_sim_steps
from accelctl.reset.facts import sysfs_facts
from accelctl.reset.plan import ResetPlan
from accelctl.reset.probe import DriverProbe
from accelctl.reset.result import ResetResult
from accelctl.reset.timeline import Timeline
from accelctl.reset.verify import verify, wait_for_return

if TYPE_CHECKING:
    from accelctl.machine import Machine


def run_reset(
    plan: ResetPlan,
    machine: Machine,
    *,
    timeout_s: float = 30.0,
    inject: list[str] | None = None,
    progress: Progress = lambda _m: None,
) -> ResetResult:
    """Execute `plan` (already authorised: reset.policy) and verify. A failed step or a failed
    check is in the result (ResetResult.ok, .error()), never raised.

    Raises:
        SysfsPermissionError: a sysfs write was not permitted (nothing else was done).
        ActionRefusedError: fault injection outside a private simulated tree.
        InvalidRequestError: a bad --inject.
    """
    from accelctl.reset.policy import refuse_injection

    inject = list(inject or [])
    refuse_injection(machine, inject)
    platform = machine.platform
    bdfs = plan.affected_bdfs
    tl = Timeline()
    with tl.step("read_before", f"{len(bdfs)} function(s)"):
        before = sysfs_facts(machine.topology(), bdfs)
    with ExitStack() as stack:
        if platform.kind == "simulator":
            sockets = stack.enter_context(platform.endpoint_sockets())  # type: ignore[attr-defined]
            probe = DriverProbe({b: str(s) for b, s in sockets.items() if b in bdfs}, timeout_s=timeout_s)
            served = [b for b in bdfs if probe.serves(b)]
            faults = parse_injects(inject, plan, served)
            with tl.step("identify_before", f"{len(served)} endpoint(s)"):
                for b in served:
                    before[b] = before[b].with_identity(probe.identify(b))
            progress(f"{plan.level.value} reset of {plan.target}: {len(bdfs)} function(s)")
            ex = run_sim_steps(plan, platform, probe, faults, before, tl, timeout_s)
        else:
            probe = DriverProbe()
            progress(f"{plan.level.value} reset of {plan.target}: writing sysfs")
            ex = run_linux_steps(plan, platform, tl)
        after = wait_for_return(bdfs, gone=ex.gone, rescan=machine.rescan, platform=platform,
                                timeout_s=timeout_s, tl=tl, progress=progress)
        checks = verify(bdfs, before, after, probe=probe, notes=ex.notes, tl=tl)
    return ResetResult(checks, tl)
