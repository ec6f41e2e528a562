"""Take a snapshot archive back: unpack it (once, into a cache keyed by its hash) and return
the directory that stands in for /sys.

The archive may come from anywhere (a customer's machine, an email), so extraction trusts
nothing. It is read twice from one open file: first to check everything without writing a
byte (sizes, counts, names, member kinds, and where every symlink resolves; see
accelctl.snapshot.layout and accelctl.snapshot.tarstream), then to write, checking it all again
(the file may change between the two reads). Files are written by hand with
``O_EXCL|O_NOFOLLOW`` rather than with TarFile.extractall, so those rules are the only rules (and
a mode-000 file, which records "permission denied" on the source machine, stays 000). The
cache is bounded and cleaned (accelctl.snapshot.cache).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from accelctl.errors import SnapshotError
from accelctl.snapshot import cache
from accelctl.snapshot.layout import META_NAME, TREE_DIR, LayoutError, LayoutLimits, SnapshotLayout
from accelctl.snapshot.tarstream import DIR, FILE, LINK, TarLimitError, TarLimits, iter_members, open_decompressed

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

#: Disk a member takes beyond its data (an inode's block; sysfs files are small).
_BLOCK_BYTES = 4096

Progress = Callable[[str], None]


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


def snapshot_tree(
    path: str | os.PathLike[str],
    *,
    tar_limits: TarLimits = TarLimits(),
    layout_limits: LayoutLimits = LayoutLimits(),
    progress: Progress | None = None,
) -> Path:
    """The sysfs directory of a snapshot archive (unpacked on first use) or of an unpacked one.

    `progress` is told, in a sentence, when a long unpack starts and ends.

    Raises:
        SnapshotError: the archive is unreadable, damaged, truncated, too large or unsafe.
    """
    p = Path(path)
    if p.is_dir():
        return p / TREE_DIR
    with _open_archive(p) as raw:
        digest = _hash(raw, p)
        entry = cache.cache_dir() / digest[:32]
        if (entry / cache.COMPLETE).is_file() and cache.hold(entry):
            return entry / TREE_DIR
        raw.seek(0)
        layout = _read(raw, p, tar_limits, layout_limits, None)
        disk = layout.entries * _BLOCK_BYTES + layout.file_bytes
        entry.parent.mkdir(parents=True, exist_ok=True)
        cache.prune(keep=entry.name, incoming_bytes=disk)
        if progress is not None:
            progress(f"unpacking snapshot {p.name}: {layout.entries} entries (once; cached in {entry.parent})")
        raw.seek(0)
        _unpack(raw, p, digest, entry, disk, tar_limits, layout_limits)
    return entry / TREE_DIR


def is_unpacked_snapshot(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return (p / META_NAME).is_file() and (p / TREE_DIR).is_dir()


class _open_archive:
    """The archive opened once (both reads use this one file); a regular file only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> BinaryIO:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as err:
            raise SnapshotError(f"cannot read the archive: {err.strerror}", path=self.path) from err
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SnapshotError("the archive is not a regular file", path=self.path)
        self.file = os.fdopen(fd, "rb")
        return self.file

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def _hash(raw: BinaryIO, path: Path) -> str:
    h = hashlib.sha256()
    try:
        for block in iter(lambda: raw.read(1 << 20), b""):
            h.update(block)
    except OSError as err:
        raise SnapshotError(f"cannot read the archive: {err.strerror}", path=path) from err
    return h.hexdigest()


