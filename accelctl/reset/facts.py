"""What a device looks like, before and after a reset, and how two looks differ."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from accelctl.topology import PciFunction, Topology

if TYPE_CHECKING:
    from accelctl.reset.probe import Identity


@dataclass(slots=True, frozen=True)
class Facts:
    """The identity and link of one function as sysfs shows it (plus the driver's identify)."""

    bdf: str
    present: bool
    accessible: bool | None = None
    vendor_id: int | None = None
    device_id: int | None = None
    serial: str | None = None
    speed_gts: float | None = None
    width: int | None = None
    address: str | None = None
    #: from an identify round trip through the driver core (None: no driver session possible)
    identify_serial: str | None = None
    identify_model: str | None = None
    logical_address: tuple[int, int, int] | None = None

    def with_identity(self, ident: Identity | None) -> Facts:
        """These facts plus what the driver's identify said (unchanged when it said nothing)."""
        if ident is None:
            return self
        return replace(self, identify_serial=ident.serial, identify_model=ident.model,
                       logical_address=ident.logical_address)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bdf": self.bdf,
            "present": self.present,
            "vendor_id": f"{self.vendor_id:04x}" if self.vendor_id is not None else None,
            "device_id": f"{self.device_id:04x}" if self.device_id is not None else None,
            "serial": self.serial,
            "link": None if self.width is None and self.speed_gts is None
            else {"speed_gts": self.speed_gts, "width": self.width},
            "name": self.address,
            "identify_serial": self.identify_serial,
            "logical_address": list(self.logical_address) if self.logical_address else None,
        }


def facts_of(fn: PciFunction | None, bdf: str, address: str | None) -> Facts:
    if fn is None:
        return Facts(bdf, present=False)
    link = fn.link
    return Facts(
        bdf,
        present=True,
        accessible=fn.accessible,
        vendor_id=fn.vendor_id,
        device_id=fn.device_id,
        serial=fn.serial,
        speed_gts=link.speed_gts if link else None,
        width=link.width if link else None,
        address=address,
    )


def sysfs_facts(topo: Topology, bdfs: list[str]) -> dict[str, Facts]:
    """Facts of each of `bdfs` as the tree shows them now (absent ones: present=False)."""
    from accelctl.addressing import compute_addresses

    by_bdf = compute_addresses(topo).by_bdf()
    return {b: facts_of(topo.functions.get(b), b, by_bdf[b].name if b in by_bdf else None) for b in bdfs}


def _speed(v: float | None) -> str:
    return f"{v:g} GT/s" if v is not None else "unknown"


def differences(before: Facts, after: Facts) -> list[str]:
    """Human sentences, one per difference ("0000:05:00.0: link width x16 -> x8")."""
    b = before.bdf
    if not after.present:
        return [f"{b}: did not come back (missing after the reset)"]
    if after.accessible is False:
        return [f"{b}: config space reads all ones after the reset (fell off the bus)"]
    out = []
    if (before.vendor_id, before.device_id) != (after.vendor_id, after.device_id):
        out.append(
            f"{b}: vendor:device {before.vendor_id or 0:04x}:{before.device_id or 0:04x} -> "
            f"{after.vendor_id or 0:04x}:{after.device_id or 0:04x}"
        )
    if before.serial != after.serial:
        out.append(f"{b}: serial {before.serial} -> {after.serial}")
    if before.width != after.width:
        out.append(f"{b}: link width x{before.width} -> x{after.width}")
    if before.speed_gts != after.speed_gts:
        out.append(f"{b}: link speed {_speed(before.speed_gts)} -> {_speed(after.speed_gts)}")
    if before.identify_serial != after.identify_serial and before.identify_serial is not None:
        out.append(f"{b}: identify serial {before.identify_serial} -> {after.identify_serial}")
    if before.identify_model != after.identify_model and before.identify_model is not None:
        out.append(f"{b}: identify model {before.identify_model} -> {after.identify_model}")
    if before.address != after.address:
        out.append(f"{b}: logical address {before.address} -> {after.address}")
    return out
