"""Discovery targets (issue 2), measured side by side in one run.

1. `accelctl topology --json` on the scale fixture (>= 2,000 functions) vs
   `lspci -A linux-sysfs -O sysfs.path=TREE/bus/pci -tv` on the same tree: at most 1.5x its
   median wall time; peak memory under 150 MiB.
2. `accelctl list --json` on the two-socket fixture next to `python3 -c pass` and `lspci -tv`.

    python benchmarks/bench_discovery.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runner import accelctl_argv, compare  # noqa: E402


def _lspci(tree: Path, *flags: str) -> list[str]:
    return ["lspci", "-A", "linux-sysfs", "-O", f"sysfs.path={tree}/bus/pci", *flags]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("lspci") is None:
        print("lspci not installed (apt-get install pciutils)", file=sys.stderr)
        return 2
    import compileall

    import accelctl
    from accelctl.sim.fixture import bundled_fixture_root
    from accelctl.topology import build_topology

    # Measure accelctl as installed: `pip install` byte-compiles the package, but an editable
    # install under PYTHONDONTWRITEBYTECODE (common in containers) never gets .pyc files, and
    # every run would then time the bytecode compiler instead of accelctl.
    compileall.compile_dir(str(Path(accelctl.__file__).parent), quiet=1)

    scale = Path(bundled_fixture_root("scale"))
    two = Path(bundled_fixture_root("two-socket"))
    n_functions = len(build_topology(scale, names=False).functions)

    topo = compare(
        {
            "accelctl topology --json": accelctl_argv("--sysfs-root", str(scale), "topology", "--json"),
            "lspci -tv": _lspci(scale, "-tv"),
        },
        args.runs,
    )
    listing = compare(
        {
            "accelctl list --json": accelctl_argv("--sysfs-root", str(two), "list", "--json"),
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "lspci -tv": _lspci(two, "-tv"),
        },
        args.runs,
    )
    ratio = topo["accelctl topology --json"].median_s / topo["lspci -tv"].median_s
    rss = topo["accelctl topology --json"].max_rss_kib / 1024
    report = {
        "scale_functions": n_functions,
        "topology_vs_lspci": [r.to_dict() for r in topo.values()],
        "topology_ratio": round(ratio, 2),
        "list_two_socket": [r.to_dict() for r in listing.values()],
        "targets": {
            "topology_at_most_1.5x_lspci": ratio <= 1.5,
            "topology_peak_rss_under_150_mib": rss < 150,
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"scale fixture: {n_functions} PCI functions, {args.runs} interleaved runs each")
        for r in [*topo.values(), *listing.values()]:
            d = r.to_dict()
            print(f"  {d['name']:<28} median {d['median_ms']:8.1f} ms  min {d['min_ms']:8.1f} ms  peak RSS {d['max_rss_mib']:6.1f} MiB")
        print(f"topology --json / lspci -tv = {ratio:.2f} (target <= 1.5)")
        for name, ok in report["targets"].items():
            print(f"  {'PASS' if ok else 'FAIL'} {name}")
    return 0 if all(report["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
