"""Hints for bus-number and BAR findings, from the addressing planner when it can explain them.

The planner (accelctl.addressing.planner) is optional here: when it is missing or cannot explain
a case, the hint falls back to the generic remedy, so diagnostics never fail because of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accelctl.topology import Topology

BUS_HINT = ("reserve bus numbers for hot-plug: boot with pci=hpbussize=N or pci=assign-busses "
            "(or set the BIOS hot-plug bus reserve), then rescan or reboot")
BAR_HINT = ("not enough MMIO space: enable Above 4G Decoding and Resizable BAR in the BIOS, or boot "
            "with pci=realloc (pci=hpmmioprefsize= for hot-plug ports)")


def _planner_explain(name: str, topo: Topology, node_id: str) -> str | None:
    try:
        from accelctl.addressing import planner
    except ImportError:
        return None
    explain = getattr(planner, name, None)
    if explain is None:
        return None
    try:
        text = explain(topo, node_id)
    except Exception:  # noqa: BLE001 - a hint must never break the diagnosis it decorates
        return None
    return str(text) if text else None


def bus_exhaustion_hint(topo: Topology, node_id: str) -> str:
    explained = _planner_explain("explain_bus_exhaustion", topo, node_id)
    return explained or BUS_HINT  # the planner's paragraph already ends with the fix


def bar_unassigned_hint(topo: Topology, node_id: str) -> str:
    explained = _planner_explain("explain_bar_unassigned", topo, node_id)
    return explained or BAR_HINT
