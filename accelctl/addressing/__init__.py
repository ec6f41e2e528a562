"""Stable logical addresses of accelerator endpoints, the device-name resolver, the visible-devices
variable, the persisted address map, and the bus/MMIO planner. See docs/addressing.md."""

from accelctl.addressing.addresses import (
    AddressMap,
    AddressOrder,
    AddressOrderError,
    CardAddress,
    EndpointAddress,
    compute_addresses,
)
from accelctl.addressing.names import DeviceName, NameForm, parse_device_name
from accelctl.addressing.resolver import (
    Resolved,
    ResolvedKind,
    Resolver,
    resolve,
    resolve_endpoint,
)
from accelctl.addressing.visible import VISIBLE_DEVICES_ENV, VisibleSet, parse_visible_devices, restrict

__all__ = [
    "VISIBLE_DEVICES_ENV",
    "AddressMap",
    "AddressOrder",
    "AddressOrderError",
    "CardAddress",
    "DeviceName",
    "EndpointAddress",
    "NameForm",
    "Resolved",
    "ResolvedKind",
    "Resolver",
    "VisibleSet",
    "compute_addresses",
    "parse_device_name",
    "parse_visible_devices",
    "resolve",
    "resolve_endpoint",
    "restrict",
]
