"""`accelctl io write|read|fill|compare DEVICE`: move data to and from device memory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from accelctl.cli import _output as out
from accelctl.cli._errors import ExitCode, file_error
from accelctl.cli._options import DeviceArg, JsonOpt

app = typer.Typer(help="IO commands on one endpoint's device memory.", no_args_is_help=True)

AddressOpt = Annotated[str, typer.Option("--address", "-a", help="Device memory byte offset (0x hex ok).")]
InputOpt = Annotated[
    Optional[Path], typer.Option("--input", "-i", help="Read data from this file (default: stdin).")
]


def _int(text: str, what: str, *, bits: int = 64) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise typer.BadParameter(f"{what} is not a number: {text!r}") from None
    if value < 0:
        raise typer.BadParameter(f"{what} must not be negative")
    if value >= 1 << bits:
        raise typer.BadParameter(f"{what} {text} does not fit in {bits} bits (at most {(1 << bits) - 1:#x})")
    return value


def _input(path: Path | None) -> bytes:
    if path is None:
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as err:
        raise file_error(err, path, "read") from None


def _output(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as err:
        raise file_error(err, path, "write") from None


def _emit(document: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        out.emit_json(document)
    else:
        sys.stderr.write(text + "\n")  # stdout stays for data (io read)


@app.command()
def write(ctx: typer.Context, device: DeviceArg, address: AddressOpt = "0", input: InputOpt = None,
          json: JsonOpt = False) -> None:
    """Write a file (or stdin) into device memory."""
    ctx.obj.json_errors = json
    from accelctl import endpoints as ops

    result = ops.write_data(ctx.obj.machine(), device, _int(address, "address"), _input(input))
    _emit(result, json, f"wrote {result['bytes']} bytes at {result['address']}")


@app.command()
def read(
    ctx: typer.Context,
    device: DeviceArg,
    length: Annotated[str, typer.Option("--length", "-n", help="How many bytes.")],
    address: AddressOpt = "0",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file (default: stdout).")] = None,
) -> None:
    """Read device memory to a file (or to stdout when it is a pipe: raw bytes are not for a
    terminal)."""
    from accelctl import endpoints as ops

    if output is None and out.stdout_is_terminal():
        raise typer.BadParameter(
            "raw device memory is not for a terminal: write it to a file with -o FILE, or pipe it "
            "(| od -c, | xxd)", param_hint="'--output'",
        )
    data = ops.read_data(ctx.obj.machine(), device, _int(address, "address"), _int(length, "length"))
    if output is not None:
        _output(output, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


@app.command()
def fill(
    ctx: typer.Context,
    device: DeviceArg,
    length: Annotated[str, typer.Option("--length", "-n", help="How many bytes.")],
    address: AddressOpt = "0",
    pattern: Annotated[str, typer.Option("--pattern", help="u32 pattern, little-endian, repeated.")] = "0",
    json: JsonOpt = False,
) -> None:
    """Fill a device memory range with a repeated 32-bit pattern."""
    ctx.obj.json_errors = json
    from accelctl import endpoints as ops

    result = ops.fill(ctx.obj.machine(), device, _int(address, "address"), _int(length, "length"), _int(pattern, "pattern", bits=32))
    _emit(result, json, f"filled {result['bytes']} bytes at {result['address']} with {result['pattern']}")


@app.command()
def compare(ctx: typer.Context, device: DeviceArg, address: AddressOpt = "0", input: InputOpt = None,
            json: JsonOpt = False) -> None:
    """Compare device memory with a file (or stdin); exits 7 when they differ."""
    ctx.obj.json_errors = json
    from accelctl import endpoints as ops

    result = ops.compare(ctx.obj.machine(), device, _int(address, "address"), _input(input))
    if result["equal"]:
        _emit(result, json, f"equal: {result['bytes']} bytes at {result['address']}")
        return
    _emit(result, json, f"differ: first difference at byte {result['first_difference']}")
    raise typer.Exit(int(ExitCode.VERIFY_FAILED))
