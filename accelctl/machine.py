"""The machine a command works on, built once and handed down.

A :class:`Machine` is a sysfs tree (live /sys, fixture, snapshot or directory), the accelerator
rules that decide what counts (built-in table + ``--accel-id`` + ``$ACCELCTL_ACCEL_IDS``), and the
platform that acts on it (Linux sysfs writes, or the simulator for a fixture). Every command asks
it for the topology (scanned once, with that one matcher), for names (one resolver, honouring
``$ACCELCTL_VISIBLE_DEVICES``), and for the platform; a reset's rescan asks it again. So no
path can see another set of accelerators, bypass the visible set, or scan the tree twice.

    from accelctl.machine import open_machine

    m = open_machine(fixture="two-socket", accel_ids=["class:0b40"])
    topo = m.topology()
    fn = m.resolve_endpoint("card1.ep0")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accelctl.addressing.resolver import Resolver
    from accelctl.platform.linux import LinuxPlatform
    from accelctl.platform.roots import MachineSource
    from accelctl.sysfs import SysfsRoot
    from accelctl.topology import Topology
    from accelctl.topology.accel import AcceleratorMatcher
    from accelctl.topology.model import PciFunction


class Machine:
    """One machine's tree, accelerator rules and platform; caches its one scan."""

    def __init__(
        self,
        root: SysfsRoot,
        matcher: AcceleratorMatcher,
        source: MachineSource,
        *,
        platform_kind: str | None = None,
    ) -> None:
        self.root = root
        self.matcher = matcher
        self.source = source
        self._platform_kind = platform_kind
        self._platform: LinuxPlatform | None = None
        self._topology: Topology | None = None
        self._resolver: Resolver | None = None

    def __repr__(self) -> str:
        return f"Machine({self.source.kind.value} {self.source.name!r})"

    def topology(self) -> Topology:
        """The topology, scanned on first use with this machine's matcher."""
        if self._topology is None:
            from accelctl.topology import build_topology

            self._topology = build_topology(self.root, matcher=self.matcher)
        return self._topology

    def rescan(self) -> Topology:
        """Scan again (after a reset or hot-plug), with the same rules; forgets derived names."""
        self._topology = None
        self._resolver = None
        return self.topology()

    def resolver(self) -> Resolver:
        """The one resolver of device names for this machine (honours the visible set)."""
        if self._resolver is None:
            from accelctl.addressing.resolver import Resolver

            self._resolver = Resolver(self.topology())
        return self._resolver

    def resolve_endpoint(self, name: str) -> PciFunction:
        """The single accelerator endpoint `name` names (any form accelctl accepts).

        Raises:
            InvalidAddressError, DeviceNotFoundError (also when hidden by
            $ACCELCTL_VISIBLE_DEVICES), AmbiguousAddressError.
        """
        return self.resolver().resolve_endpoint(name)

    def accelerators(self) -> list[Any]:
        return list(self.topology().accelerators())

    @property
    def platform(self) -> LinuxPlatform:
        """Who acts on this machine: Linux sysfs writes on the live /sys, the simulator elsewhere."""
        if self._platform is None:
            from accelctl.platform.roots import SourceKind
            from accelctl.platform.sim import platform_for

            live = self.source.kind is SourceKind.LIVE
            self._platform = platform_for(
                self.root, live=live, accelerators=self.accelerators, force_kind=self._platform_kind
            )
        return self._platform


def open_machine(
    *,
    sysfs_root: str | os.PathLike[str] | None = None,
    fixture: str | None = None,
    accel_ids: Iterable[str] = (),
    platform_kind: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Machine:
    """The machine for a fixture name or a sysfs root ($ACCELCTL_SYSFS_ROOT, then /sys).
    `progress` is told, in a sentence, when opening it takes seconds (see `open_source`).

    The accelerator ids are checked here, before any scan, so a malformed one fails fast.

    Raises:
        InvalidAcceleratorIdError: a malformed id in `accel_ids` or $ACCELCTL_ACCEL_IDS.
        plus what `accelctl.platform.roots.open_source` raises for the tree.
    """
    from accelctl.platform.roots import open_source
    from accelctl.topology.accel import AcceleratorMatcher

    matcher = AcceleratorMatcher.from_env(list(accel_ids))
    root, source = open_source(sysfs_root=sysfs_root, fixture=fixture, progress=progress)
    return Machine(root, matcher, source, platform_kind=platform_kind)
