"""The /dev nodes a PCI function's kernel driver made for it, as sysfs links them.

- ``accel/accelN``: the kernel's compute-accelerator subsystem (DRM accel: habanalabs, ivpu,
  qaic, amdxdna) -> ``/dev/accel/accelN``;
- ``drm/cardN``, ``drm/renderDN``: GPU drivers (amdgpu, i915, nouveau) -> ``/dev/dri/<name>``;
- bound to ``vfio-pci``: ``/dev/vfio/vfio`` and ``/dev/vfio/<iommu group>``, for a user-space
  driver such as accelctl's own.

Read at the moment a device is handed to a container: nodes come and go with driver binds.
"""

from __future__ import annotations

import os

from accelctl.sysfs.root import SysfsRoot

_CLASS_DIRS = (
    ("accel", ("accel",), "/dev/accel"),
    ("drm", ("card", "renderD"), "/dev/dri"),
)


def device_nodes(root: SysfsRoot, bdf: str) -> list[str]:
    """The device nodes of function `bdf`, in a stable order; [] when it has none (or is gone)."""
    fdir = root.join("bus", "pci", "devices", bdf)
    nodes: list[str] = []
    for sub, prefixes, dev_dir in _CLASS_DIRS:
        names = sorted(n for n in root.listdir(os.path.join(fdir, sub)) if n.startswith(prefixes)
                       and n[len(next(p for p in prefixes if n.startswith(p))):].isdigit())
        nodes.extend(f"{dev_dir}/{n}" for n in names)
    driver = root.link_target(os.path.join(fdir, "driver"))
    group = root.link_target(os.path.join(fdir, "iommu_group"))
    if driver is not None and os.path.basename(driver) == "vfio-pci" and group is not None:
        nodes.extend(["/dev/vfio/vfio", f"/dev/vfio/{os.path.basename(group)}"])
    return nodes
