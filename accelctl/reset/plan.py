"""A reset plan: what will be reset, how, who is using it, in which steps. Nothing is touched
while planning; `--dry-run` prints exactly this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from accelctl.errors import ResetUnsupportedError
from accelctl.platform.linux import LinuxPlatform
from accelctl.reset.inuse import Holder, find_holders
from accelctl.reset.levels import ResetLevel, reset_point
from accelctl.reset.steps import Step, platform_steps, supported_levels
from accelctl.topology import Topology

if TYPE_CHECKING:
    from accelctl.addressing import Resolver
    from accelctl.machine import Machine

#: The CLI's JSON envelope carries the version (accelctl/cli/_output.py SCHEMA_VERSIONS).
SCHEMA_VERSION = 2

__all__ = ["SCHEMA_VERSION", "Affected", "ResetPlan", "Step", "make_plan", "plan_reset"]


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
            "name": self.address,
            "kind": self.kind,
            "card": self.card,
            "vendor_id": f"{self.vendor_id:04x}" if self.vendor_id is not None else None,
            "device_id": f"{self.device_id:04x}" if self.device_id is not None else None,
        }


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
    #: why `in_use` may be incomplete (a source that did not answer); empty when it is complete
    in_use_unknown: list[str] = field(default_factory=list)

    @property
    def affected_bdfs(self) -> list[str]:
        return [a.bdf for a in self.affected]

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level.value,
            "name": self.name,
            "target": self.target,
            "target_name": self.target_address,
            "reset_point": self.point,
            "platform": self.platform,
            "supported_levels": list(self.supported_levels),
            "affected": [a.to_dict() for a in self.affected],
            "in_use": [h.to_dict() for h in self.in_use],
            "in_use_unknown": list(self.in_use_unknown),
            "steps": [s.to_dict() for s in self.steps],
        }


def plan_reset(machine: Machine, name: str, level: ResetLevel | str, *, timeout_s: float = 30.0) -> ResetPlan:
    """The plan for resetting `name` on `machine` (a machine with devices to reset).

    Raises:
        ActionRefusedError: the machine is a snapshot replay (there is no device to reset).
        ResetUnsupportedError, InvalidAddressError, DeviceNotFoundError, ...: as make_plan.
    """
    from accelctl.reset.policy import refuse_unless_resettable

    refuse_unless_resettable(machine)
    return make_plan(machine.topology(), name, level, machine.platform, timeout_s=timeout_s,
                     resolver=machine.resolver())


def make_plan(
    topo: Topology,
    name: str,
    level: ResetLevel | str,
    platform: LinuxPlatform,
    *,
    timeout_s: float = 30.0,
    check_in_use: bool = True,
    resolver: Resolver | None = None,
) -> ResetPlan:
    """Resolve `name` (with `resolver`, by default one honouring $ACCELCTL_VISIBLE_DEVICES), work
    out the blast radius of `level` and the steps on `platform`.

    Raises:
        InvalidAddressError, DeviceNotFoundError, AmbiguousAddressError: `name` does not name one
            visible device.
        ResetUnsupportedError: the device does not offer `level` (the error lists what it offers).
    """
    from accelctl.addressing import Resolver, ResolvedKind

    level = ResetLevel(level)
    resolver = resolver or Resolver(topo)
    addresses = resolver.addresses
    resolved = resolver.resolve(name)
    fn = resolved.function
    if resolved.kind is ResolvedKind.CARD and level in (ResetLevel.FLR, ResetLevel.CONTROLLER):
        if len(resolved.endpoints) != 1:
            raise ResetUnsupportedError(
                f"{name} is a whole card; a {level.value} reset is per endpoint",
                level=level.value,
                supported=["card"],
                hint=f"name one endpoint ({', '.join(e.name for e in resolved.endpoints)}) or use --level card",
            )
        fn = topo.functions[resolved.endpoints[0].bdf]
    offered = [lv for lv, reason in supported_levels(topo, fn, platform).items() if reason is None]
    try:
        rp = reset_point(topo, fn, level)
        steps = platform_steps(topo, rp, platform)
    except ResetUnsupportedError as why:
        raise ResetUnsupportedError(
            f"cannot do a {level.value} reset of {fn.id}: {why.message}",
            level=level.value,
            supported=offered,
            hint=(f"{fn.id} supports: {', '.join(offered)}" if offered else f"{fn.id} supports no reset level here"),
        ) from None
    by_bdf = addresses.by_bdf()
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
    in_use = find_holders(topo, list(rp.affected), platform) if check_in_use else None
    ep = by_bdf.get(fn.id)
    return ResetPlan(
        level=level,
        name=name,
        target=fn.id,
        target_address=ep.name if ep else None,
        point=rp.point,
        platform=platform.kind,
        affected=affected,
        in_use=in_use.holders if in_use else [],
        steps=steps,
        supported_levels=offered,
        in_use_unknown=in_use.unknown if in_use else [],
    )
