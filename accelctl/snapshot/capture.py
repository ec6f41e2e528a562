"""Walk the PCI part of a sysfs tree into a list of entries (dirs, files, links).

Kept separate from writing the archive so the walk can be tested and timed on its own, and
so the same walk could feed another container format later.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from accelctl.errors import AccelError
from accelctl.pci.bdf import HOST_BRIDGE_NAME, SYSFS_NAME
from accelctl.snapshot import policy
from accelctl.sysfs import SysfsRoot


@dataclass(slots=True)
class Entry:
    """One thing in the tree, relative to the sysfs root ("bus/pci/devices/0000:00:01.0")."""

    path: str
    kind: str  # "dir" | "file" | "link"
    mode: int = 0o755
    data: bytes = b""
    target: str = ""


@dataclass(slots=True)
class Capture:
    entries: list[Entry] = field(default_factory=list)
    #: path -> why it could not be read (permission, dead device, link out of tree)
    unreadable: dict[str, str] = field(default_factory=dict)
    #: reason -> count of things left out on purpose, and a few examples of each
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    total_bytes: int = 0
    functions: int = 0
    host_bridges: int = 0

    def skip(self, path: str, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(path)


class _Walker:
    def __init__(self, root: SysfsRoot) -> None:
        self.root = root
        self.base = str(root.path)
        self.cap = Capture()
        self._seen: set[str] = set()

    # -- helpers ---------------------------------------------------------------------------

    def rel(self, abspath: str) -> str:
        return os.path.relpath(abspath, self.base)

    def _add(self, entry: Entry) -> None:
        if entry.path in self._seen:
            return
        self._seen.add(entry.path)
        self.cap.entries.append(entry)
        self.cap.total_bytes += len(entry.data)
        if len(self.cap.entries) > policy.MAX_ENTRIES or self.cap.total_bytes > policy.MAX_TOTAL_BYTES:
            raise AccelError(
                f"snapshot of {self.base} exceeds its bounds "
                f"({policy.MAX_ENTRIES} entries / {policy.MAX_TOTAL_BYTES >> 20} MiB)",
                hint="this tree is not a sysfs tree, or a much larger one than accelctl expects",
            )

    def add_dirs_to(self, abspath: str) -> None:
        """Every directory between the root and `abspath` (so the archive extracts cleanly)."""
        rel = self.rel(abspath)
        parts = rel.split(os.sep)
        for i in range(1, len(parts) + 1):
            self._add(Entry("/".join(parts[:i]), "dir"))

    def add_link(self, abspath: str) -> None:
        rel = self.rel(abspath)
        try:
            target = os.readlink(abspath)
        except OSError as err:
            self.cap.unreadable[rel] = err.strerror or str(err)
            return
        if os.path.isabs(target):
            # Real sysfs links are relative; a copied tree may carry absolute /sys/... ones.
            # Re-express them relative to the tree, or leave them out.
            if target.startswith(self.base + os.sep):
                inside = target
            elif target.startswith("/sys/"):
                inside = self.base + target[4:]
            else:
                self.cap.unreadable[rel] = f"absolute link to {target} outside the tree (left out)"
                return
            target = os.path.relpath(inside, os.path.dirname(abspath))
        resolved = os.path.normpath(os.path.join(os.path.dirname(abspath), target))
        if resolved != self.base and not resolved.startswith(self.base + os.sep):
            self.cap.unreadable[rel] = f"link to {target} leaves the tree (left out)"
            return
        self._add(Entry(rel.replace(os.sep, "/"), "link", 0o777, target=target))

    def add_file(self, abspath: str, name: str, mode: int) -> None:
        rel = self.rel(abspath).replace(os.sep, "/")
        reason = policy.skip_reason_for_file(name, mode)
        if reason is not None:
            self.cap.skip(rel, reason)
            return
        try:
            data = _read_bounded(abspath)
        except OSError as err:
            expected = policy.expected_error_reason(name, err)
            if expected is not None:
                self.cap.skip(rel, expected)
            elif err.errno in (errno.EACCES, errno.EPERM):
                # Archived with mode 000: a non-root replay then fails the read exactly as the
                # live machine did, so "unknown because permission denied" survives the trip.
                self.cap.unreadable[rel] = "permission denied"
                self._add(Entry(rel, "file", 0o000))
            else:
                # EIO/EINVAL/ENODEV: a dead or disconnected device. A plain file cannot replay
                # that, so the file is left out and the manifest says why.
                self.cap.unreadable[rel] = err.strerror or str(err)
            return
        if data is None:
            self.cap.skip(rel, f"larger than {policy.MAX_FILE_BYTES} bytes")
            return
        self._add(Entry(rel, "file", stat.S_IMODE(mode) & 0o777, data=data))

    # -- walks ------------------------------------------------------------------------------

    def walk_dir(
        self, abspath: str, *, device: bool, depth: int, later: frozenset[str] = frozenset()
    ) -> None:
        """Capture a directory. In a device dir, recurse into child functions, nested root
        buses and the PCI subdirectories only; elsewhere recurse up to `depth` levels."""
        self.add_dirs_to(abspath)
        try:
            names = sorted(os.listdir(abspath))
        except OSError as err:
            self.cap.unreadable[self.rel(abspath)] = err.strerror or str(err)
            return
        if device:
            name = os.path.basename(abspath)
            if SYSFS_NAME.match(name):
                self.cap.functions += 1
            elif HOST_BRIDGE_NAME.match(name):
                self.cap.host_bridges += 1
        for name in names:
            path = os.path.join(abspath, name)
            try:
                st = os.lstat(path)
            except OSError as err:
                self.cap.unreadable[self.rel(path)] = err.strerror or str(err)
                continue
            if stat.S_ISLNK(st.st_mode):
                self.add_link(path)
            elif stat.S_ISDIR(st.st_mode):
                if device and policy.is_device_dir(name):
                    self.walk_dir(path, device=True, depth=0)
                elif device and name in policy.PCI_SUBDIRS:
                    self.walk_dir(path, device=False, depth=2)
                elif name in later:
                    continue  # the caller walks it with its own rules
                elif not device and depth > 0:
                    self.walk_dir(path, device=False, depth=depth - 1)
                else:
                    self.cap.skip(self.rel(path), "not part of PCI (driver child or too deep)")
            elif stat.S_ISREG(st.st_mode):
                self.add_file(path, name, st.st_mode)
            else:
                self.cap.skip(self.rel(path), "not a regular file")

    def run(self) -> Capture:
        join = self.root.join
        # 1. the device hierarchy: every root bus and everything PCI below it
        devices = join("devices")
        if os.path.isdir(devices):
            for name in sorted(os.listdir(devices)):
                if HOST_BRIDGE_NAME.match(name):
                    self.walk_dir(os.path.join(devices, name), device=True, depth=0)
        # 2. bus/pci: device links (or flat device dirs in a copied tree), drivers, slots
        bus_pci = join("bus", "pci")
        if os.path.isdir(bus_pci):
            # top-level files and links; the three subdirectories follow with their own rules
            self.walk_dir(
                bus_pci, device=False, depth=0, later=frozenset({"devices", "drivers", "slots"})
            )
            dev_dir = os.path.join(bus_pci, "devices")
            self.add_dirs_to(dev_dir)
            for name in sorted(_listdir(dev_dir)):
                p = os.path.join(dev_dir, name)
                if os.path.islink(p):
                    self.add_link(p)
                    real = self.root.resolve_link(p)
                    # a function living outside devices/pci* (unusual): take its directory too
                    if real and self.rel(real).replace(os.sep, "/") not in self._seen:
                        self.walk_dir(real, device=True, depth=0)
                elif os.path.isdir(p):
                    self.walk_dir(p, device=True, depth=0)
            for sub in ("drivers", "slots"):
                d = os.path.join(bus_pci, sub)
                if os.path.isdir(d):
                    self.walk_dir(d, device=False, depth=1)
        # 3. iommu groups and the pci_bus class (small; lspci and diagnostics look there)
        for parts in (("kernel", "iommu_groups"), ("class", "pci_bus")):
            d = join(*parts)
            if os.path.isdir(d):
                self.walk_dir(d, device=False, depth=2)
        return self.cap


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _read_bounded(path: str) -> bytes | None:
    """The whole file, or None when it is larger than the per-file bound."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > policy.MAX_FILE_BYTES:
                return None
        return b"".join(chunks)
    finally:
        os.close(fd)


def capture_tree(root: SysfsRoot) -> Capture:
    """Every entry of the PCI part of `root`, in a deterministic order.

    Raises:
        AccelError: the tree is beyond the snapshot's bounds.
    """
    cap = _Walker(root).run()
    cap.entries.sort(key=lambda e: e.path)
    return cap
