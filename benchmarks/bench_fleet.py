"""What the fleet engines cost per poll / scrape / request, beside the scan they sit on.

    python benchmarks/bench_fleet.py [--rounds 5] [--fixture scale]

In one run, interleaved, on the same tree: the scan alone (build_topology), one device-plugin
poll (scan + diagnostics + matrix + inventory), one Prometheus scrape's families, the
ResourceSlices (one device per VF on `scale`: 1,984 devices, 16 slices), and
GetPreferredAllocation of 8 endpoints out of every endpoint. Prints medians in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fixture", default="scale")
    args = ap.parse_args()

    from accelctl.diagnostics import run_diagnostics
    from accelctl.diagnostics.metrics import metric_families
    from accelctl.fleet import build_inventory
    from accelctl.fleet.deviceplugin.allocation import preferred_allocation
    from accelctl.fleet.resourceslice import DeviceMode, SliceRequest, build_slices
    from accelctl.sim.fixture import bundled_fixture_root
    from accelctl.sysfs import SysfsRoot
    from accelctl.topology import build_topology

    root = SysfsRoot(str(Path(bundled_fixture_root(args.fixture))))
    times: dict[str, list[float]] = {}

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        result = fn()
        times.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        return result

    for _ in range(args.rounds):
        timed("scan only (build_topology)", lambda: build_topology(root))
        inv = timed("device-plugin poll (scan+diag+matrix+inventory)", lambda: build_inventory(build_topology(root)))
        topo = inv.topology
        timed("prometheus scrape families (scan+diag level 3)",
              lambda: metric_families(t := build_topology(root), run_diagnostics(t, level=3)))
        timed("resourceslices --devices vfs (from the inventory)",
              lambda: build_slices(inv, SliceRequest("node-a", "accel.example.com", DeviceMode.VFS)))
        ids = [d.bdf for d in inv.devices]
        timed(f"preferred allocation 8 of {len(ids)}", lambda: preferred_allocation(inv, ids, [], 8))
    print(f"{args.fixture}: {len(topo.functions)} functions, {len(inv.devices)} accelerator endpoints, "
          f"{args.rounds} rounds (median ms)")
    for name, values in times.items():
        print(f"  {name:55s} {statistics.median(values):9.1f}")


if __name__ == "__main__":
    main()
