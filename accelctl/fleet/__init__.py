"""What other engines consume: DRA ResourceSlices, the kubelet device plugin, NFD labels and
Prometheus metrics.

Every module here is built from one :class:`~accelctl.fleet.inventory.Inventory` (topology,
findings and the pairwise matrix of one snapshot) and never reads sysfs itself. The engines'
client libraries (kubernetes, grpcio, protobuf, prometheus_client) are the optional extra
``accelctl[fleet]`` and are imported only inside the functions that need them, so
``import accelctl.fleet`` stays cheap and works without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accelctl.fleet.inventory import FleetDevice, Inventory, build_inventory

_EXPORTS = {
    "FleetDevice": "accelctl.fleet.inventory",
    "Inventory": "accelctl.fleet.inventory",
    "build_inventory": "accelctl.fleet.inventory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)
