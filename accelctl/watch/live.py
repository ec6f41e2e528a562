"""Live udev events of the pci subsystem (only for the running kernel's /sys)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from accelctl.watch.poll import Event

UDEV_ACTIONS = frozenset({"add", "remove", "change", "bind", "unbind"})


def udev_events(timeout_s: float) -> Iterator[Event | None]:
    """Events from a pyudev monitor; yields None every `timeout_s` without an event (so callers
    can poll link/AER and check their deadline)."""
    import pyudev

    monitor = pyudev.Monitor.from_netlink(pyudev.Context())
    monitor.filter_by(subsystem="pci")
    monitor.start()
    while True:
        dev = monitor.poll(timeout=timeout_s)
        if dev is None:
            yield None
            continue
        if dev.action not in UDEV_ACTIONS:
            continue
        bdf = dev.sys_name
        detail = {"driver": dev.driver, "pci_id": dev.properties.get("PCI_ID")}
        yield Event(dev.action, bdf, time.time(), detail, source="udev")
