"""`accelctl snapshot OUT`: the PCI part of sysfs in one archive, replayable with --sysfs-root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from accelctl.cli import _output as out
from accelctl.cli._options import JsonOpt


def snapshot_command(
    ctx: typer.Context,
    output: Annotated[Path, typer.Argument(help="Archive to write (.tar.gz).", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
    json: JsonOpt = False,
) -> None:
    """Capture devices, bus/pci, slots, drivers, iommu groups and config space (as far as
    readable) plus the kernel version into one archive. Replay it anywhere with
    'accelctl --sysfs-root OUT <command>'. Never reads device memory, never writes to sysfs."""
    from accelctl.snapshot import take_snapshot

    ctx.obj.json_errors = json
    info = take_snapshot(ctx.obj.root(), output, overwrite=force, progress=out.progress_reporter())
    if json:
        out.emit_json(info.to_dict())
        return
    meta = info.meta
    counts = meta["counts"]
    out.emit_text(
        f"wrote {os.fspath(output)}: {counts['functions']} functions, "
        f"{counts['host_bridges']} host bridges, {info.entries} entries, "
        f"{info.size_bytes / 1024:.1f} KiB (kernel {meta['kernel']['release']})"
    )
    if meta["unreadable"]:
        n = len(meta["unreadable"])
        out.warn(f"{n} entries could not be read (listed in snapshot.json in the archive):")
        for item in meta["unreadable"][:5]:
            out.warn(f"  {item['path']}: {item['reason']}")
        if n > 5:
            out.warn(f"  ... and {n - 5} more")
