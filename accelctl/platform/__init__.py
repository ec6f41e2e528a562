"""The seam between accelctl and where its facts come from (real /sys, fixture, snapshot)."""

from accelctl.platform.roots import open_root

__all__ = ["open_root"]
