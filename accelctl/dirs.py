"""Where accelctl keeps its files: the one place each directory is computed.

=============  ==========================================================================  =========================
directory      what lives there                                                            where
=============  ==========================================================================  =========================
cache          rebuildable data: built bundled fixtures (``fixtures/``), unpacked           ``$ACCELCTL_CACHE_DIR``, else
               snapshot archives (``snapshots/``); deleting it costs only time              ``$XDG_CACHE_HOME/accelctl``,
                                                                                           else ``~/.cache/accelctl``
runtime        running simulators: one instance directory per fixture tree with its        ``$ACCELCTL_RUNTIME_DIR``, else
               pidfile, sockets, log and device state (accelctl.sim.service)               ``$XDG_RUNTIME_DIR/accelctl``, else
                                                                                           ``$TMPDIR/accelctl-<uid>``
state          what must survive a reboot: the address map (accelctl.addressing.state)     ``--state-dir``, else
                                                                                           ``$ACCELCTL_STATE_DIR``, else
                                                                                           ``/var/lib/accelctl``
=============  ==========================================================================  =========================

These functions only compute paths: they create nothing and check nothing. The owner of each
directory does that (the runtime directory must be private: accelctl.sim.private_dir).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

CACHE_DIR_ENV = "ACCELCTL_CACHE_DIR"
RUNTIME_DIR_ENV = "ACCELCTL_RUNTIME_DIR"
STATE_DIR_ENV = "ACCELCTL_STATE_DIR"
DEFAULT_STATE_DIR = "/var/lib/accelctl"


def cache_dir(*parts: str) -> Path:
    """The cache directory, with ``parts`` joined below it (one folder per kind of cache)."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) / "accelctl" if xdg else Path(os.path.expanduser("~")) / ".cache" / "accelctl"
    return base.joinpath(*parts)


def runtime_dir() -> Path:
    """The runtime directory of running simulators (not checked: see accelctl.sim.service)."""
    env = os.environ.get(RUNTIME_DIR_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "accelctl"
    return Path(tempfile.gettempdir()) / f"accelctl-{os.geteuid()}"


def state_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: ``option`` (a --state-dir flag), else $ACCELCTL_STATE_DIR, else /var/lib/accelctl."""
    return Path(option or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)
