"""A reset plan: what will be reset, how, who is using it, in which steps. Nothing is touched
while planning; `--dry-run` prints exactly this."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from accelctl.errors import ResetUnsupportedError
from accelctl.platform.linux import LinuxPlatform
from accelctl.reset.inuse import Holder, scan_processes
from accelctl.reset.levels import ResetLevel, ResetPoint, reset_point
from accelctl.topology import PciFunction, Topology

SCHEMA_VERSION = 1


@dataclass(slots=True)
class Affected:
    bdf: str
    kind: str
    #: logical address (cardN.epM) of an accelerator endpoint, else None
    address: str | None
    card: int | None
    vendor_id: int | None
    device_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bdf": self.bdf,
            "address": self.address,
            "kind": self.kind,
            "card": f"card{self.card}" if self.card is not None else None,
            "vendor_id": f"{self.vendor_id:04x}" if self.vendor_id is not None else None,
            "device_id": f"{self.device_id:04x}" if self.device_id is not None else None,
        }


@dataclass(slots=True)
class Step:
    #: stable code: set_reset_method, write_reset, write_reset_subordinate, sim_device_reset,
    #: controller_reset, wait_reappear, verify
    action: str
    detail: str
    #: the sysfs file written, or the simulator socket used (None for waits and checks)
    path: str | None = None
    value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "detail": self.detail, "path": self.path, "value": self.value}


@dataclass(slots=True)
class ResetPlan:
    level: ResetLevel
    #: the name the user gave, and the function it resolved to
    name: str
    target: str
    target_address: str | None
    #: the function whose reset does the work (bridge for bus/card)
    point: str
    platform: str
    affected: list[Affected]
    in_use: list[Holder]
    steps: list[Step]
    supported_levels: list[str] = field(default_factory=list)

    @property
    def affected_bdfs(self) -> list[str]:
        return [a.bdf for a in self.affected]

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level.value,
            "name": self.name,
            "target": self.target,
            "target_address": self.target_address,
            "reset_point": self.point,
            "platform": self.platform,
            "supported_levels": list(self.supported_levels),
            "affected": [a.to_dict() for a in self.affected],
            "in_use": [h.to_dict() for h in self.in_use],
            "steps": [s.to_dict() for s in self.steps],
        }


# --- platform checks and steps -----------------------------------------------------------------


def _platform_steps(
    topo: Topology, rp: ResetPoint, platform: LinuxPlatform
) -> list[Step] | str:
    """The writes (or simulator calls) for this reset on this platform, or why it cannot be done."""
    point = topo.functions[rp.point]
    if rp.level is ResetLevel.CONTROLLER:
        if platform.kind != "simulator":
            return (
                "controller reset goes through accelctl's driver core, which has no backend for "
                "real hardware here (only simulated endpoints)"
            )
        return [Step("controller_reset", f"controller reset of {point.id} through the driver core")]
    if platform.kind == "simulator":
        steps = []
        eps = [a for a in rp.affected if topo.functions[a].is_accelerator]
        for bdf in eps:
            steps.append(Step("sim_device_reset", f"simulator: device reset of {bdf}", value=bdf))
        if not eps:
            steps.append(Step("sim_device_reset", f"simulator: {rp.level.value} reset below {point.id} "
                              "(no simulated endpoints affected)"))
        return steps
    fdir = point.path
    reset_file = os.path.join(fdir, "reset")
    if rp.level is ResetLevel.FLR:
        if not platform.has_file(reset_file):
            return f"{point.id} has no sysfs reset file (kernel offers no reset for it)"
        steps = []
        if point.reset_methods is not None:
            steps.append(Step("set_reset_method", "select FLR", os.path.join(fdir, "reset_method"), "flr"))
        steps.append(Step("write_reset", f"function level reset of {point.id}", reset_file, "1"))
        if point.reset_methods is not None:
            # reset_method is persistent kernel state: put back what the user had
            steps.append(Step("restore_reset_method", "restore the kernel's reset methods",
                              os.path.join(fdir, "reset_method"), " ".join(point.reset_methods)))
        return steps
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
            return [
                Step("set_reset_method", "select bus reset", os.path.join(child.path, "reset_method"), "bus"),
                Step("write_reset", f"secondary bus reset of {point.id} through {child.id}",
                     os.path.join(child.path, "reset"), "1"),
                Step("restore_reset_method", "restore the kernel's reset methods",
                     os.path.join(child.path, "reset_method"), " ".join(child.reset_methods)),
            ]
    return (
        f"the kernel offers no secondary bus reset for {point.id} "
        "(no reset_subordinate, and no single child with reset_method 'bus')"
    )


def supported_levels(topo: Topology, fn: PciFunction, platform: LinuxPlatform) -> dict[str, str | None]:
    """level -> None when supported, else the reason it is not."""
    out: dict[str, str | None] = {}
    for level in ResetLevel:
        rp = reset_point(topo, fn, level)
        if isinstance(rp, str):
            out[level.value] = rp
            continue
        steps = _platform_steps(topo, rp, platform)
        out[level.value] = steps if isinstance(steps, str) else None
    return out


# --- holders -----------------------------------------------------------------------------------


def find_holders(topo: Topology, bdfs: list[str], platform: LinuxPlatform) -> list[Holder]:
    """Processes holding any of `bdfs`: open/mapped files on the machine, plus simulator
    connections when the platform is simulated."""
    dirs = {b: topo.functions[b].path for b in bdfs}
    groups = {b: topo.functions[b].iommu_group for b in bdfs}
    holders = scan_processes(dirs, {b: (str(g) if g is not None else None) for b, g in groups.items()})
    if platform.kind == "simulator":
        from accelctl.platform.sim import SimPlatform
        from accelctl.reset.inuse import process_command

        assert isinstance(platform, SimPlatform)
        info = platform.introspect() or {}
        me = os.getpid()
        wanted = set(bdfs)
        for bdf, ep in sorted((info.get("endpoints") or {}).items()):
            if bdf not in wanted:
                continue
            for s in ep.get("sessions", []):
                pid = s.get("pid")
                if pid is None or pid == me:
                    continue
                holders.append(Holder(pid, process_command(pid), bdf, f"simulator connection (session {s.get('id')})"))
    uniq = {(h.pid, h.bdf, h.how): h for h in holders}
    return sorted(uniq.values(), key=lambda h: (h.bdf, h.pid, h.how))


# --- the plan ---------------------------------------------------------------------------------


def make_plan(
    topo: Topology,
    name: str,
    level: ResetLevel | str,
    platform: LinuxPlatform,
    *,
    timeout_s: float = 30.0,
    check_in_use: bool = True,
) -> ResetPlan:
    """Resolve `name`, work out the blast radius of `level` and the steps on `platform`.

    Raises:
        InvalidAddressError, DeviceNotFoundError, AmbiguousAddressError: `name` does not name one device.
        ResetUnsupportedError: the device does not offer `level` (the error lists what it offers).
    """
    from accelctl.addressing import Resolver, ResolvedKind, compute_addresses

    level = ResetLevel(level)
    addresses = compute_addresses(topo)
    resolver = Resolver(topo, addresses=addresses, visible=None)
    resolved = resolver.resolve(name)
    fn = resolved.function
    if resolved.kind is ResolvedKind.CARD and level in (ResetLevel.FLR, ResetLevel.CONTROLLER):
        if len(resolved.endpoints) == 1:
            fn = topo.functions[resolved.endpoints[0].bdf]
        else:
            raise ResetUnsupportedError(
                f"{name} is a whole card; a {level.value} reset is per endpoint",
                level=level.value,
                supported=["card"],
                hint=f"name one endpoint ({', '.join(e.name for e in resolved.endpoints)}) or use --level card",
            )
    by_bdf = addresses.by_bdf()
    support = supported_levels(topo, fn, platform)
    offered = [lv for lv, why in support.items() if why is None]
    rp = reset_point(topo, fn, level)
    why = rp if isinstance(rp, str) else None
    steps: list[Step] | str = [] if why else _platform_steps(topo, rp, platform)  # type: ignore[arg-type]
    if isinstance(steps, str):
        why = steps
    if why is not None:
        raise ResetUnsupportedError(
            f"cannot do a {level.value} reset of {fn.id}: {why}",
            level=level.value,
            supported=offered,
            hint=(f"{fn.id} supports: {', '.join(offered)}" if offered else f"{fn.id} supports no reset level here"),
        )
    assert not isinstance(rp, str) and not isinstance(steps, str)
    affected = [
        Affected(
            b,
            topo.functions[b].kind.value,
            by_bdf[b].name if b in by_bdf else None,
            topo.functions[b].card,
            topo.functions[b].vendor_id,
            topo.functions[b].device_id,
        )
        for b in rp.affected
    ]
    steps = [
        *steps,
        Step("wait_reappear", f"wait up to {timeout_s:g} s for {len(affected)} function(s) to reappear"),
        Step("verify", "compare vendor/device, serial, link speed/width, identify and logical address with before"),
    ]
    holders = find_holders(topo, list(rp.affected), platform) if check_in_use else []
    ep = by_bdf.get(fn.id)
    return ResetPlan(
        level=level,
        name=name,
        target=fn.id,
        target_address=ep.name if ep else None,
        point=rp.point,
        platform=platform.kind,
        affected=affected,
        in_use=holders,
        steps=steps,
        supported_levels=offered,
    )
