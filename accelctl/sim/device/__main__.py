"""``python -m accelctl.sim.device --sysfs-root DIR``: the simulator daemon as a process."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m accelctl.sim.device", description=__doc__)
    parser.add_argument("--sysfs-root", required=True, help="the fixture sysfs tree whose endpoints to serve")
    parser.add_argument("--spin-us", type=float, default=50.0, help="device-side busy poll before sleeping")
    parser.add_argument("--memory-cap", type=int, default=None, help="max device memory per endpoint, bytes")
    parser.add_argument("--fault", action="append", default=[],
                        help='a fault spec as JSON, optionally with "bdf" (default: every endpoint)')
    args = parser.parse_args(argv)

    from accelctl.sim import service
    from accelctl.sim.device import FaultSpec, endpoints_from_sysfs_root

    faults = None
    if args.fault:
        bdfs = [e.bdf for e in endpoints_from_sysfs_root(args.sysfs_root)]
        faults = {bdf: [] for bdf in bdfs}
        for text in args.fault:
            spec = json.loads(text)
            target = spec.pop("bdf", None)
            for bdf in [target] if target else bdfs:
                faults.setdefault(bdf, []).append(FaultSpec.from_dict(dict(spec)))
    try:
        service.serve(args.sysfs_root, faults=faults, spin_us=args.spin_us, memory_cap=args.memory_cap)
    except Exception as exc:  # noqa: BLE001 - a daemon reports why it could not run, then exits non-zero
        print(f"accelsim: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
