"""Endpoints of a machine for programs and the CLI: open one by any name accelctl accepts, or do
one admin/IO operation on it in one call.

    from accelctl.endpoints import open_endpoint
    from accelctl.driver import commands as cmd

    with open_endpoint("card1.ep0", fixture="two-socket") as dev:
        buf = dev.alloc_dma(1 << 20)                 # registered, pre-faulted, zero-copy view
        buf.view[:5] = b"hello"
        dev.execute(cmd.write(0x0, buf))

Every name goes through the machine's one resolver, so ``$ACCELCTL_VISIBLE_DEVICES`` holds for
a BDF as for ``cardN.epM``, and the accelerator rules (``accel_ids``) are the machine's. The
platform says who plays the kernel driver (the fixture's simulator daemon, started on demand).
The one-call operations return plain data (dicts, bytes) and raise typed errors; nothing here
prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from accelctl.protocol import abi

if TYPE_CHECKING:
    from accelctl.driver.aio import AsyncSession
    from accelctl.driver.session import Session
    from accelctl.machine import Machine

#: Feature names accepted on the command line (lowercase, dashes) -> feature id.
FEATURES = {f.name.lower().replace("_", "-"): f for f in abi.Feature}


def feature_names() -> list[str]:
    return sorted(FEATURES)


def feature_id(name_or_number: str) -> abi.Feature | int:
    """A feature by name (``keep-alive-timer``) or number (``0x0f``, ``15``).

    Raises ValueError for anything else (the message lists the known names)."""
    key = name_or_number.strip().lower().replace("_", "-")
    if key in FEATURES:
        return FEATURES[key]
    try:
        return int(key, 0)
    except ValueError:
        raise ValueError(f"unknown feature {name_or_number!r}; known: {', '.join(feature_names())}") from None


def _feature_name(fid: int) -> str:
    try:
        return abi.Feature(fid).name.lower().replace("_", "-")
    except ValueError:
        return f"{fid:#04x}"


def open_endpoint(
    device: str,
    *,
    machine: Machine | None = None,
    sysfs_root: str | os.PathLike[str] | None = None,
    fixture: str | None = None,
    accel_ids: Iterable[str] = (),
    **session_options: Any,
) -> Session:
    """Open the accelerator endpoint named ``device`` (BDF, cardN.epM, global id or serial).

    Give a ready ``machine``, or what to open one from (``fixture``, ``sysfs_root``,
    ``accel_ids``; default: $ACCELCTL_SYSFS_ROOT or /sys). ``session_options`` go to
    :class:`~accelctl.driver.session.Session`: ``wait`` is ``interrupt`` (sleep on eventfds),
    ``poll`` (spin) or ``hybrid``; timeouts, ``max_resets``, ...

    Raises:
        InvalidAddressError, DeviceNotFoundError, AmbiguousAddressError: the name.
        DriverError: nothing on this machine plays the driver for it (a live machine today).
        SimulatorError: the fixture's simulator could not be started.
    """
    from accelctl.driver.session import Session

    if machine is None:
        from accelctl.machine import open_machine

        machine = open_machine(sysfs_root=sysfs_root, fixture=fixture, accel_ids=accel_ids)
    bdf = machine.resolve_endpoint(device).id
    socket_path = machine.platform.endpoint_socket(bdf)
    return Session(socket_path, bdf=bdf, **session_options)


async def open_endpoint_async(device: str, **options: Any) -> AsyncSession:
    """`open_endpoint` for use from the running asyncio loop (waits on eventfds by default)."""
    import asyncio

    from accelctl.driver.aio import AsyncSession

    options.setdefault("wait", "interrupt")
    return AsyncSession(open_endpoint(device, **options), asyncio.get_running_loop())


def _device(machine: Machine, bdf: str) -> dict[str, Any]:
    """The endpoint an operation acted on, in the JSON vocabulary (docs/json-schema.md):
    ``bdf``, and ``name`` (``cardN.epM``, null when it is on no card)."""
    return {"bdf": bdf, "name": machine.topology().endpoint_names().get(bdf)}


def _address(dev_addr: int) -> str:
    """A device memory address as every JSON document writes one: ``0x`` and lowercase hex."""
    return f"0x{dev_addr:x}"


def identify(machine: Machine, device: str) -> dict[str, Any]:
    with open_endpoint(device, machine=machine) as dev:
        return {**_device(machine, dev.bdf), "controller": dev.identify(), "endpoint": dev.identify_endpoint()}


def read_log(machine: Machine, device: str, page: str) -> dict[str, Any]:
    with open_endpoint(device, machine=machine) as dev:
        return {**_device(machine, dev.bdf), "log": page, "content": dev.log_page(page)}


def _feature_value(fid: int, value: int) -> Any:
    if fid == abi.Feature.LOGICAL_ADDRESS:
        addr = abi.unpack_logical_address(value)
        return None if addr is None else {"card": addr[0], "endpoint": addr[1], "global_id": addr[2]}
    return value


def features(machine: Machine, device: str) -> dict[str, Any]:
    with open_endpoint(device, machine=machine) as dev:
        values = {}
        for f in abi.Feature:
            raw = dev.get_feature(f)
            values[_feature_name(f)] = {"id": f"{int(f):02x}", "raw": raw, "value": _feature_value(f, raw)}
        return {**_device(machine, dev.bdf), "features": values}


def get_feature(machine: Machine, device: str, feature: int) -> dict[str, Any]:
    with open_endpoint(device, machine=machine) as dev:
        raw = dev.get_feature(feature)
        return {**_device(machine, dev.bdf), "feature": _feature_name(feature), "id": f"{feature:02x}", "raw": raw,
                "value": _feature_value(feature, raw)}


def set_feature(machine: Machine, device: str, feature: int, value: int) -> dict[str, Any]:
    with open_endpoint(device, machine=machine) as dev:
        previous = dev.get_feature(feature)
        dev.set_feature(feature, value)
        now = dev.get_feature(feature)
        return {**_device(machine, dev.bdf), "feature": _feature_name(feature), "id": f"{feature:02x}",
                "previous": previous, "raw": now, "value": _feature_value(feature, now)}


def write_data(machine: Machine, device: str, dev_addr: int, data: bytes) -> dict[str, Any]:
    with open_endpoint(device, machine=machine) as dev:
        n = dev.write_memory(dev_addr, data)
        return {**_device(machine, dev.bdf), "address": _address(dev_addr), "bytes": n}


def read_data(machine: Machine, device: str, dev_addr: int, length: int) -> bytes:
    with open_endpoint(device, machine=machine) as dev:
        return dev.read_memory(dev_addr, length)


def fill(machine: Machine, device: str, dev_addr: int, length: int, pattern: int) -> dict[str, Any]:
    from accelctl.driver.commands import fill as fill_command

    with open_endpoint(device, machine=machine) as dev:
        dev.execute(fill_command(dev_addr, length, pattern))
        return {**_device(machine, dev.bdf), "address": _address(dev_addr), "bytes": length, "pattern": f"{pattern & 0xFFFFFFFF:08x}"}


def compare(machine: Machine, device: str, dev_addr: int, data: bytes) -> dict[str, Any]:
    with open_endpoint(device, machine=machine) as dev:
        diff = dev.compare_memory(dev_addr, data)
        return {**_device(machine, dev.bdf), "address": _address(dev_addr), "bytes": len(data), "equal": diff is None,
                "first_difference": None if diff is None else diff}
