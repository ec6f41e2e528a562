"""The steps of a reset on one platform: the sysfs writes the kernel offers (Linux), or the
simulator's device and controller resets (fixtures). Nothing is touched here; the executor
carries the steps out."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from accelctl.platform.linux import LinuxPlatform
from accelctl.reset.levels import ResetLevel, ResetPoint, not_offered, reset_point
from accelctl.topology import PciFunction, Topology

#: Step actions that carry out the reset; a failure of one of them fails the reset (exit 5).
RESET_ACTIONS = frozenset({
    "set_reset_method", "write_reset", "restore_reset_method", "write_reset_subordinate",
    "sim_device_reset", "controller_reset",
})
#: Steps that put back what the reset changed on the way: run even when an earlier step failed.
RESTORE_ACTIONS = frozenset({"restore_reset_method"})


@dataclass(slots=True)
class Step:
    #: stable code: set_reset_method, write_reset, restore_reset_method, write_reset_subordinate,
    #: sim_device_reset, controller_reset, wait_reappear, verify
    action: str
    detail: str
    #: the sysfs file written (None for simulator calls, waits and checks)
    path: str | None = None
    #: the value written, or the endpoint a simulator step resets
    value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "detail": self.detail, "path": self.path, "value": self.value}


def platform_steps(topo: Topology, rp: ResetPoint, platform: LinuxPlatform) -> list[Step]:
    """The writes (or simulator calls) for this reset on this platform.

    Raises:
        ResetUnsupportedError: the platform offers no way to do it (the message says why).
    """
    point = topo.functions[rp.point]
    level = rp.level
    if level is ResetLevel.CONTROLLER:
        if platform.kind != "simulator":
            raise not_offered(
                level,
                "controller reset goes through accelctl's driver core, which has no backend for "
                "real hardware here (only simulated endpoints)",
            )
        return [Step("controller_reset", f"controller reset of {point.id} through the driver core", value=point.id)]
    if platform.kind == "simulator":
        eps = [a for a in rp.affected if topo.functions[a].is_accelerator]
        if not eps:
            # bridges only: the simulator plays no part of them, so there is nothing to carry out
            return [Step("sim_device_reset", f"simulator: {level.value} reset below {point.id} "
                         "(no simulated endpoints affected)")]
        return [Step("sim_device_reset", f"simulator: device reset of {bdf}", value=bdf) for bdf in eps]
    fdir = point.path
    reset_file = os.path.join(fdir, "reset")
    if level is ResetLevel.FLR:
        if not platform.has_file(reset_file):
            raise not_offered(level, f"{point.id} has no sysfs reset file (kernel offers no reset for it)")
        return _with_method(point, "flr", "select FLR", Step("write_reset", f"function level reset of {point.id}",
                                                             reset_file, "1"))
    # bus and card: a secondary bus reset on the bridge `point`
    sub = os.path.join(fdir, "reset_subordinate")
    if platform.has_file(sub):
        return [Step("write_reset_subordinate", f"secondary bus reset below {point.id}", sub, "1")]
    # older kernels: the one child of the bridge, reset with method "bus" (the kernel resets the
    # parent bus only when that child is alone on it)
    children = [c for c in topo.children.get(point.id, []) if c in topo.functions]
    if len(children) == 1:
        child = topo.functions[children[0]]
        if child.reset_methods and "bus" in child.reset_methods and platform.has_file(
            os.path.join(child.path, "reset")
        ):
            return _with_method(child, "bus", "select bus reset", Step(
                "write_reset", f"secondary bus reset of {point.id} through {child.id}",
                os.path.join(child.path, "reset"), "1"))
    raise not_offered(
        level,
        f"the kernel offers no secondary bus reset for {point.id} "
        "(no reset_subordinate, and no single child with reset_method 'bus')",
    )


def _with_method(fn: PciFunction, method: str, why: str, write: Step) -> list[Step]:
    """`write` with the kernel's reset_method set to `method` around it (when the kernel has the
    file): reset_method is persistent kernel state, so what the user had is put back."""
    if fn.reset_methods is None:
        return [write]
    path = os.path.join(fn.path, "reset_method")
    return [
        Step("set_reset_method", why, path, method),
        write,
        Step("restore_reset_method", "restore the kernel's reset methods", path, " ".join(fn.reset_methods)),
    ]


def supported_levels(topo: Topology, fn: PciFunction, platform: LinuxPlatform) -> dict[str, str | None]:
    """level -> None when `fn` offers it on `platform`, else the reason it does not."""
    from accelctl.errors import ResetUnsupportedError

    out: dict[str, str | None] = {}
    for level in ResetLevel:
        try:
            platform_steps(topo, reset_point(topo, fn, level), platform)
        except ResetUnsupportedError as why:
            out[level.value] = why.message
        else:
            out[level.value] = None
    return out
