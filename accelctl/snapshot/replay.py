"""Take a snapshot archive back: unpack it (once, into a cache keyed by its hash) and return
the directory that stands in for /sys.

The archive may come from anywhere (a customer's machine, an email), so extraction trusts
nothing: only directories, regular files and relative symlinks; no absolute names, no ``..``,
no member below a symlink, no link that resolves outside the tree; bounded sizes. Files are
written by hand rather than with TarFile.extractall so the rules above are the only rules (and
so a mode-000 file, which records "permission denied" on the source machine, stays 000).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path

from accelctl.dirs import cache_dir
from accelctl.errors import SnapshotError
from accelctl.snapshot.archive import META_NAME, TREE_DIR

_COMPLETE = ".accelctl-complete"

MAX_MEMBERS = 2_000_000
MAX_MEMBER_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def looks_like_archive(path: str | os.PathLike[str]) -> bool:
    """A regular file with an archive suffix, or any regular file tarfile recognises."""
    p = str(path)
    if not os.path.isfile(p):
        return False
    if p.endswith(ARCHIVE_SUFFIXES):
        return True
    try:
        return tarfile.is_tarfile(p)
    except OSError:
        return False


def snapshot_tree(path: str | os.PathLike[str]) -> Path:
    """The sysfs directory of a snapshot archive (unpacked on first use) or of an unpacked one.

    Raises:
        SnapshotError: the archive is unreadable, corrupt or unsafe.
    """
    p = Path(path)
    if p.is_dir():
        return p / TREE_DIR
    digest = _hash(p)
    final = cache_dir("snapshots") / digest[:32]
    if (final / _COMPLETE).exists():
        return final / TREE_DIR
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=final.parent))
    try:
        _extract(p, tmp)
        (tmp / _COMPLETE).write_text(digest + "\n")
        try:
            os.rename(tmp, final)
        except OSError:
            # another process unpacked the same archive at the same time: use theirs
            if not (final / _COMPLETE).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / TREE_DIR


def is_unpacked_snapshot(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return (p / META_NAME).is_file() and (p / TREE_DIR).is_dir()


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as err:
        raise SnapshotError(f"cannot read the archive: {err.strerror}", path=path) from err
    return h.hexdigest()


def _check_name(name: str, links: set[str], path: Path) -> str:
    if not name or "\x00" in name or name.startswith("/") or "\\" in name:
        raise SnapshotError(f"unsafe member name {name!r}", path=path)
    norm = posixpath.normpath(name)
    parts = norm.split("/")
    if norm.startswith("..") or ".." in parts or norm == ".":
        raise SnapshotError(f"member {name!r} escapes the archive", path=path)
    if parts[0] not in (TREE_DIR, META_NAME):
        raise SnapshotError(f"unexpected member {name!r} (not an accelctl snapshot?)", path=path)
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in links:
            raise SnapshotError(f"member {name!r} lies below a symlink", path=path)
    return norm


def _check_link(name: str, target: str, path: Path) -> None:
    if not target or target.startswith("/") or "\x00" in target:
        raise SnapshotError(f"link {name!r} -> {target!r} is absolute or empty", path=path)
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved != TREE_DIR and not resolved.startswith(TREE_DIR + "/"):
        raise SnapshotError(f"link {name!r} -> {target!r} points outside the tree", path=path)


def _extract(archive: Path, dest: Path) -> None:
    try:
        # stream mode ("r|*"): members are read in order; random access into a gzip stream would
        # re-decompress from the start for every file (minutes for the 80k-entry scale fixture)
        tar = tarfile.open(archive, mode="r|*")
    except (tarfile.TarError, OSError) as err:
        raise SnapshotError(f"not a readable snapshot archive ({err})", path=archive) from err
    links: set[str] = set()
    seen: set[str] = set()
    total = 0
    count = 0
    base = str(dest)
    try:
        with tar:
            for m in tar:
                count += 1
                if count > MAX_MEMBERS:
                    raise SnapshotError(f"more than {MAX_MEMBERS} members", path=archive)
                name = _check_name(m.name, links, archive)
                if name in seen:
                    raise SnapshotError(f"member {name!r} appears twice", path=archive)
                seen.add(name)
                out = os.path.join(base, *name.split("/"))
                if m.isdir():
                    os.makedirs(out, mode=0o755, exist_ok=True)
                elif m.issym():
                    _check_link(name, m.linkname, archive)
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    os.symlink(m.linkname, out)
                    links.add(name)
                elif m.isreg():
                    if m.size > MAX_MEMBER_BYTES:
                        raise SnapshotError(f"member {name!r} is {m.size} bytes", path=archive)
                    total += m.size
                    if total > MAX_TOTAL_BYTES:
                        raise SnapshotError("archive unpacks to more than 1 GiB", path=archive)
                    src = tar.extractfile(m)
                    data = src.read(MAX_MEMBER_BYTES + 1) if src is not None else b""
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    # O_EXCL|O_NOFOLLOW: never write through something already there
                    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                    try:
                        os.write(fd, data)
                    finally:
                        os.close(fd)
                    os.chmod(out, m.mode & 0o777 & ~0o022)
                else:
                    raise SnapshotError(
                        f"member {name!r} is not a file, directory or symlink", path=archive
                    )
    except (tarfile.TarError, EOFError, OSError) as err:
        raise SnapshotError(f"corrupt snapshot archive ({err})", path=archive) from err
    if TREE_DIR not in seen:
        raise SnapshotError("no sysfs/ tree in the archive (not an accelctl snapshot?)", path=archive)
