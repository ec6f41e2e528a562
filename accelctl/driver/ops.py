"""One-call operations for the CLI and scripts: open the endpoint, do one thing, close.

Each function returns plain data (dicts, bytes) and raises typed errors; nothing here prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from accelctl.driver import abi
from accelctl.driver import commands as cmds
from accelctl.driver.session import Resolver, Session, resolve_bdf
from accelctl.errors import DeviceNotFoundError

Root = str | os.PathLike[str] | None

#: Feature names accepted on the command line (lowercase, dashes) -> feature id.
FEATURES = {f.name.lower().replace("_", "-"): f for f in abi.Feature}


def feature_id(name_or_number: str) -> abi.Feature | int:
    """A feature by name (``keep-alive-timer``) or number (``0x0f``, ``15``)."""
    key = name_or_number.strip().lower().replace("_", "-")
    if key in FEATURES:
        return FEATURES[key]
    try:
        return int(key, 0)
    except ValueError:
        raise ValueError(f"unknown feature {name_or_number!r}; known: {', '.join(sorted(FEATURES))}") from None


def _feature_name(fid: int) -> str:
    try:
        return abi.Feature(fid).name.lower().replace("_", "-")
    except ValueError:
        return f"{fid:#04x}"


@contextmanager
def _open(device: str, sysfs_root: Root, resolver: Resolver | None) -> Iterator[Session]:
    """The endpoint's session for one operation: through the fixture's running simulator, or an
    embedded one that lives just as long as this call (device state persists on disk)."""
    from accelctl.sim import service

    root = Path(sysfs_root) if sysfs_root is not None else Path("/sys")
    bdf = (resolver or resolve_bdf)(device, root)
    with service.use_simulator(root) as sockets:
        path = sockets.get(bdf)
        if path is None:
            raise DeviceNotFoundError(device, f"{bdf} is not an accelerator endpoint the simulator serves")
        with Session(str(path), bdf=bdf) as dev:
            yield dev


def identify(device: str, *, sysfs_root: Root = None, resolver: Resolver | None = None) -> dict[str, Any]:
    with _open(device, sysfs_root, resolver) as dev:
        return {"device": dev.bdf, "controller": dev.identify(), "endpoint": dev.identify_endpoint()}


def read_log(device: str, page: str, *, sysfs_root: Root = None, resolver: Resolver | None = None) -> dict[str, Any]:
    with _open(device, sysfs_root, resolver) as dev:
        return {"device": dev.bdf, "log": page, "content": dev.log_page(page)}


def _feature_value(fid: int, value: int) -> Any:
    if fid == abi.Feature.LOGICAL_ADDRESS:
        addr = abi.unpack_logical_address(value)
        return None if addr is None else {"card": addr[0], "endpoint": addr[1], "global_id": addr[2]}
    return value


def features(device: str, *, sysfs_root: Root = None, resolver: Resolver | None = None) -> dict[str, Any]:
    with _open(device, sysfs_root, resolver) as dev:
        values = {}
        for f in abi.Feature:
            raw = dev.get_feature(f)
            values[_feature_name(f)] = {"id": f"{int(f):02x}", "raw": raw, "value": _feature_value(f, raw)}
        return {"device": dev.bdf, "features": values}


def get_feature(device: str, feature: int, *, sysfs_root: Root = None,
                resolver: Resolver | None = None) -> dict[str, Any]:
    with _open(device, sysfs_root, resolver) as dev:
        raw = dev.get_feature(feature)
        return {"device": dev.bdf, "feature": _feature_name(feature), "id": f"{feature:02x}", "raw": raw,
                "value": _feature_value(feature, raw)}


def set_feature(device: str, feature: int, value: int, *, sysfs_root: Root = None,
                resolver: Resolver | None = None) -> dict[str, Any]:
    with _open(device, sysfs_root, resolver) as dev:
        previous = dev.get_feature(feature)
        dev.set_feature(feature, value)
        now = dev.get_feature(feature)
        return {"device": dev.bdf, "feature": _feature_name(feature), "id": f"{feature:02x}",
                "previous": previous, "raw": now, "value": _feature_value(feature, now)}


def write_data(device: str, dev_addr: int, data: bytes, *, sysfs_root: Root = None,
               resolver: Resolver | None = None) -> dict[str, Any]:
    with _open(device, sysfs_root, resolver) as dev:
        n = dev.write_memory(dev_addr, data)
        return {"device": dev.bdf, "address": f"{dev_addr:x}", "bytes": n}


def read_data(device: str, dev_addr: int, length: int, *, sysfs_root: Root = None,
              resolver: Resolver | None = None) -> bytes:
    with _open(device, sysfs_root, resolver) as dev:
        return dev.read_memory(dev_addr, length)


def fill(device: str, dev_addr: int, length: int, pattern: int, *, sysfs_root: Root = None,
         resolver: Resolver | None = None) -> dict[str, Any]:
    with _open(device, sysfs_root, resolver) as dev:
        dev.execute(cmds.fill(dev_addr, length, pattern))
        return {"device": dev.bdf, "address": f"{dev_addr:x}", "bytes": length, "pattern": f"{pattern & 0xFFFFFFFF:08x}"}


def compare(device: str, dev_addr: int, data: bytes, *, sysfs_root: Root = None,
            resolver: Resolver | None = None) -> dict[str, Any]:
    with _open(device, sysfs_root, resolver) as dev:
        diff = dev.compare_memory(dev_addr, data)
        return {"device": dev.bdf, "address": f"{dev_addr:x}", "bytes": len(data), "equal": diff is None,
                "first_difference": None if diff is None else diff}
