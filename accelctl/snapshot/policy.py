"""What a snapshot takes from a sysfs tree, and what it leaves behind on purpose.

The rules protect the machine being captured as much as the archive: nothing is written, no
device memory is read (BAR ``resourceN`` files, ``rom``), nothing slow or side-effecting is read
(``vpd`` can stall on broken devices), and no link is ever followed out of the tree.
"""

from __future__ import annotations

import errno
import re

from accelctl.pci.bdf import HOST_BRIDGE_NAME, SYSFS_NAME

#: Binary files that map or read device memory (or may stall): never opened.
_DEVICE_MEMORY = re.compile(r"^(resource\d+(_wc)?|rom|vpd)$")

#: Subdirectories of a PCI function or host bridge worth keeping: they describe the PCI side
#: (power state, ASPM, MSI vectors, the bus below a bridge). Driver children (net/, drm/, nvme/,
#: block/ ...) describe other subsystems and can be huge; they are listed as skipped.
PCI_SUBDIRS = frozenset({"power", "link", "msi_irqs", "pci_bus", "doe_features", "p2pmem"})

#: Largest single file kept. sysfs attributes are one page; config space is 4096 bytes.
MAX_FILE_BYTES = 64 * 1024
#: Bounds on one snapshot, so a runaway tree cannot fill the disk, for capture and replay alike
#: (the scale fixture, 2144 functions, is 82k entries and 1.3 MB packed; it unpacks to ~280 MB
#: on disk, so 250k entries, ~6,500 functions, is about 1 GB unpacked).
MAX_TOTAL_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 250_000


def is_device_dir(name: str) -> bool:
    """A PCI function directory or a (possibly VMD-nested) root bus directory."""
    return bool(SYSFS_NAME.match(name) or HOST_BRIDGE_NAME.match(name))


#: Read errors that are a healthy kernel's normal answer, not a fault: power/autosuspend_delay_ms
#: fails with EIO whenever the driver does not use autosuspend (drivers/base/power/sysfs.c), which
#: is most devices. Warning about those would cry wolf on every machine.
_EXPECTED_ERRORS = {("autosuspend_delay_ms", errno.EIO): "autosuspend not in use (the kernel answers EIO)"}


def expected_error_reason(name: str, err: OSError) -> str | None:
    """Why a failed read is normal for this file (then it is skipped quietly), or None."""
    return _EXPECTED_ERRORS.get((name, err.errno))


def skip_reason_for_file(name: str, mode: int) -> str | None:
    """Why a regular file is not read, or None when it should be."""
    if _DEVICE_MEMORY.match(name):
        return "device memory or slow binary attribute (never read)"
    if mode & 0o444 == 0:
        return "write-only (an action, not a fact)"
    return None
