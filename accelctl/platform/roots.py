"""Choosing the sysfs tree to read: a bundled fixture, a directory, a snapshot archive (unpacked
on the fly into a cache keyed by its hash), or the live /sys; and saying which of those it is,
because what a command may do there (reset, talk to devices, keep state) depends on it."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
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

    @property
    def key(self) -> str:
        """A stable name for this machine, safe as a file name: what state kept about it (the
        address map) is filed under. ``live``; ``fixture-NAME``; ``snapshot-HASH`` (of the
        snapshot's snapshot.json, so every copy of one archive is one machine);
        ``directory-HASH`` (of the resolved path)."""
        if self.kind is SourceKind.LIVE:
            return "live"
        if self.kind is SourceKind.FIXTURE:
            return f"fixture-{_slug(self.name)}"
        if self.kind is SourceKind.SNAPSHOT:
            from accelctl.snapshot.archive import META_NAME

            meta = os.path.join(os.path.dirname(self.path), META_NAME)
            try:
                with open(meta, "rb") as f:
                    return f"snapshot-{_digest(f.read())}"
            except OSError:
                return f"snapshot-{_digest(self.name.encode())}"
        return f"directory-{_digest(self.path.encode())}"

    def describe(self) -> str:
        """For people: 'the live machine', 'fixture two-socket', 'snapshot /x.tar.gz', ..."""
        if self.kind is SourceKind.LIVE:
            return "the live machine"
        return f"{self.kind.value} {self.name}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "name": self.name, "path": self.path}


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


def _slug(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def open_source(
    *,
    sysfs_root: str | os.PathLike[str] | None = None,
    fixture: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[SysfsRoot, MachineSource]:
    """The SysfsRoot for a fixture name or a directory ($ACCELCTL_SYSFS_ROOT, then /sys), and
    what kind of machine it is. `progress` is told, in a sentence, when seconds of work start
    (a fixture built or a snapshot unpacked the first time); nothing is said otherwise.

    Raises:
        AccelError: both a fixture and a root were given.
        UnknownFixtureError: no bundled fixture has that name.
        SpecError: the fixture's spec is malformed.
        SysfsRootError: the root is missing or not a directory.
        SnapshotError: the root is a snapshot archive that is corrupt or unsafe to unpack.
    """
    if fixture is not None and sysfs_root is not None:
        raise AccelError("give either --fixture or --sysfs-root, not both")
    if fixture is not None:
        from accelctl.sim.fixture import bundled_fixture_root

        path = bundled_fixture_root(fixture, progress=progress)
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
            tree = snapshot_tree(sysfs_root, progress=progress)
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
