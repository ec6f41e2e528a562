"""The device simulator: plays the kernel driver and the firmware of accelerator endpoints.

Start it with :func:`accelctl.sim.service.start_embedded` (a thread) or
:func:`accelctl.sim.service.start_process` (``python -m accelctl.sim.device``, a process); talk to it with the ABI in :mod:`accelctl.protocol.abi`.
"""

import logging

from .config import DEFAULT_MEMORY_CAP, EndpointConfig, endpoints_from_json, endpoints_to_json
from .daemon import DaemonError, DeviceDaemon
from .faults import FaultSpec, FaultSpecError

# The daemon logs what it refused or survived; silent unless the host process configures logging
# (``python -m accelctl.sim.device`` does; an embedded daemon must not print into a CLI's output).
logging.getLogger("accelctl.sim").addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_MEMORY_CAP",
    "DaemonError",
    "DeviceDaemon",
    "EndpointConfig",
    "FaultSpec",
    "FaultSpecError",
    "endpoints_from_json",
    "endpoints_to_json",
]
