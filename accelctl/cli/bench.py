"""`accelctl bench`: the driver core's latency, throughput and DMA numbers against a simulator."""

from __future__ import annotations

import os
from typing import Annotated, Any, Optional

import typer

from accelctl.cli import _complete
from accelctl.cli import _output as out
from accelctl.cli._options import JsonOpt

app = typer.Typer(help="Measure the driver core against a simulated endpoint.")


@app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    device: Annotated[Optional[str], typer.Argument(help="Endpoint (default: the first of the tree).",
                                                    autocompletion=_complete.device_names)] = None,
    seconds: Annotated[float, typer.Option("--seconds", help="Duration of each throughput run.")] = 1.0,
    iterations: Annotated[int, typer.Option("--iterations", help="Latency samples per mode.")] = 5000,
    json: JsonOpt = False,
) -> None:
    """Latency (interrupt, poll), batched throughput vs. one-ioctl-per-command, DMA vs. memcpy.

    Uses the bundled one-card fixture unless --fixture or --sysfs-root names another tree (a
    simulated one: on a live machine nothing plays the driver yet, exit 5). Exits 1 when a
    target fails."""
    if ctx.invoked_subcommand is not None:
        return
    ctx.obj.json_errors = json
    from accelctl.bench.driver_core import run_bench
    from accelctl.sysfs.root import SYSFS_ROOT_ENV

    state = ctx.obj
    if state.sysfs_root is None and state.fixture is None and not os.environ.get(SYSFS_ROOT_ENV):
        state.fixture = "one-card"
    report = run_bench(state.machine(), device, seconds=seconds, latency_iterations=iterations,
                       progress=out.progress_reporter())
    if json:
        out.emit_json(report)
    else:
        _render(report)
    if not report["all_targets_pass"]:
        raise typer.Exit(1)


def _render(r: dict[str, Any]) -> None:
    lat = r["sync_latency_us"]
    floor = r["platform"]
    steal = "" if floor["steal_pct"] is None else f", {floor['steal_pct']}% stolen by the hypervisor"
    named = f" ({r['name']})" if r["name"] else ""
    lines = [
        f"{r['machine']['kind']} {r['machine']['name']}: device {r['bdf']}{named} (simulator in a separate process, {r['cpus']} CPUs, {r['rounds']} interleaved rounds)",
        f"platform      spin round trip {floor['spin_round_trip_us']} us, eventfd wake-up {floor['eventfd_wakeup_us']} us{steal}",
        f"sync latency  interrupt p50 {lat['interrupt']['p50']} us  p99 {lat['interrupt']['p99']} us",
        f"              poll      p50 {lat['poll']['p50']} us  p99 {lat['poll']['p99']} us",
        f"throughput    {r['throughput_cmds_per_s']:,} cmd/s batched x32  vs  ioctl {r['ioctl_baseline_cmds_per_s']:,} cmd/s",
    ]
    for label in r["memcpy_gbs"]:
        lines.append(f"DMA {label:>6}    write {r['dma_write_gbs'][label]} GB/s  read {r['dma_read_gbs'][label]} GB/s"
                     f"  memcpy {r['memcpy_gbs'][label]} GB/s")
    lines.append("targets:")
    for name, t in r["targets"].items():
        bound = f">= {t['min']}" if "min" in t else f"<= {t['max']}"
        lines.append(f"  {'PASS' if t['pass'] else 'FAIL'}  {name}: {t['value']} ({bound})")
    out.emit_text("\n".join(lines))
