"""Small sysfs trees written by hand, for snapshot tests."""

from __future__ import annotations

import os


def tiny_tree(base) -> str:
    """One root bus with one endpoint, written the way the kernel lays it out."""
    root = base / "sys"
    dev = root / "devices" / "pci0000:00" / "0000:00:01.0"
    dev.mkdir(parents=True)
    for name, text in {
        "vendor": "0x1e52\n",
        "device": "0x401e\n",
        "class": "0x120000\n",
        "subsystem_vendor": "0x1e52\n",
        "subsystem_device": "0x0001\n",
        "revision": "0x01\n",
        "resource": "0x00000000fe000000 0x00000000feffffff 0x0000000000040200\n",
    }.items():
        (dev / name).write_text(text)
    cfg = bytearray(256)
    cfg[0:4] = bytes([0x52, 0x1E, 0x1E, 0x40])
    cfg[0x0B] = 0x12
    (dev / "config").write_bytes(bytes(cfg))
    # device memory and actions: must never be read or archived
    (dev / "resource0").write_bytes(b"SECRET-DEVICE-MEMORY")
    (dev / "rom").write_bytes(b"ROM")
    (dev / "reset").write_text("")
    os.chmod(dev / "reset", 0o200)
    (dev / "net").mkdir()
    (dev / "net" / "statistics").write_text("driver child\n")
    bus = root / "bus" / "pci" / "devices"
    bus.mkdir(parents=True)
    os.symlink("../../../devices/pci0000:00/0000:00:01.0", bus / "0000:00:01.0")
    # a link leaving the tree must not be archived (nor followed)
    os.symlink("/etc", dev / "escape")
    return str(root)
