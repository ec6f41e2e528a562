"""Where the real machines' /sys trees are (../shared/real-machines, from hwloc's test suite) and
how a test gets them: the `real_roots` session fixture (tests/conftest.py) unpacks each once."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path


def _real_machines_dir() -> Path:
    """../shared/real-machines relative to the repository: $ACCELCTL_REAL_MACHINES if set, else
    beside this checkout, else beside the main checkout of a git worktree."""
    if os.environ.get("ACCELCTL_REAL_MACHINES"):
        return Path(os.environ["ACCELCTL_REAL_MACHINES"])
    repo = Path(__file__).resolve().parents[1]
    candidate = repo.parent / "shared" / "real-machines"
    if candidate.is_dir():
        return candidate
    try:
        common = subprocess.run(["git", "-C", str(repo), "rev-parse", "--path-format=absolute",
                                 "--git-common-dir"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return candidate
    return Path(common).parent.parent / "shared" / "real-machines" if common else candidate


REAL = _real_machines_dir()
TREES = {
    "phi": "24em64t-2n6c2t+2mic.olddriver.tar.bz2",
    "x58": "40intel64-2g2n4c+pcilocality.tar.bz2",
    "vm": "2pa-pcidomain32bits.tar.bz2",
}


def unpack_real_machines(base: Path) -> dict[str, Path]:
    """Each tarball unpacked below `base`; name -> its sysfs root (the sys/ folder)."""
    out = {}
    for name, tarball in TREES.items():
        dest = base / name
        with tarfile.open(REAL / tarball) as tar:
            tar.extractall(dest, filter="tar")
        (root,) = dest.glob("*/sys")
        out[name] = root
    return out
