"""`watch`: PCI events as they happen. Live /sys: a pyudev monitor of the pci subsystem; any other
root (fixtures, where there is no udev): the same events derived by polling the tree. With an
interval, link state and AER counters are polled too and changes reported with rates."""

from accelctl.watch.poll import Event, TreeState, diff_states, read_state

__all__ = ["Event", "TreeState", "diff_states", "read_state"]
