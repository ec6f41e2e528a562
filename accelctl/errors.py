"""The one exception hierarchy of accelctl.

Every error the library raises on purpose is an :class:`AccelError`. Subclasses carry the
facts (path, address, candidates, ...) as attributes and build their message from them, so
the CLI can render them and scripts can inspect them. Several also inherit a builtin
(``LookupError``, ``PermissionError``, ...) so plain ``except`` clauses keep working.

The CLI maps each class to a documented exit code in ``accelctl/cli/_errors.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class AccelError(Exception):
    """Root of every error accelctl raises on purpose."""

    #: A short hint for the user: what to do about it (None when there is nothing to add).
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Errors cross process boundaries (simulator daemon, worker processes): keep them picklable
        # without each subclass repeating its constructor signature.
        return (_rebuild_error, (type(self), self.__dict__))


def _rebuild_error(cls: type[AccelError], state: dict[str, object]) -> AccelError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


# --- sysfs / input trees -------------------------------------------------------------------


class SysfsError(AccelError):
    """Reading a sysfs tree failed."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.path = str(path) if path is not None else None


class SysfsRootError(SysfsError):
    """The sysfs root is not usable: missing, not a directory, or holds no PCI devices."""


class SysfsPermissionError(SysfsError, PermissionError):
    """A file that matters could not be read for lack of privilege."""

    hint = "run as root, or point --sysfs-root at a snapshot"


class DeviceVanishedError(SysfsError, LookupError):
    """A device directory disappeared while it was being read (hot-unplug, DPC, remove)."""


# --- user-written inputs -------------------------------------------------------------------


class InputFileError(AccelError, ValueError):
    """A file the user gave (spec, manifest, state) is malformed. Names the file and the spot."""

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key
        where = self.path or "<input>"
        if line is not None:
            where += f":{line}"
        if key is not None:
            where += f": [{key}]"
        super().__init__(f"{where}: {problem}", hint=hint)


class SpecError(InputFileError):
    """A topology spec (fixtures/*.toml) is malformed."""


class ManifestError(InputFileError):
    """An expected-machine manifest is malformed."""


class StateFileError(InputFileError):
    """A persisted state file (address map) is corrupt, foreign or of an unknown version."""


class ForeignMapError(StateFileError):
    """The address map found describes another machine (a fixture's map where the live
    machine's belongs, a copy from another host): refused, never compared or merged."""

    def __init__(self, *, path: str | Path, written_for: str, machine: str, hint: str | None = None) -> None:
        self.written_for = written_for
        self.machine = machine
        super().__init__(f"this address map describes another machine ({written_for}), not {machine}",
                         path=path, hint=hint)


# --- naming devices ------------------------------------------------------------------------


class InvalidAddressError(AccelError, ValueError):
    """A device name is not any form accelctl accepts."""

    def __init__(self, text: str, reason: str = "") -> None:
        self.text = text
        msg = f"not a device name: {text!r}"
        if reason:
            msg += f" ({reason})"
        super().__init__(
            msg,
            hint="name a device by BDF (0000:01:00.0 or 01:00.0), cardN, cardN.epM, global id or serial",
        )


class InvalidAcceleratorIdError(AccelError, ValueError):
    """An ``--accel-id`` / $ACCELCTL_ACCEL_IDS entry is not in the documented syntax."""

    def __init__(self, text: str, reason: str = "") -> None:
        self.text = text
        self.reason = reason
        msg = f"not an accelerator id: {text!r}"
        if reason:
            msg += f" ({reason})"
        hint = ("accelerator ids are VVVV:DDDD, VVVV:* or class:CC[SS[PP]] (hex), comma-separated, "
                "e.g. --accel-id 1bcf:001c,15b3:*,class:0b40 (docs/accelerators.md)")
        bare = text.strip().lower()
        if len(bare) == 4 and all(c in "0123456789abcdef" for c in bare):
            hint = f"'{bare}' alone is a vendor: --accel-id {bare}:* counts all its devices, {bare}:DDDD one; " + hint
        super().__init__(msg, hint=hint)


class InvalidRequestError(AccelError, ValueError):
    """A well-formed request this machine cannot satisfy as asked (e.g. an --order it lacks facts for)."""


class DeviceNotFoundError(AccelError, LookupError):
    """No device matches the given name."""

    def __init__(self, address: str, detail: str = "", *, hint: str | None = None) -> None:
        self.address = address
        msg = f"no device matches {address!r}"
        if detail:
            msg += f": {detail}"
        super().__init__(msg, hint=hint or "run 'accelctl list --all' to see what is there")


