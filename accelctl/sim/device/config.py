"""What the simulator serves: one :class:`EndpointConfig` per accelerator endpoint.

Built by hand (tests), or by the simulator platform (accelctl.platform.sim) from the machine's
topology, so the daemon serves exactly the endpoints ``accelctl list`` shows with the same
accelerator rules; the simulator itself never scans a tree. A daemon started as a process gets
its list as JSON on stdin (:func:`endpoints_to_json`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

#: Device memory is backed by a sparse file; cap what one endpoint gets unless told otherwise, so a
#: fixture with 32 GiB BARs does not make the daemon map 32 GiB per endpoint.
DEFAULT_MEMORY_CAP = 256 << 20
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


def endpoints_to_json(endpoints: list[EndpointConfig]) -> str:
    return json.dumps([asdict(e) for e in endpoints])


def endpoints_from_json(text: str) -> list[EndpointConfig]:
    """The list `endpoints_to_json` wrote. Raises ValueError on anything else."""
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError("endpoint list: expected a JSON array")
    names = {f.name for f in fields(EndpointConfig)}
    out = []
    for row in rows:
        if not isinstance(row, dict) or not set(row) <= names or "bdf" not in row:
            raise ValueError(f"endpoint list: malformed entry {str(row)[:80]!r}")
        out.append(EndpointConfig(**row))
    return sorted(out, key=lambda c: c.bdf)


def serial_for(bdf: str, serial: str | None) -> str:
    """The serial the simulated firmware reports: the function's DSN, else one made from its BDF."""
    return serial or _serial_from_bdf(bdf)


def _serial_from_bdf(bdf: str) -> str:
    """A stable made-up serial for endpoints without a DSN capability."""
    digits = "".join(ch for ch in bdf if ch.isalnum())[-16:].rjust(16, "0")
    return "-".join(digits[i : i + 2] for i in range(0, 16, 2)).lower()
