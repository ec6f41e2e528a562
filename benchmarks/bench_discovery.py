"""Discovery at lspci's speed (issue 2, issue 11 item 5), measured side by side in one run.

1. `accelctl topology --json` vs `lspci -A linux-sysfs -O sysfs.path=TREE/bus/pci -tv` on two
   trees of the same size: the bundled `scale` fixture (64 PFs with 1,984 VFs behind 8
   switches) and benchmarks/specs/pf-heavy.toml (1,024 PFs behind 160 switches in 8 PCI
   domains). Target: at most 1.2x lspci's median wall time on both; peak memory under 150 MiB.
   `lspci -vv` runs in the same rotation, for information: it reads and decodes every
   function's facts as topology --json does, where -tv prints only the tree and names.
2. `accelctl list --json` on the two-socket fixture next to `python3 -c pass` and `lspci -tv`.
3. With --phases: where accelctl's time goes, in one process (CPU time, best of the runs): the
   scan (sysfs reads and parsing), the build (nodes, kinds, links, cards), to_dict and the JSON
   encoder. CPU time, not cProfile: a profiler inflates call-heavy Python code several times and
   points at the wrong places.

    python benchmarks/bench_discovery.py [--runs N] [--json] [--phases]

The PF-heavy tree is built into the cache on first use (minutes on a slow disk, then reused).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runner import Result, accelctl_argv, compare  # noqa: E402

PF_HEAVY_SPEC = Path(__file__).resolve().parent / "specs" / "pf-heavy.toml"
TARGET_RATIO = 1.2


def _lspci(tree: Path, *flags: str) -> list[str]:
    return ["lspci", "-A", "linux-sysfs", "-O", f"sysfs.path={tree}/bus/pci", *flags]


def _versus_lspci(trees: dict[str, Path], runs: int) -> dict[str, dict[str, Result]]:
    """Per tree, accelctl topology --json, lspci -tv and lspci -vv interleaved."""
    return {
        name: compare(
            {
                "accelctl topology --json": accelctl_argv("--sysfs-root", str(tree), "topology", "--json"),
                "lspci -tv": _lspci(tree, "-tv"),
                # every function's capabilities decoded: the same work as topology --json, in C
                "lspci -vv": _lspci(tree, "-vv"),
            },
            runs,
        )
        for name, tree in trees.items()
    }


def phases(tree: Path, runs: int) -> dict[str, float]:
    """Best CPU milliseconds of each phase of `topology --json`, in this process: the scan, the
    build after it (nodes, kinds, links, names, cards), to_dict and the JSON encoder. The build
    is timed around the scan it does itself (scan_tree wrapped), so noise between two separate
    scans cannot make it negative."""
    import time

    import accelctl.topology.build as build_module
    from accelctl.sysfs.root import SysfsRoot
    from accelctl.sysfs.scan import scan_tree

    root = SysfsRoot(tree)
    scanned: list[float] = []

    def timed_scan(*args, **kwargs):  # type: ignore[no-untyped-def]
        t = time.process_time()
        try:
            return scan_tree(*args, **kwargs)
        finally:
            scanned.append(time.process_time() - t)

    best: dict[str, float] = {}
    build_module.scan_tree = timed_scan  # type: ignore[assignment]
    try:
        for _ in range(runs):
            scanned.clear()
            t1 = time.process_time()
            topo = build_module.build_topology(root)
            t2 = time.process_time()
            document = topo.to_dict()
            t3 = time.process_time()
            json.dumps(document)
            t4 = time.process_time()
            spent = {"scan": scanned[0], "build": (t2 - t1) - scanned[0], "to_dict": t3 - t2, "json": t4 - t3}
            for key, seconds in spent.items():
                best[key] = min(best.get(key, seconds), seconds)
    finally:
        build_module.scan_tree = scan_tree
    return {k: round(max(v, 0.0) * 1000, 1) for k, v in best.items()}


def start_up(runs: int) -> dict[str, float]:
    """Median wall milliseconds of the interpreter alone and of it importing what
    `topology --json` imports (the part of every run that is not discovery)."""
    imports = "import accelctl.cli.app, accelctl.cli.topology_cmd, accelctl.machine, accelctl.topology.build"
    r = compare({"python3 -c pass": [sys.executable, "-c", "pass"],
                 "imports": [sys.executable, "-c", imports]}, runs)
    return {"interpreter": round(r["python3 -c pass"].median_s * 1000, 1),
            "imports": round((r["imports"].median_s - r["python3 -c pass"].median_s) * 1000, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--phases", action="store_true", help="also time the phases in-process")
    args = parser.parse_args()
    if shutil.which("lspci") is None:
        print("lspci not installed (apt-get install pciutils)", file=sys.stderr)
        return 2
    import compileall

    import accelctl
    from accelctl.sim.fixture import bundled_fixture_root, cached_fixture_root
    from accelctl.topology import build_topology

    # Measure accelctl as installed: `pip install` byte-compiles the package, but an editable
    # install under PYTHONDONTWRITEBYTECODE (common in containers) never gets .pyc files, and
    # every run would then time the bytecode compiler instead of accelctl.
    compileall.compile_dir(str(Path(accelctl.__file__).parent), quiet=1)

    trees = {"scale": Path(bundled_fixture_root("scale")), "pf-heavy": Path(cached_fixture_root(PF_HEAVY_SPEC))}
    two = Path(bundled_fixture_root("two-socket"))
    sizes = {name: len(build_topology(tree, names=False).functions) for name, tree in trees.items()}

    versus = _versus_lspci(trees, args.runs)
    listing = compare(
        {
            "accelctl list --json": accelctl_argv("--sysfs-root", str(two), "list", "--json"),
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "lspci -tv": _lspci(two, "-tv"),
        },
        args.runs,
    )
    ratios = {name: r["accelctl topology --json"].median_s / r["lspci -tv"].median_s for name, r in versus.items()}
    like_for_like = {name: r["accelctl topology --json"].median_s / r["lspci -vv"].median_s
                     for name, r in versus.items()}
    rss = max(r["accelctl topology --json"].max_rss_kib for r in versus.values()) / 1024
    report: dict[str, object] = {
        "functions": sizes,
        "topology_vs_lspci": {name: [x.to_dict() for x in r.values()] for name, r in versus.items()},
        "topology_ratio": {name: round(v, 2) for name, v in ratios.items()},
        "topology_ratio_to_lspci_vv": {name: round(v, 2) for name, v in like_for_like.items()},
        "list_two_socket": [r.to_dict() for r in listing.values()],
        "targets": {
            **{f"{name}_topology_at_most_{TARGET_RATIO}x_lspci": v <= TARGET_RATIO for name, v in ratios.items()},
            "topology_peak_rss_under_150_mib": rss < 150,
        },
    }
    if args.phases:
        report["start_up_ms"] = start_up(args.runs)
        report["phases_cpu_ms"] = {name: phases(tree, max(3, args.runs // 3)) for name, tree in trees.items()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, r in versus.items():
            print(f"{name}: {sizes[name]} PCI functions, {args.runs} interleaved runs each")
            for x in r.values():
                d = x.to_dict()
                print(f"  {d['name']:<28} median {d['median_ms']:8.1f} ms  min {d['min_ms']:8.1f} ms  "
                      f"peak RSS {d['max_rss_mib']:6.1f} MiB")
            print(f"  topology --json / lspci -tv = {ratios[name]:.2f} (target <= {TARGET_RATIO}); "
                  f"/ lspci -vv = {like_for_like[name]:.2f}")
        print("two-socket:")
        for x in listing.values():
            d = x.to_dict()
            print(f"  {d['name']:<28} median {d['median_ms']:8.1f} ms  min {d['min_ms']:8.1f} ms")
        if "start_up_ms" in report:
            print("start-up (wall ms, median): " + ", ".join(
                f"{k} {v}" for k, v in report["start_up_ms"].items()))  # type: ignore[union-attr]
        for name, spent in report.get("phases_cpu_ms", {}).items():  # type: ignore[union-attr]
            print(f"{name} phases (CPU ms, best): " + ", ".join(f"{k} {v}" for k, v in spent.items()))
        for name, ok in report["targets"].items():  # type: ignore[union-attr]
            print(f"  {'PASS' if ok else 'FAIL'} {name}")
    return 0 if all(report["targets"].values()) else 1  # type: ignore[union-attr]


if __name__ == "__main__":
    sys.exit(main())
