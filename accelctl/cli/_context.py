"""AppContext: what the global options decided, built once per invocation in the callback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accelctl.sysfs import SysfsRoot
    from accelctl.topology import Topology


@dataclass
class AppContext:
    sysfs_root: Path | None = None
    fixture: str | None = None
    accel_ids: list[str] = field(default_factory=list)
    debug: bool = False
    #: set by a command running with --json, so errors are reported as JSON too
    json_errors: bool = False
    _root: SysfsRoot | None = None
    _topology: Topology | None = None

    def root(self) -> SysfsRoot:
        """The sysfs tree this invocation reads: --fixture, --sysfs-root, $ACCELCTL_SYSFS_ROOT or /sys."""
        if self._root is None:
            from accelctl.platform import open_root

            self._root = open_root(sysfs_root=self.sysfs_root, fixture=self.fixture)
        return self._root

    def topology(self) -> Topology:
        if self._topology is None:
            from accelctl.topology import build_topology

            self._topology = build_topology(self.root(), accel_ids=self.accel_ids)
        return self._topology
