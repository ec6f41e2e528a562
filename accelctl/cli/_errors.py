"""Exit codes and the one place where library errors become messages and exit codes.

The table below is the published contract (docs/exit-codes.md mirrors it; a test keeps the two
in step). Lookup walks the exception's MRO, so a subclass can never be shadowed by dict order.
"""

from __future__ import annotations

import enum
import os
import json
import sys

from accelctl import errors as E


class ExitCode(enum.IntEnum):
    OK = 0
    #: a check found error-severity findings, or an operation failed
    FAILED = 1
    #: bad arguments (typer's own), a malformed or ambiguous device name
    USAGE = 2
    #: the named device (or card, or fixture) does not exist, or vanished
    NOT_FOUND = 3
    #: a file that matters could not be read or written for lack of privilege
    PERMISSION = 4
    #: the device or the driver core failed (command error, timeout, device failed)
    DEVICE_ERROR = 5
    #: an input is unusable: sysfs root, topology spec, manifest, state file
    BAD_INPUT = 6
    #: an action was carried out but the device did not come back the same
    VERIFY_FAILED = 7
    #: an action was refused before anything was touched (in use, not confirmed)
    REFUSED = 8
    #: a check found nothing to check (`diag` on a machine without accelerators), unless accepted
    NOTHING_TO_CHECK = 9
    #: a bug in accelctl: an unexpected exception
    INTERNAL = 70
    INTERRUPTED = 130
    #: stdout was closed early (`accelctl list | head`): quiet, as shell tools are on SIGPIPE
    BROKEN_PIPE = 141


ERROR_EXIT_CODES: dict[type[BaseException], ExitCode] = {
    E.InvalidAddressError: ExitCode.USAGE,
    E.InvalidAcceleratorIdError: ExitCode.USAGE,
    E.AmbiguousAddressError: ExitCode.USAGE,
    E.InvalidRequestError: ExitCode.USAGE,
    E.DeviceNotFoundError: ExitCode.NOT_FOUND,
    E.DeviceVanishedError: ExitCode.NOT_FOUND,
    E.UnknownFixtureError: ExitCode.NOT_FOUND,
    E.SysfsPermissionError: ExitCode.PERMISSION,
    E.SysfsRootError: ExitCode.BAD_INPUT,
    E.InputFileError: ExitCode.BAD_INPUT,
    E.DriverError: ExitCode.DEVICE_ERROR,
    E.VerificationError: ExitCode.VERIFY_FAILED,
    E.ActionRefusedError: ExitCode.REFUSED,
    E.AccelError: ExitCode.FAILED,
}


def exit_code_for(err: BaseException) -> ExitCode:
    for cls in type(err).__mro__:
        if cls in ERROR_EXIT_CODES:
            return ERROR_EXIT_CODES[cls]
    return ExitCode.INTERNAL


#: Version of the error object written to stderr under --json.
ERROR_SCHEMA_VERSION = 1


def report_error(err: BaseException, code: ExitCode, *, as_json: bool, message: str | None = None) -> None:
    """Write the error to stderr: one JSON object in --json mode, a sentence (and hint) otherwise."""
    hint: str | None
    if code is ExitCode.INTERNAL:
        message = f"internal error: {type(err).__name__}: {err}"
        hint = "this is a bug in accelctl; re-run with --debug for a traceback"
    else:
        message = str(err) if message is None else message
        hint = getattr(err, "hint", None)
    if as_json:
        error: dict[str, object] = {"type": type(err).__name__, "message": message, "exit_code": int(code)}
        if hint:
            error["hint"] = hint
        sys.stderr.write(json.dumps({"schema_version": ERROR_SCHEMA_VERSION, "error": error}) + "\n")
        return
    sys.stderr.write(f"accelctl: error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")


def is_usage_error(err: BaseException) -> bool:
    # typer's own usage errors (bad option, missing argument) keep typer's rendering and exit 2.
    # BadParameter is public; its base UsageError is reached through the MRO by name so we never
    # import click or typer's private click copy.
    return any(c.__name__ in ("UsageError", "BadParameter") for c in type(err).__mro__)


def file_error(err: OSError, path: "str | os.PathLike[str]", verb: str) -> Exception:
    """A typed error for a file named on the command line that cannot be read or written
    (`verb`: "read", "write", or "open" where the command did not say which)."""
    from accelctl.errors import InputFileError, SysfsPermissionError

    reason = err.strerror or str(err)
    if isinstance(err, PermissionError):
        return SysfsPermissionError(f"cannot {verb} {path}: {reason}", path=path, hint="choose a file you may " + verb)
    return InputFileError(f"cannot {verb} it: {reason}", path=path)
