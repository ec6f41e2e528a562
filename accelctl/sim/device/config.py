"""What the simulator serves: one :class:`EndpointConfig` per accelerator endpoint.

Built by hand (tests) or from a fixture sysfs tree with :func:`endpoints_from_sysfs_root`, which
uses the discovery layer (``accelctl.sysfs`` + ``accelctl.topology``) so the daemon serves exactly
the endpoints ``accelctl list`` shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: Device memory is backed by a sparse file; cap what one endpoint gets unless told otherwise, so a
#: fixture with 32 GiB BARs does not make the daemon map 32 GiB per endpoint.
DEFAULT_MEMORY_CAP = 256 << 20
MIN_MEMORY_SIZE = 1 << 20
DEFAULT_FIRMWARE_REV = "SIM1.0"


@dataclass(frozen=True)
class EndpointConfig:
    """One endpoint the daemon serves."""

    bdf: str
    serial: str = "00-00-00-00-00-00-00-00"
    model: str = "accelsim"
    memory_size: int = 64 << 20
    vendor_id: int = 0x1DED
    device_id: int = 0x0001
    card: int | None = None
    bar0_size: int = 0
    numa_node: int = -1
    firmware_rev: str = DEFAULT_FIRMWARE_REV
    extra: dict[str, str] = field(default_factory=dict, compare=False)


def memory_size_from_bars(bars: object, cap: int = DEFAULT_MEMORY_CAP) -> int:
    """Device memory = the largest BAR (usually the prefetchable 64-bit one), capped, page-rounded."""
    sizes = [int(getattr(b, "size", 0) or 0) for b in (bars or ())]  # type: ignore[union-attr]
    size = max(sizes, default=0) or MIN_MEMORY_SIZE
    size = max(MIN_MEMORY_SIZE, min(size, cap))
    return size // 4096 * 4096


def endpoints_from_sysfs_root(
    root: str | os.PathLike[str], *, memory_cap: int = DEFAULT_MEMORY_CAP
) -> list[EndpointConfig]:
    """The accelerator endpoints of a (fixture) sysfs tree, sorted by BDF."""
    # Imported here: the discovery layer is heavier than the daemon needs for hand-built configs.
    from accelctl.sysfs import SysfsRoot
    from accelctl.topology import build_topology

    topo = build_topology(SysfsRoot(Path(root)))
    configs = []
    for fn in topo.accelerators():
        bars = tuple(getattr(fn, "bars", ()) or ())
        bar0 = next((b for b in bars if getattr(b, "index", None) == 0), None)
        configs.append(
            EndpointConfig(
                bdf=str(fn.bdf),
                serial=getattr(fn, "serial", None) or _serial_from_bdf(str(fn.bdf)),
                model=getattr(fn, "model", None) or "accelsim",
                memory_size=memory_size_from_bars(bars, memory_cap),
                vendor_id=int(getattr(fn, "vendor_id", 0) or 0),
                device_id=int(getattr(fn, "device_id", 0) or 0),
                card=getattr(fn, "card", None),
                bar0_size=int(getattr(bar0, "size", 0) or 0),
                numa_node=int(getattr(fn, "numa_node", -1) if getattr(fn, "numa_node", None) is not None else -1),
            )
        )
    return sorted(configs, key=lambda c: c.bdf)


def _serial_from_bdf(bdf: str) -> str:
    """A stable made-up serial for endpoints without a DSN capability."""
    digits = "".join(ch for ch in bdf if ch.isalnum())[-16:].rjust(16, "0")
    return "-".join(digits[i : i + 2] for i in range(0, 16, 2)).lower()
