"""Snapshots: the PCI part of a sysfs tree in one archive, replayable with --sysfs-root.

    from accelctl.snapshot import take_snapshot, snapshot_tree
    info = take_snapshot(root, "machine.tar.gz")      # capture + write, atomically; never replaces
                                                      # a file unless overwrite=True
    tree = snapshot_tree("machine.tar.gz")            # unpacked (cached) dir standing in for /sys
"""

from __future__ import annotations

import os
from collections.abc import Callable

from accelctl.snapshot.archive import SnapshotInfo
from accelctl.snapshot.replay import looks_like_archive, snapshot_tree
from accelctl.sysfs import SysfsRoot


def take_snapshot(
    root: SysfsRoot,
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SnapshotInfo:
    """Capture the PCI part of `root` into the archive `out`. The path is checked before the
    capture (which can take seconds: `progress` is told, in a sentence, when it starts), and the
    archive appears whole or not at all.

    Raises:
        OutputPathError: `out` exists and not `overwrite`, is a directory, or cannot be written.
        AccelError: the tree exceeds the snapshot bounds.
    """
    from accelctl.snapshot.archive import check_output, write_snapshot
    from accelctl.snapshot.capture import capture_tree

    path = os.fspath(out)
    check_output(path, overwrite=overwrite)
    if progress is not None:
        functions = len(root.listdir(root.join("bus", "pci", "devices")))
        progress(f"capturing {functions:,} PCI functions into {path}")
    cap = capture_tree(root)
    return write_snapshot(cap, path, source=str(root.path), overwrite=overwrite)


__all__ = ["SnapshotInfo", "looks_like_archive", "snapshot_tree", "take_snapshot"]
