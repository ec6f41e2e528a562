"""Choosing the sysfs tree to read: a bundled fixture, a directory, a snapshot archive (unpacked
on the fly into a cache keyed by its hash), or the live /sys."""

from __future__ import annotations

import os

from accelctl.errors import AccelError
from accelctl.sysfs import SysfsRoot
from accelctl.sysfs.root import SYSFS_ROOT_ENV


def open_root(
    *, sysfs_root: str | os.PathLike[str] | None = None, fixture: str | None = None
) -> SysfsRoot:
    """The SysfsRoot for a fixture name or a directory ($ACCELCTL_SYSFS_ROOT, then /sys).

    Raises:
        AccelError: both a fixture and a root were given.
        SpecError: the fixture is unknown or its spec is malformed.
        SysfsRootError: the root is missing or not a directory.
        SnapshotError: the root is a snapshot archive that is corrupt or unsafe to unpack.
    """
    if fixture is not None and sysfs_root is not None:
        raise AccelError("give either --fixture or --sysfs-root, not both")
    if fixture is not None:
        from accelctl.sim.fixture import bundled_fixture_root

        return SysfsRoot(bundled_fixture_root(fixture))
    if sysfs_root is None:
        sysfs_root = os.environ.get(SYSFS_ROOT_ENV) or None
    if sysfs_root is not None and (
        os.path.isfile(sysfs_root) or os.path.isfile(os.path.join(sysfs_root, "snapshot.json"))
    ):
        # A snapshot (archive, or unpacked with its snapshot.json): only then is the replay
        # code imported, so plain directory reads stay as cheap as /sys.
        from accelctl.snapshot.replay import (
            is_unpacked_snapshot,
            looks_like_archive,
            snapshot_tree,
        )

        if looks_like_archive(sysfs_root) or is_unpacked_snapshot(sysfs_root):
            return SysfsRoot(snapshot_tree(sysfs_root))
    return SysfsRoot(sysfs_root)
