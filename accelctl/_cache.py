"""Where accelctl keeps what it can rebuild (built fixture trees, unpacked snapshots): one place
decides it for every cache."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable overriding the cache root.
CACHE_ENV = "ACCELCTL_CACHE_DIR"


def cache_dir(*parts: str) -> Path:
    """``$ACCELCTL_CACHE_DIR``, else ``$XDG_CACHE_HOME/accelctl``, else ``~/.cache/accelctl``;
    with `parts` joined below it (one folder per kind of cache)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "accelctl"
    return base.joinpath(*parts)
