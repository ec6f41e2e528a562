"""`accelctl admin identify|log|features|get-feature|set-feature DEVICE`: admin commands."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from accelctl.cli import _complete
from accelctl.cli import _output as out
from accelctl.cli._options import DeviceArg, JsonOpt

app = typer.Typer(help="Admin commands to one endpoint: identify, log pages, features.", no_args_is_help=True)



class LogName(str, enum.Enum):
    health = "health"
    error = "error"
    firmware = "firmware"


def _emit(document: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.emit_json(document)
        return
    _print_mapping(document)


def _print_mapping(data: Any, indent: int = 0) -> None:
    pad = "  " * indent
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (dict, list)):
                out.emit_text(f"{pad}{key}:")
                _print_mapping(value, indent + 1)
            elif key.endswith("_k") and "temperature" in key and isinstance(value, (int, float)):
                # the device reports kelvin (as NVMe does); people read Celsius
                out.emit_text(f"{pad}{key[:-2]}: {value - 273.15:.0f} °C ({value} K)")
            else:
                out.emit_text(f"{pad}{key}: {'-' if value is None else value}")
    elif isinstance(data, list):
        if not data:
            out.emit_text(f"{pad}(none)")
        for i, item in enumerate(data):
            out.emit_text(f"{pad}[{i}]")
            _print_mapping(item, indent + 1)


@app.command()
def identify(ctx: typer.Context, device: DeviceArg, json: JsonOpt = False) -> None:
    """Identify the controller and the endpoint (model, serial, firmware, logical address)."""
    ctx.obj.json_errors = json
    from accelctl import endpoints as ops

    _emit(ops.identify(ctx.obj.machine(), device), json)


@app.command()
def log(
    ctx: typer.Context,
    device: DeviceArg,
    page: Annotated[LogName, typer.Option("--page", "-p", help="Which log page.")] = LogName.health,
    json: JsonOpt = False,
) -> None:
    """Read a log page: health (temperature, counters), error log, firmware slots."""
    ctx.obj.json_errors = json
    from accelctl import endpoints as ops

    _emit(ops.read_log(ctx.obj.machine(), device, page.value), json)


@app.command()
def features(ctx: typer.Context, device: DeviceArg, json: JsonOpt = False) -> None:
    """Every feature's current value."""
    ctx.obj.json_errors = json
    from accelctl import endpoints as ops

    _emit(ops.features(ctx.obj.machine(), device), json)


def _parse_feature(text: str) -> int:
    from accelctl import endpoints as ops

    try:
        return int(ops.feature_id(text))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("get-feature")
def get_feature(
    ctx: typer.Context,
    device: DeviceArg,
    feature: Annotated[str, typer.Argument(help="Feature name (e.g. keep-alive-timer) or number.",
                                           autocompletion=_complete.feature_names)],
    json: JsonOpt = False,
) -> None:
    """Read one feature."""
    ctx.obj.json_errors = json
    from accelctl import endpoints as ops

    _emit(ops.get_feature(ctx.obj.machine(), device, _parse_feature(feature)), json)


@app.command("set-feature")
def set_feature(
    ctx: typer.Context,
    device: DeviceArg,
    feature: Annotated[str, typer.Argument(help="Feature name (e.g. keep-alive-timer) or number.",
                                           autocompletion=_complete.feature_names)],
    value: Annotated[str, typer.Argument(help="New value (decimal or 0x hex).")],
    json: JsonOpt = False,
) -> None:
    """Set one feature and read it back."""
    ctx.obj.json_errors = json
    from accelctl import endpoints as ops

    try:
        number = int(value, 0)
    except ValueError:
        raise typer.BadParameter(f"not a number: {value!r}") from None
    _emit(ops.set_feature(ctx.obj.machine(), device, _parse_feature(feature), number), json)
