"""Hostile snapshot archives, built by hand (tar headers and gzip members written here, not by a
tool that would refuse to write them)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

from accelctl.snapshot import take_snapshot
from accelctl.sysfs import SysfsRoot
from tests.snapshot._trees import tiny_tree

DEVICE = "sysfs/devices/pci0000:00/0000:00:01.0"


def valid_archive(tmp_path: Path) -> Path:
    """A real snapshot of a one-endpoint tree."""
    out = tmp_path / "valid.tar.gz"
    take_snapshot(SysfsRoot(tiny_tree(tmp_path)), out)
    return out


def with_extra_members(src: Path, dst: Path, extra: list[tarfile.TarInfo], *, drop: set[str] = frozenset()) -> Path:
    """`src` (a trusted archive of ours) with `extra` members added, and those in `drop` left out."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz", format=tarfile.PAX_FORMAT) as tout:
        for m in tin.getmembers():
            if m.name in drop:
                continue
            tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
        for info in extra:
            tout.addfile(info)
    return dst


def dir_member(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


def link_member(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def resolution_escape(directory: str, leaf: str, target_abs: str, depth: int = 60) -> list[tarfile.TarInfo]:
    """The lexical-check bypass of issue 14, as members to add: ``<directory>/<leaf>`` points at
    `target_abs` on the machine that unpacks it, yet every link resolves inside the tree when
    resolved on paper (normpath of the link's directory joined with its target).

    ``<directory>/d1/.../dN/up -> ../..(N times)`` is `directory`, on paper and on disk. Then
    ``<leaf> -> d1/.../dN/up/../..(N + levels of directory)/<target>``: on paper ``up/..``
    cancels and the rest climbs back to ``sysfs/``; on disk ``up`` is already `directory`, so
    the same ``..`` climb past the unpack directory to / and on to `target_abs`."""
    chain = [f"d{i}" for i in range(1, depth + 1)]
    dirs = [f"{directory}/" + "/".join(chain[:k]) for k in range(1, depth + 1)]
    up = link_member(f"{dirs[-1]}/up", "/".join([".."] * depth))
    climb = depth + 1 + directory.count("/")  # as far as sysfs/ on paper
    evil = link_member(f"{directory}/{leaf}", "/".join(chain) + "/up/" + "../" * climb + target_abs.lstrip("/"))
    return [*(dir_member(d) for d in dirs), up, evil]


# -- header bombs -----------------------------------------------------------------------------


def _gzip_member(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip wrapper
    return c.compress(data) + c.flush()


def bomb(path: Path, header: bytes, payload_bytes: int) -> Path:
    """`header` (one tar header block) followed by `payload_bytes` of zeros, as a chain of gzip
    members (a gzip stream may hold many; each 16 MiB of zeros packs into ~16 KB), so a small file
    unpacks to gigabytes."""
    chunk = 16 << 20
    zeros = _gzip_member(bytes(chunk))
    with open(path, "wb") as f:
        f.write(_gzip_member(header))
        for _ in range(payload_bytes // chunk):
            f.write(zeros)
        f.write(_gzip_member(bytes(payload_bytes % chunk)))
    return path


def long_header(kind: bytes, size: int) -> bytes:
    """A GNU long-name (``L``) or pax (``x``) header declaring `size` bytes of data."""
    info = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "PaxHeaders/x")
    info.type = kind
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT)


def many_entries(path: Path, count: int) -> Path:
    """A snapshot-shaped archive of `count` empty files. Headers are patched from one template
    (name and checksum) rather than built by tarfile: 250k of them in about a second."""
    template = bytearray(tarfile.TarInfo("sysfs/f0000000").tobuf(tarfile.USTAR_FORMAT))
    template[148:156] = b" " * 8
    base_sum = sum(template) - sum(b"sysfs/f0000000")
    with gzip.open(path, "wb", compresslevel=1) as gz:
        gz.write(dir_member("sysfs").tobuf(tarfile.USTAR_FORMAT))
        for i in range(count):
            name = b"sysfs/f%07d" % i
            template[0:14] = name
            template[148:156] = b"%06o\0 " % (base_sum + sum(name))
            gz.write(template)
        gz.write(bytes(1024))
    return path


# -- running the unpacker in a budget -----------------------------------------------------------

_BUDGET_SCRIPT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
from accelctl.errors import SnapshotError
from accelctl.snapshot.replay import snapshot_tree
try:
    tree = snapshot_tree(sys.argv[1])
except SnapshotError as err:
    print(json.dumps({{"outcome": "refused", "message": str(err)}}))
else:
    print(json.dumps({{"outcome": "accepted", "tree": str(tree)}}))
"""


def unpack_in_budget(archive: Path, *, memory_mb: int = 768, cpu_s: int = 120, env: dict | None = None) -> dict:
    """snapshot_tree(archive) in a child limited to `memory_mb` of address space and `cpu_s` of
    CPU time. The outcome it printed, or how it died (MemoryError, SIGXCPU ...)."""
    script = _BUDGET_SCRIPT.format(mem=memory_mb << 20, cpu=cpu_s)
    full_env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(env or {})}
    r = subprocess.run([sys.executable, "-c", script, str(archive)], capture_output=True, text=True,
                       env=full_env, timeout=cpu_s * 5)
    if r.returncode != 0 or not r.stdout.strip():
        return {"outcome": "died", "returncode": r.returncode, "stderr": r.stderr[-2000:]}
    return json.loads(r.stdout.strip().splitlines()[-1])
