"""Choosing the sysfs tree to read: a bundled fixture, a directory, a snapshot archive (unpacked
on the fly into a cache keyed by its hash), or the live /sys; and saying which of those it is,
because what a command may do there (reset, talk to devices, keep state) depends on it."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from accelctl.errors import AccelError
from accelctl.sysfs import SysfsRoot
from accelctl.sysfs.root import SYSFS_ROOT_ENV


class SourceKind(str, enum.Enum):
    """Where a machine's facts come from."""

    LIVE = "live"  #: the running kernel's /sys
    FIXTURE = "fixture"  #: a bundled fixture, built from its spec
    SNAPSHOT = "snapshot"  #: a snapshot archive (or its unpacked tree): facts only, no devices
    DIRECTORY = "directory"  #: any other directory standing in for /sys


@dataclass(frozen=True)
class MachineSource:
    """Which machine a tree describes: its kind, a name for people, and the path read."""

    kind: SourceKind
    name: str
    path: str

    @property
    def has_devices(self) -> bool:
        """False for a snapshot: there is nothing behind it to reset or talk to."""
        return self.kind is not SourceKind.SNAPSHOT

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "name": self.name, "path": self.path}


def open_source(
    *, sysfs_root: str | os.PathLike[str] | None = None, fixture: str | None = None
) -> tuple[SysfsRoot, MachineSource]:
    """The SysfsRoot for a fixture name or a directory ($ACCELCTL_SYSFS_ROOT, then /sys), and
    what kind of machine it is.

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

        path = bundled_fixture_root(fixture)
        return SysfsRoot(path), MachineSource(SourceKind.FIXTURE, fixture, str(path))
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
            tree = snapshot_tree(sysfs_root)
            name = os.path.abspath(os.fspath(sysfs_root))
            return SysfsRoot(tree), MachineSource(SourceKind.SNAPSHOT, name, str(tree))
    root = SysfsRoot(sysfs_root)
    kind = SourceKind.LIVE if root.is_live else SourceKind.DIRECTORY
    name = "localhost" if kind is SourceKind.LIVE else str(root.path)
    return root, MachineSource(kind, name, str(root.path))


def open_root(
    *, sysfs_root: str | os.PathLike[str] | None = None, fixture: str | None = None
) -> SysfsRoot:
    """The SysfsRoot alone (see `open_source`)."""
    return open_source(sysfs_root=sysfs_root, fixture=fixture)[0]