class AmbiguousAddressError(AccelError, LookupError):
    """A device name matches more than one device."""

    def __init__(self, address: str, candidates: Sequence[str]) -> None:
        self.address = address
        self.candidates = list(candidates)
        super().__init__(
            f"{address!r} matches {len(self.candidates)} devices: {', '.join(self.candidates)}",
            hint="name one of them by BDF",
        )


class UnknownFixtureError(AccelError, LookupError):
    """No bundled fixture has this name (``--fixture NAME``)."""

    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.name = name
        self.available = list(available)
        super().__init__(
            f"no bundled fixture named {name!r}; available: {', '.join(self.available) or 'none'}",
            hint="'accelctl fixture list' describes them",
        )


class TopologyError(AccelError):
    """The tree cannot be made sense of (a fact that should be impossible on real hardware)."""


class MissingDependencyError(AccelError, ImportError):
    """An optional Python package a command needs is not installed (the fleet engines' clients:
    kubernetes, grpcio, protobuf, prometheus_client)."""

    def __init__(self, package: str, *, extra: str = "fleet") -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"this command needs the Python package {package!r}, which is not installed",
            hint=f"pip install 'accelctl[{extra}]'",
        )


# --- actions -------------------------------------------------------------------------------


class ActionRefusedError(AccelError):
    """An action (reset, write) was refused before anything was touched."""


class UnsafePathError(ActionRefusedError):
    """A directory or file we would keep private state in is not ours alone (another user
    created it, could write it, or put a link there): refused, never followed or repaired."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"refusing to use {self.path}: {reason}",
            hint="point ACCELCTL_RUNTIME_DIR (or XDG_RUNTIME_DIR) at a directory only you can write, "
            "or remove this one if you did not make it",
        )


class DriverError(AccelError):
    """The driver core or the device failed."""


class BackendError(DriverError, OSError):
    """The transport to the device (simulator socket, kernel file) failed."""


class CommandError(DriverError):
    """A command completed with an error status."""

    def __init__(self, message: str, *, opcode: int | None = None, status: int | None = None):
        super().__init__(message)
        self.opcode = opcode
        self.status = status


class CommandTimeoutError(DriverError, TimeoutError):
    """A command did not complete in time (after abort and reset were tried)."""

    def __init__(self, message: str, *, timeout_s: float | None = None):
        super().__init__(message)
        self.timeout_s = timeout_s


class DeviceFailedError(DriverError):
    """The device was marked failed after recovery gave up; every command fails cleanly."""


class VerificationError(AccelError):
    """An action was carried out but the device did not come back as it was."""

    def __init__(self, message: str, *, differences: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.differences = list(differences)


# --- driver core (additive: accelctl/driver/) ----------------------------------------------


class CommandAbortedError(CommandError):
    """A command was cancelled before the device completed it: by request, by a queue deletion
    during a controller reset, or because the device failed. ``retryable`` says whether sending it
    again may succeed (NVMe: DNR clear)."""

    def __init__(
        self, message: str, *, opcode: int | None = None, status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message, opcode=opcode, status=status)
        self.retryable = retryable


class BufferBusyError(DriverError):
    """A DMA buffer cannot be unregistered or closed: commands in flight still reference it."""


class QueueFullError(DriverError):
    """No submission slot is free and the caller asked not to queue (``block=False``)."""


class DeviceRemovedError(DeviceFailedError, BackendError):
    """The device (or the simulator daemon playing its driver) went away; everything fails."""


class SessionStaleError(DeviceFailedError):
    """The device was reset under this session (another session reset it); reopen it."""


class OutputPathError(AccelError):
    """A file the command was asked to write cannot be written there: it exists (and overwriting
    was not asked for), is a directory, or the directory refuses it. Nothing was written."""

    def __init__(self, message: str, *, path: str | Path, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = str(path)


# --- snapshots and resets (additive: accelctl/snapshot/, accelctl/reset/) ------------------


class SnapshotError(InputFileError):
    """A snapshot archive is unreadable, corrupt, or unsafe to unpack (path traversal, links
    out of the tree, oversized members)."""


class ResetUnsupportedError(ActionRefusedError):
    """The device does not offer the requested reset level; ``supported`` lists those it does."""

    def __init__(self, message: str, *, level: str, supported: Sequence[str], hint: str | None = None):
        super().__init__(message, hint=hint)
        self.level = level
        self.supported = list(supported)


class DeviceInUseError(ActionRefusedError):
    """Devices a reset would touch are held by other processes; ``holders`` names them."""

    def __init__(self, message: str, *, holders: Sequence[object] = (), hint: str | None = None):
        super().__init__(message, hint=hint)
        self.holders = list(holders)


class InUseUnknownError(DeviceInUseError):
    """Whether devices a reset would touch are in use could not be found out (a source of that
    knowledge did not answer); unknown is refused like in use."""
