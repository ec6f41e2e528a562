"""A tiny hand-written sysfs tree writer for parser edge cases.

Independent of accelctl.sim.fixture on purpose: these tests pin the parser's behaviour on
shapes the builder may never produce (stray entries, absolute links, flat copies, VMD nesting).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path


def config_bytes(vendor: int, device: int, cls: int, *, bridge: tuple[int, int, int] | None = None,
                 pcie_type: int | None = None, size: int = 256) -> bytes:
    b = bytearray(size)
    struct.pack_into("<HH", b, 0, vendor, device)
    struct.pack_into("<I", b, 8, cls << 8)
    if bridge is not None:
        b[0x0E] = 1
        b[0x18:0x1B] = bytes(bridge)
    if pcie_type is not None and size >= 0x60:
        struct.pack_into("<H", b, 0x06, 0x10)
        b[0x34] = 0x40
        b[0x40], b[0x41] = 0x10, 0
        struct.pack_into("<H", b, 0x42, (pcie_type << 4) | 2)
        struct.pack_into("<I", b, 0x4C, (16 << 4) | 4)
        struct.pack_into("<H", b, 0x52, (16 << 4) | 4)
    return bytes(b)


class MiniTree:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bus" / "pci" / "devices").mkdir(parents=True, exist_ok=True)
        (root / "devices").mkdir(exist_ok=True)

    def add(self, rel: str, vendor: int, device: int, cls: int, *, link: str = "relative",
            config: bytes | None = None, bridge: tuple[int, int, int] | None = None,
            pcie_type: int | None = None, attrs: dict[str, str] | None = None,
            driver: str | None = None, services: tuple[str, ...] = ()) -> Path:
        """Create devices/<rel> (rel ends in the BDF) and its bus/pci/devices entry.

        `link` is how bus/pci/devices names it: "relative" (as the kernel does), "absolute" (a
        copied tree), "copy" (a flattened copy) or "none" (not listed at all). `driver` adds the
        ``driver`` link the kernel makes when one is bound; `services` adds portdrv service
        children (``<bdf>:pcieNNN``, the suffixes given)."""
        d = self.root / "devices" / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / "vendor").write_text(f"0x{vendor:04x}\n")
        (d / "device").write_text(f"0x{device:04x}\n")
        (d / "class").write_text(f"0x{cls:06x}\n")
        if config is None:
            config = config_bytes(vendor, device, cls, bridge=bridge, pcie_type=pcie_type)
        (d / "config").write_bytes(config)
        if bridge is not None:
            (d / "secondary_bus_number").write_text(f"{bridge[1]}\n")
            (d / "subordinate_bus_number").write_text(f"{bridge[2]}\n")
        for k, v in (attrs or {}).items():
            (d / k).write_text(v)
        if driver is not None:
            (d / "driver").symlink_to("../" * (rel.count("/") + 2) + f"bus/pci/drivers/{driver}")
        for suffix in services:
            (d / f"{d.name}:pcie{suffix}").mkdir()
        entry = self.root / "bus" / "pci" / "devices" / d.name
        if link == "relative":
            entry.symlink_to(os.path.relpath(d, entry.parent))
        elif link == "absolute":
            entry.symlink_to("/sys/devices/" + rel)
        elif link == "none":
            pass
        elif link == "copy":
            import shutil

            shutil.copytree(d, entry)
        return d
