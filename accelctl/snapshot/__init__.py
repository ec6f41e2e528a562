"""Snapshots: the PCI part of a sysfs tree in one archive, replayable with --sysfs-root.

    from accelctl.snapshot import take_snapshot, snapshot_tree
    info = take_snapshot(root, "machine.tar.gz")      # capture + write, atomically
    tree = snapshot_tree("machine.tar.gz")            # unpacked (cached) dir standing in for /sys
"""

from __future__ import annotations

import os

from accelctl.snapshot.archive import SnapshotInfo
from accelctl.snapshot.replay import looks_like_archive, snapshot_tree
from accelctl.sysfs import SysfsRoot


def take_snapshot(root: SysfsRoot, out: str | os.PathLike[str]) -> SnapshotInfo:
    """Capture the PCI part of `root` into the archive `out`.

    Raises:
        AccelError: the tree exceeds the snapshot bounds.
        OSError: `out` cannot be written (the CLI maps it).
    """
    from accelctl.snapshot.archive import write_snapshot
    from accelctl.snapshot.capture import capture_tree

    cap = capture_tree(root)
    return write_snapshot(cap, os.fspath(out), source=str(root.path))


__all__ = ["SnapshotInfo", "looks_like_archive", "snapshot_tree", "take_snapshot"]
