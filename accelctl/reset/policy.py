"""When a reset is refused: every check that stands between a plan and its execution. Each
refusal is a typed error (exit 8) raised before anything is touched; none asks or prints (the
caller hands in how to ask)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from accelctl.errors import ActionRefusedError, DeviceInUseError, InUseUnknownError

if TYPE_CHECKING:
    from accelctl.machine import Machine
    from accelctl.reset.plan import ResetPlan

#: Asks a person a yes/no question and returns the answer (False for no answer: end of input).
Ask = Callable[[str], bool]


def refuse_unless_resettable(machine: Machine) -> None:
    """Raises ActionRefusedError when there is nothing behind the tree to reset (a snapshot)."""
    if not machine.source.has_devices:
        raise ActionRefusedError(
            f"{machine.source.name} is a snapshot replay: there is no device to reset",
            hint="run the reset on the machine itself",
        )


def refuse_injection(machine: Machine, inject: list[str]) -> None:
    """Injected faults change the tree they act on: only for simulated devices, and never on the
    shared bundled-fixture cache (every later command on that fixture would see the fault)."""
    if not inject:
        return
    from accelctl.platform.roots import SourceKind
    from accelctl.sim.fixture.bundled import in_fixture_cache

    if machine.platform.kind != "simulator":
        raise ActionRefusedError("fault injection is only for simulated devices (fixtures)")
    if machine.source.kind is SourceKind.FIXTURE:
        raise ActionRefusedError(
            f"refusing to inject faults into the shared copy of fixture {machine.source.name}",
            hint=f"build a private copy: accelctl fixture build {machine.source.name} DIR, then --sysfs-root DIR",
        )
    if in_fixture_cache(machine.source.path):
        # the same shared tree named by its path: --sysfs-root ~/.cache/accelctl/fixtures/NAME-HASH
        raise ActionRefusedError(
            f"refusing to inject faults into {machine.source.path}: it is the shared fixture cache",
            hint="build a private copy: accelctl fixture build NAME DIR, then --sysfs-root DIR",
        )


def authorize(plan: ResetPlan, *, force: bool, yes: bool, ask: Ask | None) -> None:
    """Refuse the reset unless nobody (known or possibly) holds an affected device, or `force`;
    and unless it is confirmed: `yes`, or `ask` (None: there is no one to ask) says yes.

    Raises:
        DeviceInUseError: processes hold affected devices (and not `force`); names them (those
            it knows of, even when others may be unknown).
        InUseUnknownError: nobody is known to hold them, but that could not be found out
            for every holder (and not `force`).
        ActionRefusedError: not confirmed.
    """
    if plan.in_use and not force:
        who = "; ".join(f"pid {h.pid} ({h.command}) holds {h.bdf}" for h in plan.in_use)
        raise DeviceInUseError(
            f"refusing to reset: {len(plan.in_use)} user(s) of affected devices: {who}",
            holders=[h.to_dict() for h in plan.in_use],
            hint="stop them first, or pass --force to reset anyway (they lose their devices)",
        )
    if plan.in_use_unknown and not force:
        raise InUseUnknownError(
            "refusing to reset: cannot tell whether the affected devices are in use: "
            + "; ".join(plan.in_use_unknown),
            hint=("find out why (accelctl sim status)" if plan.platform == "simulator"
                  else "run it as root (with CAP_SYS_PTRACE in a container), which sees every "
                  "process's open files") + ", or pass --force to reset anyway",
        )
    if yes:
        return
    if ask is None:
        raise ActionRefusedError(
            "refusing to reset without confirmation: no terminal to ask on",
            hint="pass --yes to confirm from a script",
        )
    if not ask(f"Reset {len(plan.affected)} function(s) listed above?"):
        raise ActionRefusedError("reset not confirmed; nothing was touched")
