"""Directories only we can write, and files in them opened without following links.

The simulator keeps its sockets, pidfile, log and device memory in a runtime directory. When
that directory sits in a shared place (``/tmp``), another local user can create it first and
plant links in it, so that our next write lands in a file of their choosing, or run a daemon
there that our commands then talk to. So a runtime directory is used only when it is ours:

- every directory on the way to it is owned by root or by us and is not writable by others,
  unless it is sticky (``/tmp``: others cannot rename or delete what we own there); every link
  on the way is owned by root or by us;
- the directory itself is a real directory (not a link), owned by our effective uid, mode 0700.
  One that is ours but readable by others is tightened to 0700; one that is not ours, or that
  others could write (they may have planted entries already), is refused, never repaired.

Files inside are opened with ``O_NOFOLLOW`` (relative to a directory fd where the caller has
one) and must be regular files we own.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from accelctl.errors import UnsafePathError

#: Links followed while checking one path (the kernel's own limit is 40).
_MAX_LINKS = 40
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW


def _refuse(path: Path | str, reason: str) -> UnsafePathError:
    return UnsafePathError(path, reason)


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def _check_ancestors(path: Path) -> None:
    """Every directory and link on the way to ``path`` (not ``path`` itself) is trustworthy."""
    pending = list(Path(os.path.abspath(path)).parent.parts[1:])
    current = Path("/")
    links = 0
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = current.parent
            continue
        candidate = current / name
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            return  # the rest does not exist yet: we create it, as ours
        if stat.S_ISLNK(st.st_mode):
            if not _owner_ok(st):
                raise _refuse(path, f"{candidate} is a link owned by uid {st.st_uid}, who can re-point it")
            links += 1
            if links > _MAX_LINKS:
                raise _refuse(path, "too many levels of links")
            target = os.readlink(candidate)
            pending[:0] = list(Path(target).parts[1:] if target.startswith("/") else Path(target).parts)
            if target.startswith("/"):
                current = Path("/")
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise _refuse(path, f"{candidate} is not a directory")
        if not _owner_ok(st):
            raise _refuse(path, f"{candidate} is owned by uid {st.st_uid}, who can replace what is in it")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise _refuse(path, f"{candidate} is writable by others (mode {stat.S_IMODE(st.st_mode):o}, not sticky)")
        current = candidate


def private_dir(path: str | os.PathLike[str], *, create: bool = True) -> Path:
    """``path`` as a directory only we can use: created (mode 0700) when missing and ``create``,
    then checked as the module says. Returns it; a missing directory with ``create=False`` is
    returned unchecked (there is nothing in it to trust).

    Raises:
        UnsafePathError: the directory (or the way to it) is not ours.
        OSError: it could not be created (no such parent, read-only file system, ...).
    """
    p = Path(os.path.abspath(path))
    _check_ancestors(p)
    if create:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _check_ancestors(p)  # what mkdir made is ours; what raced it in is checked again
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            pass
    try:
        fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | _OPEN_FLAGS)
    except FileNotFoundError:
        if create:
            raise
        return p
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refuse(p, "it is a link or not a directory") from None
        raise
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise _refuse(p, f"it is owned by uid {st.st_uid}, not by us (uid {os.geteuid()})")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022:
            raise _refuse(p, f"others can write it (mode {mode:o}): they may have put links in it")
        if mode != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return p


def open_private_file(name: str | os.PathLike[str], flags: int, *, dir_fd: int | None = None,
                      mode: int = 0o600) -> int:
    """Open a file of a private directory without following a link at its last component; it
    must be a regular file we own. Returns the fd (close-on-exec).

    Raises:
        UnsafePathError: it is a link, not a regular file, or not ours.
        OSError: anything else (missing without O_CREAT, ...).
    """
    try:
        # O_NONBLOCK: a FIFO put in place of the file must not hang the open.
        fd = os.open(name, flags | _OPEN_FLAGS | os.O_NONBLOCK, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(name, "it is a link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(name, "it is not a regular file")
        if st.st_uid != os.geteuid():
            raise _refuse(name, f"it is owned by uid {st.st_uid}, not by us")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_private_file(name: str | os.PathLike[str], *, dir_fd: int | None = None, limit: int = 1 << 16,
                      tail: bool = False) -> bytes:
    """At most ``limit`` bytes of a private file (its last ones with ``tail``); opened as
    :func:`open_private_file` does."""
    fd = open_private_file(name, os.O_RDONLY, dir_fd=dir_fd)
    try:
        if tail:
            size = os.fstat(fd).st_size
            os.lseek(fd, max(0, size - limit), os.SEEK_SET)
        chunks = []
        left = limit
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
