"""Fixture-side effects of simulated resets and faults: change a fixture tree the way the kernel
would change /sys. Text attributes and config space are changed together, so lspci and accelctl
keep agreeing about the tree. Only for fixture trees (never called on a live /sys)."""

from __future__ import annotations

import os
import shutil
import struct

from accelctl.pci import regs
from accelctl.pci.bdf import SYSFS_NAME
from accelctl.sysfs import SysfsRoot
from accelctl.sysfs.config import find_capability, find_ext_capability

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


def _function_dir(root: SysfsRoot, bdf: str) -> str | None:
    return root.resolve_link(root.join("bus", "pci", "devices", bdf)) or (
        root.join("bus", "pci", "devices", bdf)
        if os.path.isdir(root.join("bus", "pci", "devices", bdf))
        else None
    )


def _rewrite(path: str, text: str) -> None:
    # write a new file and rename it: a concurrent reader sees the old or the new value, never half
    tmp = path + ".accelctl-tmp"
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o444
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _rewrite_bytes(path: str, data: bytes) -> None:
    tmp = path + ".accelctl-tmp"
    mode = os.stat(path).st_mode & 0o777
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def set_link(root: SysfsRoot, bdf: str, *, width: int | None = None, speed_gts: float | None = None) -> list[str]:
    """Retrain the link of `bdf` (and its upstream port: both ends report the same link) to
    `width` lanes / `speed_gts`. Returns the BDFs changed."""
    changed = []
    d = _function_dir(root, bdf)
    if d is None:
        return changed
    targets = [d]
    parent = os.path.dirname(d)
    if SYSFS_NAME.match(os.path.basename(parent)):
        targets.append(parent)
    for fdir in targets:
        if width is not None and os.path.exists(os.path.join(fdir, "current_link_width")):
            _rewrite(os.path.join(fdir, "current_link_width"), f"{width}\n")
        if speed_gts is not None and os.path.exists(os.path.join(fdir, "current_link_speed")):
            _rewrite(os.path.join(fdir, "current_link_speed"), regs.speed_string(speed_gts) + "\n")
        cfg_path = os.path.join(fdir, "config")
        if os.path.exists(cfg_path):
            with open(cfg_path, "rb") as f:
                cfg = bytearray(f.read())
            cap = find_capability(bytes(cfg), regs.CAP_ID_EXP)
            if cap is not None and cap + regs.EXP_LNKSTA + 2 <= len(cfg):
                off = cap + regs.EXP_LNKSTA
                lnksta = _U16.unpack_from(cfg, off)[0]
                if width is not None:
                    lnksta = (lnksta & ~(0x3F << 4)) | ((width & 0x3F) << 4)
                if speed_gts is not None:
                    lnksta = (lnksta & ~0xF) | regs.GTS_SPEED.get(speed_gts, lnksta & 0xF)
                _U16.pack_into(cfg, off, lnksta)
                _rewrite_bytes(cfg_path, bytes(cfg))
        changed.append(os.path.basename(fdir))
    return changed


def set_serial(root: SysfsRoot, bdf: str, serial: str) -> bool:
    """Give `bdf` another Device Serial Number (text attribute and DSN capability)."""
    d = _function_dir(root, bdf)
    if d is None:
        return False
    value = int(serial.replace("-", ""), 16)
    sn = os.path.join(d, "serial_number")
    if os.path.exists(sn):
        _rewrite(sn, serial + "\n")
    cfg_path = os.path.join(d, "config")
    if os.path.exists(cfg_path):
        with open(cfg_path, "rb") as f:
            cfg = bytearray(f.read())
        cap = find_ext_capability(bytes(cfg), regs.EXT_CAP_ID_DSN)
        if cap is not None:
            _U32.pack_into(cfg, cap + regs.DSN_LOW, value & 0xFFFFFFFF)
            _U32.pack_into(cfg, cap + regs.DSN_HIGH, value >> 32)
            _rewrite_bytes(cfg_path, bytes(cfg))
    return True


def remove_function(root: SysfsRoot, bdf: str) -> bool:
    """The function (and anything below it) disappears, as after a surprise-down or `remove`."""
    d = _function_dir(root, bdf)
    if d is None:
        return False
    gone = {bdf}
    for dirpath, dirnames, _ in os.walk(d):
        gone.update(n for n in dirnames if SYSFS_NAME.match(n))
    shutil.rmtree(d, ignore_errors=True)
    # dangling links would make the scan warn about a removal in progress; the kernel drops them
    for sub in ("bus/pci/devices",):
        for name in gone:
            p = root.join(*sub.split("/"), name)
            if os.path.islink(p) or os.path.exists(p):
                try:
                    os.unlink(p)
                except IsADirectoryError:
                    shutil.rmtree(p, ignore_errors=True)
    drivers = root.join("bus", "pci", "drivers")
    for drv in os.listdir(drivers) if os.path.isdir(drivers) else ():
        for name in gone:
            p = os.path.join(drivers, drv, name)
            if os.path.islink(p):
                os.unlink(p)
    groups = root.join("kernel", "iommu_groups")
    for g in os.listdir(groups) if os.path.isdir(groups) else ():
        for name in gone:
            p = os.path.join(groups, g, "devices", name)
            if os.path.islink(p):
                os.unlink(p)
    return True


def bump_aer(root: SysfsRoot, bdf: str, counter: str = "RxErr", by: int = 1,
             attr: str = "aer_dev_correctable") -> bool:
    """Raise an AER counter (and the TOTAL line) of `bdf` by `by`."""
    d = _function_dir(root, bdf)
    if d is None:
        return False
    path = os.path.join(d, attr)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and (parts[0] == counter or parts[0].startswith("TOTAL_ERR")):
            parts[1] = str(int(parts[1]) + by)
        out.append(" ".join(parts))
    _rewrite(path, "\n".join(out) + "\n")
    return True
