"""Write a capture as one tar.gz: ``snapshot.json`` (what, when, from where, what was missed)
and ``sysfs/`` (the tree). Deterministic: sorted members, fixed owner, one mtime."""

from __future__ import annotations

import gzip
import io
import os
import platform
import tarfile
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from accelctl import __version__
from accelctl.errors import OutputPathError
from accelctl.snapshot.capture import Capture

SCHEMA_VERSION = 1
META_NAME = "snapshot.json"
TREE_DIR = "sysfs"


@dataclass(slots=True)
class SnapshotInfo:
    """What `write_snapshot` produced: the document stored as snapshot.json plus file facts."""

    path: str
    size_bytes: int
    entries: int
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "entries": self.entries,
            "snapshot": self.meta,
        }


def build_meta(cap: Capture, source: str, created: float) -> dict[str, Any]:
    u = platform.uname()
    return {
        "schema_version": SCHEMA_VERSION,
        "accelctl_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        "source": source,
        "kernel": {
            "sysname": u.system,
            "release": u.release,
            "version": u.version,
            "machine": u.machine,
            "hostname": u.node,
        },
        "counts": {
            "functions": cap.functions,
            "host_bridges": cap.host_bridges,
            "entries": len(cap.entries),
            "bytes": cap.total_bytes,
        },
        # what could not be read, and why (path relative to the sysfs root)
        "unreadable": [{"path": p, "reason": r} for p, r in sorted(cap.unreadable.items())],
        # what was left out on purpose, by reason
        "skipped": [
            {"reason": r, "count": n, "examples": cap.skipped_examples.get(r, [])}
            for r, n in sorted(cap.skipped.items())
        ],
    }


def check_output(out: str, *, overwrite: bool) -> None:
    """Raises OutputPathError when `out` cannot take an archive (checked again when it is put in
    place: this is so that a long capture is not wasted)."""
    if os.path.isdir(out):
        raise OutputPathError(f"{out} is a directory", path=out, hint="give a file name such as snap.tar.gz")
    if os.path.lexists(out) and not overwrite:
        raise OutputPathError(f"{out} exists", path=out, hint="pass --force to overwrite it")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise OutputPathError(f"cannot write {out}: directory {out_dir} does not exist", path=out)


def write_snapshot(cap: Capture, out: str, *, source: str, overwrite: bool = False) -> SnapshotInfo:
    """Write the archive atomically (temp file, then renamed into place; linked into place when
    it must not overwrite, so a file that appeared meanwhile is not replaced): a crash never
    leaves half an archive.

    Raises:
        OutputPathError: `out` cannot be written (exists and not `overwrite`, or the directory
            refuses it).
    """
    try:
        return _write(cap, out, source=source, overwrite=overwrite)
    except FileExistsError as err:
        raise OutputPathError(f"{out} exists", path=out, hint="pass --force to overwrite it") from err
    except IsADirectoryError as err:
        raise OutputPathError(f"{out} is a directory", path=out) from err
    except OSError as err:
        raise OutputPathError(f"cannot write {out}: {err.strerror}", path=out) from err


def _write(cap: Capture, out: str, *, source: str, overwrite: bool) -> SnapshotInfo:
    import json

    created = time.time()
    meta = build_meta(cap, source, created)
    mtime = int(created)
    out_dir = os.path.dirname(os.path.abspath(out)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".snapshot-", suffix=".tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
        ) as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            meta_bytes = json.dumps(meta, indent=2).encode() + b"\n"
            _add(tar, META_NAME, tarfile.REGTYPE, 0o644, mtime, data=meta_bytes)
            _add(tar, TREE_DIR, tarfile.DIRTYPE, 0o755, mtime)
            for e in cap.entries:
                name = f"{TREE_DIR}/{e.path}"
                if e.kind == "dir":
                    _add(tar, name, tarfile.DIRTYPE, 0o755, mtime)
                elif e.kind == "link":
                    _add(tar, name, tarfile.SYMTYPE, 0o777, mtime, target=e.target)
                else:
                    _add(tar, name, tarfile.REGTYPE, e.mode, mtime, data=e.data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an archive is meant to be shared
        if overwrite:
            os.replace(tmp, out)
        else:
            os.link(tmp, out)  # FileExistsError when something took the name during the capture
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return SnapshotInfo(out, os.path.getsize(out), len(cap.entries), meta)


def _add(
    tar: tarfile.TarFile,
    name: str,
    kind: bytes,
    mode: int,
    mtime: int,
    *,
    data: bytes = b"",
    target: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if kind == tarfile.SYMTYPE:
        info.linkname = target
        tar.addfile(info)
    elif kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)
