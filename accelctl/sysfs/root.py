"""SysfsRoot: where sysfs reads come from (the real /sys or any directory standing in for it).

This module and accelctl.sysfs.scan are the only code that touches a sysfs tree. OSError is
translated into accelctl errors here, in one place.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from accelctl.errors import DeviceVanishedError, SysfsPermissionError, SysfsRootError

#: Environment variable naming the sysfs root when no option is given.
SYSFS_ROOT_ENV = "ACCELCTL_SYSFS_ROOT"
DEFAULT_SYSFS_ROOT = "/sys"

#: Largest attribute we ever read; config space is at most 4096 bytes.
MAX_ATTR_BYTES = 4096

#: How every attribute is opened. O_NONBLOCK: sysfs ignores it, and a FIFO or device node
#: planted in a copied tree then cannot block the scan (a FIFO nobody writes blocks open()).
#: O_NOFOLLOW: no kernel makes an attribute a symbolic link, so one in a copied or unpacked tree
#: (`reset_method -> /etc/shadow`, `config -> /proc/kmsg`) is refused, never read (ELOOP).
ATTR_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW

#: What a non-regular file in place of an attribute is reported as (it is never read).
NOT_REGULAR = "not a regular file"


class Unreadable(Exception):
    """An attribute exists but reading it failed (EACCES, EIO, EINVAL on a dead device)."""

    def __init__(self, err: OSError) -> None:
        super().__init__(err.strerror)
        self.errno = err.errno
        #: What the topology records as the fact's "unknown" reason.
        if err.errno in (errno.EACCES, errno.EPERM):
            self.reason = "permission denied"
        elif err.errno == errno.ELOOP:
            self.reason = "a symbolic link, not an attribute (never followed)"
        else:
            self.reason = err.strerror or str(err)

    @classmethod
    def not_regular(cls) -> Unreadable:
        return cls(OSError(errno.EINVAL, NOT_REGULAR))


def is_regular(fd: int) -> bool:
    """Only regular files are attributes (every sysfs attribute is one); anything else in a
    copied tree (a FIFO, /dev/zero behind a link) is reported, never read."""
    return stat.S_ISREG(os.fstat(fd).st_mode)


def read_bytes(path: str, limit: int = MAX_ATTR_BYTES, *, dir_fd: int | None = None) -> bytes | None:
    """Read up to `limit` bytes of a sysfs file; None when it does not exist.

    os.open/os.read rather than open(): no buffered-IO object per file, which matters when a
    scan reads tens of thousands of attributes. One read() is enough: sysfs serves a whole
    attribute (and config space up to the requested size) in a single call, and so does a
    regular file in a copied tree. With `dir_fd`, `path` is relative to an open directory, so
    the kernel does not walk the whole (deep) device path again for every attribute.

    Raises:
        Unreadable: the file exists but the read failed (permission, dead device).
    """
    try:
        fd = os.open(path, ATTR_OPEN_FLAGS, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise Unreadable(err) from err
    try:
        if not is_regular(fd):
            raise Unreadable.not_regular()
        return os.read(fd, limit)
    except OSError as err:
        raise Unreadable(err) from err
    finally:
        os.close(fd)


def _join_relative(base: str, target: str) -> str:
    """normpath(join(base, target)) for a relative link target, fast for sysfs's usual
    ``../../../devices/...`` form (thousands per scan); anything unusual takes normpath."""
    if not base.startswith("/") or base.endswith("/") or "//" in base or "/." in base:
        return os.path.normpath(os.path.join(base, target))
    head, rest = base, target
    while rest.startswith("../") and head.count("/") > 1:
        head = head[: head.rindex("/")]
        rest = rest[3:]
    if not rest or rest[0] in "./" or "/." in rest or "//" in rest or rest.endswith("/"):
        return os.path.normpath(os.path.join(base, target))
    return f"{head}/{rest}"


def read_text(path: str) -> str | None:
    data = read_bytes(path)
    if data is None:
        return None
    return data.decode("utf-8", "replace").strip()


class SysfsRoot:
    """A sysfs tree: the real /sys by default, or a fixture, snapshot or copy of one."""

    __slots__ = ("path", "_str")

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            path = os.environ.get(SYSFS_ROOT_ENV) or DEFAULT_SYSFS_ROOT
        p = Path(path)
        try:
            exists = p.exists()
        except PermissionError as err:
            raise SysfsPermissionError(
                f"cannot reach sysfs root {str(p)!r}: permission denied", path=p,
                hint="a directory on the way may not be entered by this user; run as root or copy the tree",
            ) from err
        if not exists:
            raise SysfsRootError(f"sysfs root {str(p)!r} does not exist", path=p)
        if not p.is_dir():
            raise SysfsRootError(
                f"sysfs root {str(p)!r} is not a directory",
                path=p,
                hint="give the directory that holds bus/ and devices/ (like /sys)",
            )
        self.path = p.resolve()
        self._str = str(self.path)

    def __repr__(self) -> str:
        return f"SysfsRoot({self._str!r})"

    @property
    def is_live(self) -> bool:
        """True when this is the running kernel's /sys (udev and writes make sense there)."""
        return self._str == DEFAULT_SYSFS_ROOT

    def join(self, *parts: str) -> str:
        return os.path.join(self._str, *parts)

    @property
    def pci_bus_dir(self) -> str:
        """The `/sys/bus/pci` equivalent: what lspci's sysfs.path wants."""
        return self.join("bus", "pci")

    def link_target(self, link_path: str, *, dir_fd: int | None = None) -> str | None:
        """Where a symlink points, kept inside this root, without checking that the target
        exists (one syscall, not three). With `dir_fd` (an open fd of the link's directory) the
        link is read relative to it, so the kernel does not walk the root's path once per link.
        """
        try:
            if dir_fd is None:
                target = os.readlink(link_path)
            else:
                target = os.readlink(os.path.basename(link_path), dir_fd=dir_fd)
        except OSError:
            return None
        if os.path.isabs(target):
            if target.startswith(self._str + os.sep):
                return target
            if target.startswith("/sys/"):
                return self._str + target[4:]
            return None
        return _join_relative(os.path.dirname(link_path), target)

    def resolve_link(self, link_path: str) -> str | None:
        """Where a symlink in the tree points, kept inside this root; None when it is broken.

        Relative links are joined and normalised without touching the filesystem per component
        (sysfs directories below devices/ are never themselves links). Absolute links such as
        ``/sys/devices/...`` in a copied tree are re-rooted under this root.
        """
        target = self.link_target(link_path)
        return target if target is not None and os.path.exists(target) else None

    def listdir(self, path: str) -> list[str]:
        """Names in a directory of the tree; [] when it is missing.

        Raises:
            SysfsPermissionError: the directory cannot be listed.
            DeviceVanishedError: it vanished while being listed.
        """
        try:
            return os.listdir(path)
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            return []
        except PermissionError as err:
            raise SysfsPermissionError(f"cannot list {path}: permission denied", path=path) from err
        except OSError as err:
            if err.errno == errno.ENODEV:
                raise DeviceVanishedError(f"{path} vanished", path=path) from err
            raise SysfsRootError(f"cannot list {path}: {err.strerror}", path=path) from err
