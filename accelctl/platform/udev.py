"""Names from the udev database of the running system (hwdb: ID_VENDOR/MODEL_FROM_DATABASE).

Only for the live /sys: a fixture or snapshot has no udev database, and its names come from
pci.ids alone. lspci asks the hwdb first too, so on a live machine both print the same names.
Names are cosmetic: anything that goes wrong here (no pyudev, no database, a device that
vanished) leaves them to pci.ids, silently.
"""

from __future__ import annotations

import os

#: Where udev keeps its per-device database; without it there is nothing to ask.
UDEV_DATA_DIR = "/run/udev/data"


def udev_names(sys_paths: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    """{id: (vendor name, model name)} for the devices udev names, given {id: sysfs path}."""
    if not sys_paths or not os.path.isdir(UDEV_DATA_DIR):
        return {}
    try:
        import pyudev

        context = pyudev.Context()
    except Exception:  # noqa: BLE001 - no pyudev or no libudev: pci.ids names only
        return {}
    out: dict[str, tuple[str | None, str | None]] = {}
    for fn_id, path in sys_paths.items():
        try:
            props = pyudev.Devices.from_sys_path(context, path).properties
            vendor = props.get("ID_VENDOR_FROM_DATABASE")
            model = props.get("ID_MODEL_FROM_DATABASE")
        except Exception:  # noqa: BLE001 - vanished or unreadable device: keep pci.ids names
            continue
        if vendor or model:
            out[fn_id] = (vendor or None, model or None)
    return out
