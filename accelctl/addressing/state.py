"""The persisted address map, one per machine, versioned, written atomically under a file lock.

* State dir: ``--state-dir``, else ``$ACCELCTL_STATE_DIR``, else ``/var/lib/accelctl``.
* One map per machine (``MachineSource.key``): the live machine's is ``<state dir>/address-map.json``;
  every other machine's (each fixture, snapshot, directory) is
  ``<state dir>/machines/<key>/address-map.json``. Trying a fixture never touches the live map.
* A map records the machine it describes; a map of another machine is refused with
  ForeignMapError, never compared or merged (``force=True`` replaces it).
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
from typing import TYPE_CHECKING, Any

from accelctl.addressing.addresses import AddressMap, AddressOrder, CardAddress, EndpointAddress
from accelctl import dirs
from accelctl.errors import ForeignMapError, StateFileError, SysfsPermissionError

if TYPE_CHECKING:
    from accelctl.platform.roots import MachineSource

MAP_FILE = "address-map.json"
LOCK_FILE = "address-map.lock"
#: Identifies our files among whatever else lives in a state directory.
MAP_FORMAT = "accelctl-address-map"
#: 2 added ``machine``; version 1 maps are still read (their machine inferred from sysfs_root).
MAP_FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
MACHINES_DIR = "machines"


def state_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: the option, else $ACCELCTL_STATE_DIR, else /var/lib/accelctl (accelctl.dirs)."""
    return dirs.state_dir(option)


def machine_directory(base: Path, machine: MachineSource) -> Path:
    """Where `machine`'s state lives under the state directory `base`."""
    return base if machine.key == "live" else base / MACHINES_DIR / machine.key


def map_path(base: Path, machine: MachineSource) -> Path:
    return machine_directory(base, machine) / MAP_FILE


@dataclass(slots=True)
class PersistedMap:
    """A map read back from disk, with where and when it was written."""

    path: Path
    addresses: AddressMap
    written_at: str | None
    sysfs_root: str | None
    #: the machine's key (``MachineSource.key``) it was written for
    machine_key: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "written_at": self.written_at,
            "sysfs_root": self.sysfs_root,
            "machine_key": self.machine_key,
            **self.addresses.to_dict(),
        }


def map_to_document(addresses: AddressMap, *, machine: MachineSource, written_at: str) -> dict[str, Any]:
    return {
        "format": MAP_FORMAT,
        "format_version": MAP_FORMAT_VERSION,
        "written_at": written_at,
        "machine": {"kind": machine.kind.value, "name": machine.name, "key": machine.key},
        "sysfs_root": machine.path,
        **addresses.to_dict(),
    }


def load_map(base: Path, machine: MachineSource) -> PersistedMap | None:
    """`machine`'s persisted map under the state directory `base`, or None when there is none.

    Raises:
        ForeignMapError: the file there describes another machine.
        StateFileError: the file is unreadable, corrupt, not ours or of an unknown version.
    """
    path = map_path(base, machine)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except PermissionError as err:
        raise SysfsPermissionError(f"cannot read {path}: permission denied", path=path) from err
    except (OSError, UnicodeDecodeError) as err:
        raise StateFileError(f"cannot read the address map: {err}", path=path) from err
    persisted = parse_map(text, path)
    if persisted.machine_key != machine.key:
        raise ForeignMapError(
            path=path, written_for=persisted.machine_key, machine=machine.describe(),
            hint="point --state-dir at this machine's state, or replace the map with "
            "'accelctl addr assign --force'",
        )
    return persisted


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
    if version not in READABLE_FORMAT_VERSIONS:
        raise StateFileError(
            f"address map format_version {version!r} is not one this accelctl reads "
            f"({', '.join(map(str, READABLE_FORMAT_VERSIONS))})",
            path=path,
            key="format_version",
            hint="a newer accelctl wrote it; upgrade, or replace it with 'accelctl addr assign --force'",
        )
    try:
        order = AddressOrder(doc["order"])
        cards = [_card(c) for c in doc["cards"]]
        endpoints = [_endpoint(e) for e in doc["endpoints"]]
        key = _machine_key(doc)
    except (KeyError, TypeError, ValueError) as err:
        raise StateFileError(f"corrupt address map: bad or missing field {err}", path=path, hint=hint) from err
    return PersistedMap(
        path, AddressMap(order, cards, endpoints), doc.get("written_at"), doc.get("sysfs_root"), key
    )


def _machine_key(doc: dict[str, Any]) -> str:
    """The machine a map describes. Version 1 did not say: one read from /sys was the live
    machine's; any other tree's cannot be told apart, so it matches no machine."""
    if doc["format_version"] >= 2:
        key = doc["machine"]["key"]
        if not isinstance(key, str):
            raise TypeError("machine.key")
        return key
    root = doc.get("sysfs_root")
    return "live" if root in (None, "/sys") else f"unknown (version 1 map of {root})"


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


def save_map(base: Path, addresses: AddressMap, *, machine: MachineSource, force: bool = False) -> Path:
    """Persist `machine`'s `addresses` atomically under the lock; returns the map's path.

    Raises:
        ForeignMapError: the map there describes another machine and `force` is False.
        StateFileError: an existing map is corrupt or not ours and `force` is False.
    """
    import datetime

    directory = machine_directory(base, machine)
    path = directory / MAP_FILE
    with locked(directory):
        if not force:
            load_map(base, machine)  # refuses to overwrite what it cannot read
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        text = json.dumps(map_to_document(addresses, machine=machine, written_at=now), indent=2) + "\n"
        _atomic_write(path, text)
    return path


def _atomic_write(path: Path, text: str) -> None:
    from accelctl._files import write_text_atomically

    try:
        write_text_atomically(path, text)
    except OSError as err:
        raise StateFileError(f"cannot write the address map: {err.strerror}", path=path) from err
