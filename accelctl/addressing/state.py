"""The persisted address map: ``<state dir>/address-map.json``, versioned, written atomically
under a file lock.

* State dir: ``--state-dir``, else ``$ACCELCTL_STATE_DIR``, else ``/var/lib/accelctl``.
* Writes take an exclusive ``fcntl.flock`` on ``address-map.lock`` (a separate file, so the
  rename that replaces the map never swaps the lock out from under a waiting process), write a
  temporary file in the same directory, fsync it, rename it over the map and fsync the directory:
  readers see the old map or the new one, never half of one, even after a crash.
* A map that is not JSON, not ours (``format`` differs) or of a newer ``format_version`` is a
  StateFileError; it is replaced only with ``force=True``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelctl.addressing.addresses import AddressMap, AddressOrder, CardAddress, EndpointAddress
from accelctl import dirs
from accelctl.errors import StateFileError, SysfsPermissionError

MAP_FILE = "address-map.json"
LOCK_FILE = "address-map.lock"
#: Identifies our files among whatever else lives in a state directory.
MAP_FORMAT = "accelctl-address-map"
MAP_FORMAT_VERSION = 1


def state_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: the option, else $ACCELCTL_STATE_DIR, else /var/lib/accelctl (accelctl.dirs)."""
    return dirs.state_dir(option)


@dataclass(slots=True)
class PersistedMap:
    """A map read back from disk, with where and when it was written."""

    path: Path
    addresses: AddressMap
    written_at: str | None
    sysfs_root: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "written_at": self.written_at,
            "sysfs_root": self.sysfs_root,
            **self.addresses.to_dict(),
        }


def map_to_document(addresses: AddressMap, *, sysfs_root: str | None, written_at: str) -> dict[str, Any]:
    return {
        "format": MAP_FORMAT,
        "format_version": MAP_FORMAT_VERSION,
        "written_at": written_at,
        "sysfs_root": sysfs_root,
        **addresses.to_dict(),
    }


def load_map(directory: Path) -> PersistedMap | None:
    """The persisted map in `directory`, or None when there is none.

    Raises:
        StateFileError: the file is unreadable, corrupt, foreign or of an unknown version.
    """
    path = directory / MAP_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except PermissionError as err:
        raise SysfsPermissionError(f"cannot read {path}: permission denied", path=path) from err
    except (OSError, UnicodeDecodeError) as err:
        raise StateFileError(f"cannot read the address map: {err}", path=path) from err
    return parse_map(text, path)


def parse_map(text: str, path: Path) -> PersistedMap:
    """Validate a map document. Raises StateFileError naming what is wrong."""
    hint = "inspect it, or replace it with 'accelctl addr assign --force'"
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise StateFileError(f"corrupt address map (not JSON: {err.msg})", path=path, line=err.lineno, hint=hint) from err
    if not isinstance(doc, dict) or doc.get("format") != MAP_FORMAT:
        raise StateFileError(
            f"not an accelctl address map (expected \"format\": \"{MAP_FORMAT}\")", path=path, hint=hint
        )
    version = doc.get("format_version")
    if version != MAP_FORMAT_VERSION:
        raise StateFileError(
            f"address map format_version {version!r} is not one this accelctl reads ({MAP_FORMAT_VERSION})",
            path=path,
            key="format_version",
            hint="a newer accelctl wrote it; upgrade, or replace it with 'accelctl addr assign --force'",
        )
    try:
        order = AddressOrder(doc["order"])
        cards = [_card(c) for c in doc["cards"]]
        endpoints = [_endpoint(e) for e in doc["endpoints"]]
    except (KeyError, TypeError, ValueError) as err:
        raise StateFileError(f"corrupt address map: bad or missing field {err}", path=path, hint=hint) from err
    return PersistedMap(path, AddressMap(order, cards, endpoints), doc.get("written_at"), doc.get("sysfs_root"))


def _card(d: dict[str, Any]) -> CardAddress:
    return CardAddress(
        card=int(d["card"]),
        top=str(d["top"]),
        serial=d["serial"],
        slot=d["slot"],
        position=str(d["position"]),
        vendor_id=d["vendor_id"],
        device_id=d["device_id"],
        model=str(d["model"]),
        endpoints=tuple(str(b) for b in d["endpoints"]),
    )


def _endpoint(d: dict[str, Any]) -> EndpointAddress:
    return EndpointAddress(
        bdf=str(d["bdf"]),
        card=int(d["card"]),
        endpoint=int(d["endpoint"]),
        global_id=int(d["global_id"]),
        serial=d["serial"],
        position=str(d["position"]),
    )


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the exclusive lock of the state directory (blocking until it is free).

    Raises:
        StateFileError: the directory cannot be created or the lock file opened.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError as err:
        raise SysfsPermissionError(
            f"cannot use state directory {directory}: permission denied", path=directory,
            hint=f"run as root, or choose another with --state-dir or ${dirs.STATE_DIR_ENV}",
        ) from err
    except OSError as err:
        raise StateFileError(f"cannot use state directory: {err.strerror}", path=directory) from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def save_map(
    directory: Path, addresses: AddressMap, *, sysfs_root: str | None, force: bool = False
) -> Path:
    """Persist `addresses` atomically under the lock; returns the map's path.

    Raises:
        StateFileError: an existing map is corrupt or foreign and `force` is False.
    """
    import datetime

    path = directory / MAP_FILE
    with locked(directory):
        if not force:
            load_map(directory)  # refuses to overwrite what it cannot read
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        text = json.dumps(map_to_document(addresses, sysfs_root=sysfs_root, written_at=now), indent=2) + "\n"
        _atomic_write(path, text)
    return path


def _atomic_write(path: Path, text: str) -> None:
    from accelctl._files import write_text_atomically

    try:
        write_text_atomically(path, text)
    except OSError as err:
        raise StateFileError(f"cannot write the address map: {err.strerror}", path=path) from err
