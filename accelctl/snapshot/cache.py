"""The cache of unpacked snapshots: where entries live, who is using one, and what is removed.

Layout, under :func:`cache_dir`::

    <sha256[:32]>/            one unpacked archive (renamed into place when complete)
        .accelctl-complete    JSON: {"sha256", "disk_bytes"}; absent means "not finished"
        .accelctl-lock        flock'd shared by every process replaying it, exclusive while unpacking
        .accelctl-used        its mtime is the last use (touched on every replay)
        snapshot.json, sysfs/
    .unpack-*/                an unpack in progress (its lock held exclusively by the unpacker)
    .trash-*/                 an entry being removed (renamed first, so no reader sees half of it)

Bounds: entries unused for :data:`MAX_AGE_DAYS` days are removed, then the least recently used
until the cache fits :func:`max_bytes` (``$ACCELCTL_SNAPSHOT_CACHE_MB``, default 1024). An entry
some process is replaying (its lock held) is never removed, nor is the one just unpacked. An
unpack killed half-way (SIGKILL, power loss) leaves a ``.unpack-*`` whose lock nobody holds: the
next replay that unpacks anything removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

#: Environment variable bounding the snapshot cache, in MiB.
CACHE_MB_ENV = "ACCELCTL_SNAPSHOT_CACHE_MB"
DEFAULT_MAX_MB = 1024
MAX_AGE_DAYS = 30

COMPLETE = ".accelctl-complete"
LOCK = ".accelctl-lock"
USED = ".accelctl-used"
UNPACK_PREFIX = ".unpack-"
TRASH_PREFIX = ".trash-"

#: A lock file missing from an unpack directory (a crash between mkdir and creating it) is
#: judged by age: no unpack runs longer than this (the reader's own deadline is shorter).
_UNLOCKED_UNPACK_GRACE_S = 3600

#: Locks this process holds on entries it replays, so no other process evicts them under it.
#: Kept open for the life of the process (one fd per snapshot used).
_held: dict[str, int] = {}


def cache_dir() -> Path:
    """Where unpacked snapshots live (below the one cache root, accelctl.dirs)."""
    from accelctl.dirs import cache_dir as cache_root

    return cache_root("snapshots")


def max_bytes() -> int:
    """The cache bound in bytes ($ACCELCTL_SNAPSHOT_CACHE_MB, else 1024 MiB)."""
    raw = os.environ.get(CACHE_MB_ENV, "").strip()
    try:
        mb = int(raw) if raw else DEFAULT_MAX_MB
    except ValueError:
        mb = DEFAULT_MAX_MB
    return (mb if mb >= 0 else DEFAULT_MAX_MB) << 20


def open_lock(entry: Path, *, create: bool) -> int | None:
    """An fd on the entry's lock file (None when it has none and `create` is False)."""
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    try:
        return os.open(entry / LOCK, flags, 0o600)
    except OSError:
        return None


def hold(entry: Path) -> bool:
    """Mark `entry` in use by this process (a shared lock kept until exit) and record the use.
    False when the entry is not (or no longer) complete."""
    key = str(entry)
    if key in _held:
        _touch(entry)
        return True
    fd = open_lock(entry, create=True)
    if fd is None:
        return False
    fcntl.flock(fd, fcntl.LOCK_SH)
    if not (entry / COMPLETE).is_file():  # evicted between the caller's check and the lock
        os.close(fd)
        return False
    _held[key] = fd
    _touch(entry)
    return True


def keep_held(entry: Path, fd: int) -> None:
    """The unpacker's exclusive lock becomes this process's shared reader lock."""
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held[str(entry)] = fd
    _touch(entry)


def _touch(entry: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(entry / USED, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        os.utime(entry / USED)


def write_marker(entry: Path, digest: str, disk_bytes: int) -> None:
    (entry / COMPLETE).write_text(json.dumps({"sha256": digest, "disk_bytes": disk_bytes}) + "\n")


def _disk_bytes(entry: Path) -> int:
    try:
        doc = json.loads((entry / COMPLETE).read_text())
        return int(doc["disk_bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    # an entry from an older accelctl: measure it once
    total = 0
    for dirpath, dirnames, filenames in os.walk(entry):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def _last_used(entry: Path) -> float:
    for name in (USED, COMPLETE):
        try:
            return os.lstat(entry / name).st_mtime
        except OSError:
            continue
    return 0.0


def _remove(path: Path) -> None:
    """Rename away first (readers see the entry whole or not at all), then delete."""
    trash = path.parent / f"{TRASH_PREFIX}{path.name}-{os.getpid()}"
    try:
        os.rename(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _try_exclusive(entry: Path, *, missing_ok_after: float | None) -> int | None:
    """An exclusive lock on a finished-with entry, or None while anyone uses it.

    `missing_ok_after`: when the entry has no lock file, treat it as unused only if it is older
    than this many seconds (None: never)."""
    fd = open_lock(entry, create=False)
    if fd is None:
        if missing_ok_after is None:
            return None
        try:
            age = time.time() - os.lstat(entry).st_mtime
        except OSError:
            return None
        return -1 if age > missing_ok_after else None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def prune(*, keep: str | None = None, incoming_bytes: int = 0, now: float | None = None) -> list[str]:
    """Remove dead unpacks, old entries, then least recently used ones until the cache and an
    entry of `incoming_bytes` fit the bound. Entries in use and `keep` stay. Names removed."""
    base = cache_dir()
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    entries: list[tuple[float, int, Path]] = []
    for name in names:
        path = base / name
        if name.startswith(TRASH_PREFIX):
            shutil.rmtree(path, ignore_errors=True)  # a removal that was interrupted
            continue
        if name.startswith(UNPACK_PREFIX):
            fd = _try_exclusive(path, missing_ok_after=_UNLOCKED_UNPACK_GRACE_S)
            if fd is not None:
                _remove(path)
                removed.append(name)
                if fd >= 0:
                    os.close(fd)
            continue
        if name == keep or name.startswith(".") or not (path / COMPLETE).is_file():
            continue
        entries.append((_last_used(path), _disk_bytes(path), path))
    limit = max_bytes()
    total = sum(size for _, size, _ in entries) + incoming_bytes
    for used, size, path in sorted(entries, key=lambda e: e[0]):
        too_old = now - used > MAX_AGE_DAYS * 86400
        if not too_old and total <= limit:
            continue
        if str(path) in _held:
            continue
        fd = _try_exclusive(path, missing_ok_after=0)
        if fd is None:
            continue  # another process is replaying it
        _remove(path)
        if fd >= 0:
            os.close(fd)
        removed.append(path.name)
        total -= size
    return removed
