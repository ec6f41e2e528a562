"""`watch`: PCI events as they happen. Live /sys: a pyudev monitor of the pci subsystem; any other
root (fixtures, where there is no udev): the same events derived by polling the tree. With an
interval, link state and AER counters are polled too and changes reported with rates.

The library part is `watch_events(machine, ...)`, an iterator of `Event`s; the CLI only renders."""

from accelctl.watch.poll import Event, TreeState, diff_states, read_state
from accelctl.watch.stream import EventStream, WatchPlan, watch_events

__all__ = ["Event", "EventStream", "TreeState", "WatchPlan", "diff_states", "read_state", "watch_events"]
