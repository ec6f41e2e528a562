"""Choosing the sysfs tree to read: a bundled fixture, a directory, or the live /sys."""

from __future__ import annotations

import os

from accelctl.errors import AccelError
from accelctl.sysfs import SysfsRoot


def open_root(
    *, sysfs_root: str | os.PathLike[str] | None = None, fixture: str | None = None
) -> SysfsRoot:
    """The SysfsRoot for a fixture name or a directory ($ACCELCTL_SYSFS_ROOT, then /sys).

    Raises:
        AccelError: both a fixture and a root were given.
        SpecError: the fixture is unknown or its spec is malformed.
        SysfsRootError: the root is missing or not a directory.
    """
    if fixture is not None and sysfs_root is not None:
        raise AccelError("give either --fixture or --sysfs-root, not both")
    if fixture is not None:
        from accelctl.sim.fixture import bundled_fixture_root

        return SysfsRoot(bundled_fixture_root(fixture))
    return SysfsRoot(sysfs_root)
