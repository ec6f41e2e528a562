"""`accelctl k8s`: what Kubernetes consumes (DRA ResourceSlices, the kubelet device plugin, NFD
feature files). docs/fleet.md has the operator's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from accelctl.cli import _output as out
from accelctl.cli._options import JsonOpt
from accelctl.fleet.resourceslice import DeviceMode

app = typer.Typer(help="Feed Kubernetes: DRA ResourceSlices, a kubelet device plugin, NFD labels.",
                  no_args_is_help=True)


@app.command("resourceslice")
def resourceslice_command(
    ctx: typer.Context,
    node: Annotated[str, typer.Option("--node", help="The Kubernetes node name (also the pool name).")],
    driver: Annotated[str, typer.Option("--driver", help="The DRA driver name, a domain (accel.example.com).")],
    devices: Annotated[
        DeviceMode, typer.Option("--devices", help="One device per accelerator endpoint, or per virtual function.")
    ] = DeviceMode.ENDPOINTS,
    generation: Annotated[int, typer.Option("--generation", min=0, help="Pool generation to publish.")] = 1,
    previous: Annotated[
        Optional[Path],
        typer.Option("--previous", help="The slices published last time: keep their generation, "
                     "or bump it when a device changed (overrides --generation).", show_default=False),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Print this machine's DRA ResourceSlices (resource.k8s.io/v1) as YAML, or a JSON List."""
    from accelctl.fleet import build_inventory
    from accelctl.fleet.resourceslice import (
        SliceRequest, build_slices, load_slices, next_generation, restamp_generation)

    ctx.obj.json_errors = json
    old = load_slices(_read(previous), str(previous)) if previous is not None else None
    inv = build_inventory(ctx.obj.topology())
    req = SliceRequest(node=node, driver=driver, devices=devices, generation=generation)
    slices = build_slices(inv, req)
    if old is not None:
        slices = restamp_generation(slices, next_generation(old, slices))
    _emit_k8s(slices, json)


def _read(path: Path) -> str:
    from accelctl.errors import InputFileError

    try:
        return path.read_text()
    except OSError as err:
        raise InputFileError(f"cannot read: {err.strerror}", path=path) from None


def _emit_k8s(objects: list[dict], as_json: bool) -> None:
    if as_json:
        from accelctl.fleet.resourceslice import as_list

        out.emit_json(as_list(objects))
        return
    from accelctl.fleet.yaml_out import dump_all

    out.emit_text(dump_all(objects))


@app.command("nfd")
def nfd_command(
    ctx: typer.Context,
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="Feature file to write atomically ('-': stdout)."),
    ] = "/etc/kubernetes/node-feature-discovery/features.d/accelctl",
    expiry: Annotated[
        int,
        typer.Option("--expiry", min=0, help="Seconds after which NFD drops the labels unless the "
                     "file is rewritten (0: never)."),
    ] = 3600,
) -> None:
    """Write NFD labels (accelerator count, model, cards, P2P, downtraining) as a feature file."""
    from datetime import timedelta

    from accelctl.fleet import build_inventory
    from accelctl.fleet.nfd import feature_file, nfd_labels

    text = feature_file(nfd_labels(build_inventory(ctx.obj.topology())),
                        expiry=timedelta(seconds=expiry) if expiry else None)
    if output == "-":
        out.emit_text(text)
        return
    _write(Path(output), text)


def _write(path: Path, text: str) -> None:
    from accelctl._files import write_text_atomically
    from accelctl.errors import InputFileError

    try:
        write_text_atomically(path, text)
    except OSError as err:
        raise InputFileError(f"cannot write: {err.strerror}", path=path) from None


@app.command("device-plugin")
def device_plugin_command(
    ctx: typer.Context,
    resource_name: Annotated[
        str, typer.Option("--resource-name", help="Extended resource to advertise, vendor-domain/type.")
    ] = "accelctl.io/accelerator",
    plugin_dir: Annotated[
        Path, typer.Option("--plugin-dir", help="The kubelet's device-plugin directory.")
    ] = Path("/var/lib/kubelet/device-plugins"),
    socket_name: Annotated[str, typer.Option("--socket-name", help="This plugin's socket in that directory.")] = "accelctl.sock",
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="Seconds between health checks (and kubelet-socket checks).")
    ] = 5.0,
    correctable_per_poll: Annotated[
        int, typer.Option("--correctable-per-poll", min=1, help="New correctable AER errors in one poll that make a device Unhealthy.")
    ] = 100,
    recover_polls: Annotated[
        int, typer.Option("--recover-polls", min=1, help="Polls without new AER errors before such a device is Healthy again.")
    ] = 3,
    device: Annotated[
        Optional[list[str]],
        typer.Option("--device", help="A device node every allocation also gets (e.g. /dev/kfd). Repeatable."),
    ] = None,
) -> None:
    """Serve the kubelet device-plugin API (v1beta1) until stopped: health, NUMA, preferred
    allocation by the pairwise matrix, device nodes and ACCELCTL_VISIBLE_DEVICES."""
    from accelctl.cli.serve import serve_until_stopped
    from accelctl.fleet import build_inventory
    from accelctl.fleet.deviceplugin.health import HealthPolicy
    from accelctl.fleet.deviceplugin.server import DevicePlugin, PluginOptions
    from accelctl.sysfs.devnodes import device_nodes

    machine = ctx.obj.machine()
    options = PluginOptions(
        resource_name=resource_name, plugin_dir=str(plugin_dir), socket_name=socket_name,
        poll_interval=poll_interval,
        policy=HealthPolicy(correctable_per_poll=correctable_per_poll, recover_polls=recover_polls),
        extra_devices=tuple(device or ()),
    )
    plugin = DevicePlugin(
        options,
        snapshot=lambda: build_inventory(machine.rescan()),
        nodes_of=lambda bdf: device_nodes(machine.root, bdf),
        log=lambda message: out.err_console().print(out.esc(f"device-plugin: {message}")),
    )

    def start() -> DevicePlugin:
        plugin.start()
        out.err_console().print(out.esc(f"device-plugin: serving {plugin.socket_path}"))
        return plugin

    serve_until_stopped(start, DevicePlugin.stop)
