"""`accelctl addr show --json` vs `accelctl topology --json` on the scale fixture, side by side.

    python benchmarks/bench_addr.py [--runs 7] [--fixture scale]

Budget (issue 3): addr show at most 2x the wall time of topology on the same tree. Both run as
fresh processes on the same prebuilt tree, interleaved (benchmarks/_runner.py) so machine load
hits them alike; medians are compared. It also reports the in-process cost of the addressing
layer alone (map, resolver, diff) next to the scan, to show it is a small linear add-on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from _runner import compare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--fixture", default="scale")
    args = parser.parse_args()

    from accelctl.addressing import Resolver, compute_addresses
    from accelctl.addressing.diff import diff_maps
    from accelctl.sim.fixture import bundled_fixture_root
    from accelctl.topology import build_topology

    root = str(bundled_fixture_root(args.fixture))  # build (or reuse) the tree outside the timing
    t0 = time.perf_counter()
    topo = build_topology(root)
    t1 = time.perf_counter()
    amap = compute_addresses(topo)
    resolver = Resolver(topo, addresses=amap, visible=None)
    for e in amap.endpoints:
        resolver.resolve(e.name)
        resolver.resolve(e.bdf)
    diff_maps(amap, amap)
    t2 = time.perf_counter()
    from accelctl.addressing.planner import check_against_topology

    check_against_topology(topo)  # plans buses, windows and every BAR, then compares
    t3 = time.perf_counter()

    with tempfile.TemporaryDirectory() as state:
        base = [sys.executable, "-m", "accelctl", "--sysfs-root", root]
        results = compare(
            {
                "topology --json": [*base, "topology", "--json"],
                "addr show --json": [*base, "addr", "show", "--json", "--state-dir", state],
            },
            args.runs,
        )
    topo_ms = results["topology --json"].median_s * 1000
    addr_ms = results["addr show --json"].median_s * 1000
    ratio = addr_ms / topo_ms
    print(json.dumps(
        {
            "fixture": args.fixture,
            "functions": len(topo.functions),
            "cards": len(topo.cards),
            "endpoints": len(amap.endpoints),
            "in_process_ms": {"build_topology": round((t1 - t0) * 1000, 1),
                              "addresses+resolve_all+diff": round((t2 - t1) * 1000, 1),
                              "plan+check_against_topology": round((t3 - t2) * 1000, 1)},
            "commands": [r.to_dict() for r in results.values()],
            "ratio_addr_to_topology": round(ratio, 2),
            "budget": 2.0,
        },
        indent=2,
    ))
    return 0 if ratio <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
