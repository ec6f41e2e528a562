"""Writing files that others read while we write them (metrics, state): atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_text_atomically(path: str | os.PathLike[str], text: str, *, mode: int = 0o644) -> None:
    """Replace `path` with `text` so a reader never sees a half-written file, and a crash leaves
    either the old or the new content: a temporary file in the same directory, fsync, rename over
    the target, fsync the directory (so the rename itself survives).

    Raises:
        OSError: the directory is not writable, the disk is full, ... (the temporary file is gone).
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