class _HashingReader:
    """Hashes what the decompressor reads, so the write pass knows it saw the hashed bytes."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # only ever a rewind to the start (after sniffing the compression): hash from there
        if (offset, whence) != (0, os.SEEK_SET):
            raise OSError("the archive reader only rewinds")
        self.sha = hashlib.sha256()
        return self.raw.seek(0)

    def digest_to_end(self) -> str:
        for block in iter(lambda: self.raw.read(1 << 20), b""):
            self.sha.update(block)
        return self.sha.hexdigest()


def _read(
    raw: BinaryIO,
    path: Path,
    tar_limits: TarLimits,
    layout_limits: LayoutLimits,
    writer: _Writer | None,
) -> SnapshotLayout:
    """One pass over the archive: every check, and with a writer, every write."""
    layout = SnapshotLayout(layout_limits)
    try:
        stream = open_decompressed(raw)  # type: ignore[arg-type]
        for m in iter_members(stream, tar_limits):
            name = layout.add(m)
            if writer is not None:
                writer.write(name, m.kind, m.mode, m.data, m.linkname)
        layout.finish()
    except (TarLimitError, LayoutError) as err:
        raise SnapshotError(f"not a usable snapshot archive: {err}", path=path) from err
    except OSError as err:
        raise SnapshotError(f"cannot unpack the archive: {err.strerror or err}", path=path) from err
    return layout


class _Writer:
    """Creates members relative to an open fd of their directory: archives are sorted, so one
    directory's members come together, and the kernel then walks each (deep) path once per
    directory instead of once per member."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.made: set[str] = {""}
        self.dir_name: str | None = None
        self.dir_fd = -1

    def write(self, name: str, kind: str, mode: int, data: bytes, target: str) -> None:
        # the layout has checked that no parent is a link or a file, so every path stays inside
        parent, _, leaf = name.rpartition("/")
        if kind == DIR:
            self._makedirs(name)
            return
        dfd = self._open_dir(parent)
        if kind == LINK:
            os.symlink(target, leaf, dir_fd=dfd)
        elif kind == FILE:
            # O_EXCL|O_NOFOLLOW: never write through something already there
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(leaf, flags, 0o600, dir_fd=dfd)
            try:
                os.write(fd, data)
                os.fchmod(fd, mode & 0o777 & ~0o022)
            finally:
                os.close(fd)

    def _makedirs(self, name: str) -> None:
        if name in self.made:
            return
        parent = name.rpartition("/")[0]
        self._makedirs(parent)
        try:
            os.mkdir(os.path.join(self.base, name), 0o755)
        except FileExistsError:
            pass
        self.made.add(name)

    def _open_dir(self, name: str) -> int:
        if name != self.dir_name:
            self._makedirs(name)
            self.close()
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            self.dir_fd = os.open(os.path.join(self.base, name), flags)
            self.dir_name = name
        return self.dir_fd

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1
            self.dir_name = None


def _unpack(
    raw: BinaryIO,
    path: Path,
    digest: str,
    entry: Path,
    disk: int,
    tar_limits: TarLimits,
    layout_limits: LayoutLimits,
) -> None:
    """Write the archive into a locked temporary directory and rename it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=cache.UNPACK_PREFIX, dir=entry.parent))
    lock = cache.open_lock(tmp, create=True)
    if lock is None:
        cache.prune()
        raise SnapshotError(f"cannot write the snapshot cache in {entry.parent}", path=path)
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        hashing = _HashingReader(raw)
        writer = _Writer(str(tmp))
        try:
            _read(hashing, path, tar_limits, layout_limits, writer)  # type: ignore[arg-type]
        finally:
            writer.close()
        if hashing.digest_to_end() != digest:
            raise SnapshotError("the archive changed while it was being read", path=path)
        cache.write_marker(tmp, digest, disk)
        try:
            os.rename(tmp, entry)
        except OSError:
            # another process unpacked the same archive at the same time: use theirs
            if not ((entry / cache.COMPLETE).is_file() and cache.hold(entry)):
                raise
            os.close(lock)
            lock = None
            _discard(tmp)
            return
        cache.keep_held(entry, lock)
        lock = None
    except BaseException:
        _discard(tmp)
        raise
    finally:
        if lock is not None:
            os.close(lock)


def _discard(tmp: Path) -> None:
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
