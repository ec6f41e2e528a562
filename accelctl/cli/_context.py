"""AppContext: what the global options decided, built once per invocation in the callback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accelctl.machine import Machine
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
    _machine: Machine | None = None

    def machine(self, *, platform_kind: str | None = None) -> Machine:
        """The machine this invocation works on (--fixture, --sysfs-root, $ACCELCTL_SYSFS_ROOT
        or /sys, with --accel-id), opened once; every command and every step uses this one."""
        if self._machine is None:
            from accelctl.cli._output import progress_reporter
            from accelctl.machine import open_machine

            self._machine = open_machine(
                sysfs_root=self.sysfs_root, fixture=self.fixture, accel_ids=self.accel_ids,
                platform_kind=platform_kind, progress=progress_reporter(),
            )
        return self._machine

    def root(self) -> SysfsRoot:
        return self.machine().root

    def topology(self) -> Topology:
        return self.machine().topology()
