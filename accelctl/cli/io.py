"""`accelctl io write|read|fill|compare DEVICE`: move data to and from device memory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from accelctl.cli import _output as out
from accelctl.cli._errors import ExitCode
from accelctl.cli._options import DeviceArg, JsonOpt

app = typer.Typer(help="IO commands on one endpoint's device memory.", no_args_is_help=True)

AddressOpt = Annotated[str, typer.Option("--address", "-a", help="Device memory byte offset (0x hex ok).")]
InputOpt = Annotated[
    Optional[Path], typer.Option("--input", "-i", help="Read data from this file (default: stdin).")
]


def _int(text: str, what: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise typer.BadParameter(f"{what} is not a number: {text!r}") from None
    if value < 0:
        raise typer.BadParameter(f"{what} must not be negative")
    return value


def _input(path: Path | None) -> bytes:
    return path.read_bytes() if path is not None else sys.stdin.buffer.read()


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
    """Read device memory to a file (or stdout, raw bytes)."""
    from accelctl import endpoints as ops

    data = ops.read_data(ctx.obj.machine(), device, _int(address, "address"), _int(length, "length"))
    if output is not None:
        output.write_bytes(data)
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

    result = ops.fill(ctx.obj.machine(), device, _int(address, "address"), _int(length, "length"), _int(pattern, "pattern"))
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
