"""LinuxPlatform: a sysfs root (the live /sys, or any directory standing in for it) plus the
sysfs writes the kernel offers for resets and hotplug. Every write stays under the chosen root."""

from __future__ import annotations

import errno
import os

from accelctl.errors import DriverError, SysfsPermissionError
from accelctl.sysfs import SysfsRoot


class SysfsWriteError(DriverError):
    """The kernel refused a sysfs write (ENOTTY: reset method not possible, EIO, ...)."""


class LinuxPlatform:
    kind = "linux"

    def __init__(self, root: SysfsRoot) -> None:
        self.root = root

    def _inside(self, path: str) -> str:
        real = os.path.realpath(path)
        base = str(self.root.path)
        if not real.startswith(base + os.sep):
            # a symlink trick or a bug: never write outside the root we were given
            raise SysfsWriteError(f"refusing to write {path}: it resolves outside {base}")
        return real

    def has_file(self, path: str) -> bool:
        return os.path.isfile(path)

    def write_attr(self, path: str, value: str) -> None:
        """Write one sysfs attribute, as `echo value > path` would (O_TRUNC, like the shell).

        Raises:
            SysfsPermissionError: not allowed (not root) — exit code 4.
            SysfsWriteError: the kernel rejected the write.
        """
        real = self._inside(path)
        try:
            fd = os.open(real, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW)
        except PermissionError as err:
            raise SysfsPermissionError(
                f"cannot write {path}: permission denied",
                path=path,
                hint="resets write to sysfs: run as root (sudo accelctl reset ...)",
            ) from err
        except FileNotFoundError as err:
            raise SysfsWriteError(f"{path} does not exist (device gone, or kernel too old)") from err
        except OSError as err:
            # ELOOP (a link where the kernel has a file), ENXIO, ...: not an attribute we can write
            raise SysfsWriteError(f"cannot open {path} for writing: {err.strerror}") from err
        try:
            os.write(fd, value.encode())
        except PermissionError as err:
            raise SysfsPermissionError(f"cannot write {path}: permission denied", path=path) from err
        except OSError as err:
            why = "the kernel cannot do this reset here" if err.errno == errno.ENOTTY else err.strerror
            raise SysfsWriteError(f"writing {value.strip()!r} to {path} failed: {why}") from err
        finally:
            os.close(fd)

    def endpoint_socket(self, bdf: str) -> str:
        """Where the driver core reaches endpoint ``bdf``: a kernel driver's device node.

        Raises:
            DriverError: no kernel driver for accelctl's protocol exists on this machine yet.
        """
        raise DriverError(
            f"no accelctl kernel driver serves {bdf} on this machine",
            hint="the driver core talks to simulated devices: use --fixture NAME (accelctl fixture list)",
        )

    def rescan(self) -> None:
        self.write_attr(self.root.join("bus", "pci", "rescan"), "1")
