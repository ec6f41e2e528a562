"""The only layer that reads a sysfs tree: attribute parsing and config-space decoding."""

from accelctl.sysfs.root import SYSFS_ROOT_ENV, SysfsRoot
from accelctl.sysfs.scan import RawTree, ScanWarning, scan_tree

__all__ = ["SYSFS_ROOT_ENV", "RawTree", "ScanWarning", "SysfsRoot", "scan_tree"]
