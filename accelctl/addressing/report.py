"""What ``accelctl addr show`` and ``addr diff`` report: the map now, the persisted one, the
differences. One call each, so the CLI stays a renderer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelctl.addressing.addresses import AddressMap, AddressOrder, compute_addresses
from accelctl.addressing.diff import Difference, diff_maps
from accelctl.addressing.state import PersistedMap, load_map, map_path
from accelctl.addressing.visible import VisibleSet, restrict, visible_set_from_env
from accelctl.errors import AccelError, ForeignMapError, StateFileError

if TYPE_CHECKING:
    from accelctl.platform.roots import MachineSource
    from accelctl.topology import Topology


@dataclass(slots=True)
class AddressReport:
    current: AddressMap
    visible: VisibleSet | None
    state_path: Path
    #: absent | ok | foreign (another machine's map) | unreadable (corrupt, not ours, newer, no permission)
    state_status: str
    state_error: str | None
    persisted: PersistedMap | None
    #: None without a persisted map; [] when it matches the machine
    differences: list[Difference] | None

    def shown(self) -> AddressMap:
        """The map now, as far as ACCELCTL_VISIBLE_DEVICES lets it be seen."""
        return restrict(self.current, self.visible)

    def to_dict(self) -> dict[str, Any]:
        shown = self.shown()
        return {
            "order": self.current.order.value,
            "visible": self.visible.to_dict() if self.visible else None,
            "endpoints": [e.to_dict() for e in shown.endpoints],
            "cards": [c.to_dict() for c in shown.cards],
            "state": {"path": str(self.state_path), "status": self.state_status, "error": self.state_error},
            "persisted": self.persisted.to_dict() if self.persisted else None,
            "differences": None if self.differences is None else [d.to_dict() for d in self.differences],
        }


def address_report(
    topo: Topology,
    *,
    order: AddressOrder | str = AddressOrder.POSITION,
    state_directory: Path,
    machine: MachineSource,
    env: Mapping[str, str] | None = None,
) -> AddressReport:
    """The map now (restricted to ACCELCTL_VISIBLE_DEVICES when set), and the persisted map
    of `machine` with its differences when one exists. A persisted map that cannot be read (or
    is another machine's) does not stop the report: its error is reported in ``state``.

    Raises:
        AddressOrderError: the order needs slots/serials some cards lack.
        InvalidAddressError, DeviceNotFoundError, AmbiguousAddressError: a bad visible-devices entry.
    """
    current = compute_addresses(topo, order)
    visible = visible_set_from_env(topo, compute_addresses(topo), env=env)
    path = map_path(state_directory, machine)
    try:
        persisted = load_map(state_directory, machine)
    except ForeignMapError as err:
        return AddressReport(current, visible, path, "foreign", str(err), None, None)
    except AccelError as err:
        return AddressReport(current, visible, path, "unreadable", str(err), None, None)
    if persisted is None:
        return AddressReport(current, visible, path, "absent", None, None, None)
    return AddressReport(current, visible, path, "ok", None, persisted, diff_maps(persisted.addresses, current))


def diff_with_persisted(
    topo: Topology,
    *,
    state_directory: Path,
    machine: MachineSource,
    order: AddressOrder | str | None = None,
) -> tuple[PersistedMap, AddressMap, list[Difference]]:
    """Compare `machine` now with its persisted map, in the order the map was assigned with
    (unless `order` is given).

    Raises:
        ForeignMapError: the map there describes another machine.
        StateFileError: no persisted map, or it cannot be read.
    """
    persisted = load_map(state_directory, machine)
    if persisted is None:
        raise StateFileError(
            f"no persisted address map for {machine.describe()}", path=map_path(state_directory, machine),
            hint="run 'accelctl addr assign' first (with the same --fixture/--sysfs-root; "
            "or point --state-dir at the right directory)",
        )
    current = compute_addresses(topo, order or persisted.addresses.order)
    return persisted, current, diff_maps(persisted.addresses, current)
