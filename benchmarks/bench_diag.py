"""`accelctl diag --json` vs `accelctl topology --json` on a >= 2,000-function tree.

Budget (issue 3): diag at most 2x the wall time of topology on the same tree. Each command runs
as a fresh process (what a user pays), several times; the medians are compared.

    python benchmarks/bench_diag.py [--runs 7] [--fixture scale]

Uses the bundled `scale` fixture when it exists, else builds an equivalent spec of its own.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# 4 sockets x 4 root ports x a 8-port external switch, 6 switch cards x 8 endpoints (+ SR-IOV
# VFs) and NVMe/NIC per switch: well over 2,000 functions.
def _spec() -> str:
    parts = ['[machine]\nname = "bench-scale"\n']
    for s in range(4):
        parts.append(f'[[host_bridge]]\nname = "s{s}"\nbus = {s * 0x40}\nnuma_node = {s // 2}\n')
    parts.append('[[root_port]]\nname = "rp{i}"\nparent = "s*"\nat = "01.1"\ncount = 4\n')
    parts.append('[[switch]]\nname = "sw{i}"\nparent = "rp*"\nports = 8\nacs = []\n')
    parts.append('[[card]]\nname = "c{i}"\nparent = "sw*.dp[0-5]"\nid = "1002:74a1"\nlayout = "switch"\n'
                 'endpoints = 4\ndriver = "amdgpu"\nvfs = 2\ntotal_vfs = 4\n')
    parts.append('[[endpoint]]\nname = "nvme{i}"\nparent = "sw*.dp6"\nid = "144d:a80a"\nclass = 0x010802\n'
                 'driver = "nvme"\n')
    parts.append('[[endpoint]]\nname = "nic{i}"\nparent = "sw*.dp7"\nid = "15b3:1021"\nclass = 0x020700\n'
                 'driver = "mlx5_core"\nfunctions = 2\n')
    return "\n".join(parts)


def _root(fixture: str | None, workdir: Path) -> Path:
    from accelctl.sim.fixture import build_fixture, bundled_fixture_root, list_bundled_fixtures, parse_spec

    if fixture and fixture in list_bundled_fixtures():
        return Path(bundled_fixture_root(fixture))
    out = workdir / "tree"
    build_fixture(parse_spec(_spec(), path="bench-scale"), out)
    return out


def _time(root: Path, args: list[str], runs: int) -> list[float]:
    cmd = [sys.executable, "-m", "accelctl", "--sysfs-root", str(root), *args]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
        if p.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--fixture", default="scale")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = _root(ns.fixture, Path(tmp))
        from accelctl.topology import build_topology

        topo = build_topology(root)
        print(f"tree: {root} ({len(topo.functions)} functions, {len(topo.cards)} cards, "
              f"{len(topo.accelerators())} accelerator endpoints)")
        results = {}
        for label, args in (("topology --json", ["topology", "--json"]), ("diag --json", ["diag", "--json"]),
                            ("diag --json --level 1", ["diag", "--json", "--level", "1"])):
            # interleave nothing fancy: warm the page cache once, then measure
            _time(root, args, 1)
            results[label] = statistics.median(_time(root, args, ns.runs))
            print(f"{label:24s} median {results[label] * 1000:7.1f} ms over {ns.runs} runs")
        ratio = results["diag --json"] / results["topology --json"]
        print(f"diag / topology = {ratio:.2f}x (budget 2.00x): {'OK' if ratio <= 2 else 'OVER BUDGET'}")


if __name__ == "__main__":
    main()
