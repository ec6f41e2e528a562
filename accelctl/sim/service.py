"""Running the device simulator for a fixture: embedded (a thread) or as a separate process.

Everything for one fixture lives in an instance directory under the runtime dir
(``$ACCELCTL_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/accelctl``, else ``$TMPDIR/accelctl-<uid>``
with ``/tmp`` as the default ``$TMPDIR``), keyed by a hash of the realpath of the fixture's sysfs
root. Both directories must be ours alone (``private_dir``: owner, mode 0700, no foreign link or
writable directory on the way); one that is not is refused with UnsafePathError, never used.
Files in them are opened without following links:

    <runtime>/<hash>/daemon.pid     JSON {pid, mode, root, sockets}; flock-held while a daemon lives
    <runtime>/<hash>/<bdf>.sock     one SOCK_SEQPACKET socket per endpoint
    <runtime>/<hash>/state/         device memory (sparse files) + persistent firmware state
    <runtime>/<hash>/daemon.log     stderr of a daemon started in the background

Liveness is the flock on daemon.pid, never ``kill(pid, 0)`` (pid reuse).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelctl.errors import BackendError
from accelctl.sim.private_dir import open_private_file, private_dir, read_private_file

RUNTIME_DIR_ENV = "ACCELCTL_RUNTIME_DIR"
PIDFILE = "daemon.pid"
LOGFILE = "daemon.log"
#: Device-side busy-poll before sleeping, for a daemon in its own process (driver-core.md 2.2 hybrid).
PROCESS_SPIN_US = 50.0
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class SimulatorError(BackendError):
    """The simulator could not be started, reached or stopped."""


@dataclass
class SimulatorStatus:
    running: bool
    instance_dir: str
    root: str
    pid: int | None = None
    mode: str | None = None  # "process" | "embedded"
    sockets: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running, "pid": self.pid, "mode": self.mode, "root": self.root,
            "instance_dir": self.instance_dir, "sockets": dict(sorted(self.sockets.items())),
        }


# --- paths ----------------------------------------------------------------------------------------


def runtime_dir() -> Path:
    """The runtime directory, created if missing and checked to be ours alone.

    Raises:
        UnsafePathError: it (or the way to it) is not private to us: refused, never used.
    """
    return private_dir(_runtime_base())


def _runtime_base() -> Path:
    env = os.environ.get(RUNTIME_DIR_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "accelctl"
    return Path(tempfile.gettempdir()) / f"accelctl-{os.geteuid()}"


def _root_path(root: Any) -> Path:
    path = getattr(root, "path", root)  # a SysfsRoot or a path
    return Path(os.path.realpath(os.fspath(path)))


def instance_key(root: Any) -> str:
    """The name of ``root``'s instance directory inside the runtime dir."""
    return hashlib.sha256(os.fsencode(_root_path(root))).hexdigest()[:16]


def instance_dir(root: Any) -> Path:
    """``root``'s instance directory (not created; checked to be ours when it exists)."""
    return private_dir(runtime_dir() / instance_key(root), create=False)


def socket_path(root: Any, bdf: str) -> Path:
    return instance_dir(root) / f"{bdf}.sock"


def state_dir(root: Any) -> Path:
    return instance_dir(root) / "state"


def _prepare_instance_dir(root: Any) -> Path:
    return private_dir(runtime_dir() / instance_key(root))


# --- the instance lock ------------------------------------------------------------------------------


class _InstanceLock:
    """flock on daemon.pid: held for the daemon's whole life, released by the kernel when it dies."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / PIDFILE
        self.fd = open_private_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            info = _read_pidfile(self.path)
            raise SimulatorError(
                f"a simulator ({info.get('mode', '?')}, pid {info.get('pid', '?')}) already serves this fixture",
                hint="use it, or stop it with 'accelctl sim stop'",
            ) from None

    def publish(self, info: dict[str, Any]) -> None:
        data = json.dumps(info, sort_keys=True).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd >= 0:
            try:
                os.ftruncate(self.fd, 0)
            finally:
                os.close(self.fd)  # drops the flock
                self.fd = -1


def _read_pidfile(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_private_file(path) or b"{}")
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _lock_is_held(path: Path) -> bool:
    try:
        fd = open_private_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# --- building a daemon --------------------------------------------------------------------------------


def _make_daemon(root: Any, *, endpoints: Any = None, faults: Any = None, spin_us: float = 0.0,
                 memory_cap: int | None = None, die_by_signal: bool = False) -> Any:
    from accelctl.sim.device import DEFAULT_MEMORY_CAP, DeviceDaemon, endpoints_from_sysfs_root

    if endpoints is None:
        endpoints = endpoints_from_sysfs_root(_root_path(root), memory_cap=memory_cap or DEFAULT_MEMORY_CAP)
    if not endpoints:
        raise SimulatorError(f"no accelerator endpoints under {_root_path(root)}")
    d = instance_dir(root)
    return DeviceDaemon(endpoints, d, state_dir=d / "state", faults=faults, spin_us=spin_us,
                        die_by_signal=die_by_signal)


def _info(root: Any, daemon: Any, mode: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(), "mode": mode, "root": str(_root_path(root)),
        "sockets": {bdf: str(ep.socket_path) for bdf, ep in daemon.endpoints.items()},
    }


class EmbeddedSimulator:
    """A daemon running in a thread of this process. Context manager; ``stop()`` is idempotent."""

    def __init__(self, root: Any, daemon: Any, lock: _InstanceLock | None) -> None:
        self.root = _root_path(root)
        self.daemon = daemon
        self._lock = lock
        self._stopped = False

    @property
    def endpoints(self) -> list[str]:
        return list(self.daemon.endpoints)

    def socket_path(self, bdf: str) -> Path:
        return self.daemon.endpoints[str(bdf)].socket_path

    def introspect(self) -> dict[str, Any]:
        return self.daemon.introspect()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.daemon.stop()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> EmbeddedSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_embedded(root: Any, *, endpoints: Any = None, faults: Any = None, spin_us: float = 0.0,
                   memory_cap: int | None = None) -> EmbeddedSimulator:
    """Start a daemon for ``root`` in a thread of this process (no set-up needed).

    ``endpoints`` (a list of EndpointConfig) overrides discovery from the sysfs tree.
    Raises SimulatorError when another daemon already serves this fixture.
    """
    d = _prepare_instance_dir(root)
    lock = _InstanceLock(d)
    try:
        daemon = _make_daemon(root, endpoints=endpoints, faults=faults, spin_us=spin_us, memory_cap=memory_cap)
        daemon.start_thread()
        lock.publish(_info(root, daemon, "embedded"))
    except BaseException:
        lock.release()
        raise
    return EmbeddedSimulator(root, daemon, lock)


def serve(root: Any, *, faults: Any = None, spin_us: float = PROCESS_SPIN_US, memory_cap: int | None = None,
          ready: threading.Event | None = None) -> None:
    """Run the daemon in this thread until SIGTERM / SIGINT (the foreground of ``accelctl sim serve``)."""
    d = _prepare_instance_dir(root)
    lock = _InstanceLock(d)
    try:
        daemon = _make_daemon(root, faults=faults, spin_us=spin_us, memory_cap=memory_cap, die_by_signal=True)
        daemon.start()
        lock.publish(_info(root, daemon, "process"))
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: daemon.stop())
        # A spinning engine thread holds the GIL; keep the control loop's wait for it short.
        old_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        if ready is not None:
            ready.set()
        try:
            daemon.run()
        finally:
            sys.setswitchinterval(old_interval)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        lock.release()


def start_process(root: Any, *, faults: list[dict[str, Any]] | None = None, spin_us: float = PROCESS_SPIN_US,
                  memory_cap: int | None = None, timeout: float = START_TIMEOUT_S) -> SimulatorStatus:
    """Start ``python -m accelctl.sim.device`` for ``root`` in the background; wait until it serves."""
    d = _prepare_instance_dir(root)
    if _lock_is_held(d / PIDFILE):
        raise SimulatorError("a simulator already serves this fixture", hint="'accelctl sim stop' first")
    cmd = [sys.executable, "-m", "accelctl.sim.device", "--sysfs-root", str(_root_path(root)),
           "--spin-us", str(spin_us)]
    if memory_cap:
        cmd += ["--memory-cap", str(memory_cap)]
    for spec in faults or ():
        cmd += ["--fault", json.dumps(spec)]
    log = open_private_file(d / LOGFILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # handed to the child
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": _pythonpath()})
    finally:
        os.close(log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(root)
        if st.running and st.pid == proc.pid and st.sockets and all(Path(p).exists() for p in st.sockets.values()):
            return st
        if proc.poll() is not None:
            tail = read_private_file(d / LOGFILE, limit=2000, tail=True).decode(errors="replace")
            raise SimulatorError(f"simulator exited with status {proc.returncode}: {tail.strip()}")
        time.sleep(0.02)
    proc.kill()
    raise SimulatorError(f"simulator did not start within {timeout:.0f} s")


def _pythonpath() -> str:
    # The child must import the same accelctl as this process (source checkouts included).
    here = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH")
    return here if not existing else f"{here}{os.pathsep}{existing}"


def status(root: Any) -> SimulatorStatus:
    d = instance_dir(root)
    pidfile = d / PIDFILE
    if not _lock_is_held(pidfile):
        return SimulatorStatus(False, str(d), str(_root_path(root)))
    info = _read_pidfile(pidfile)
    return SimulatorStatus(True, str(d), str(_root_path(root)), info.get("pid"), info.get("mode"),
                           dict(info.get("sockets") or {}))


def stop(root: Any, *, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop a background daemon for ``root``. False when none was running.

    Raises SimulatorError for an embedded daemon of another process (that process owns it)."""
    st = status(root)
    if not st.running or st.pid is None:
        return False
    if st.mode != "process":
        raise SimulatorError(f"the simulator is embedded in process {st.pid}; it stops when that process ends")
    pidfile = instance_dir(root) / PIDFILE
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(st.pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _lock_is_held(pidfile):
                return True
            time.sleep(0.02)
    raise SimulatorError(f"simulator pid {st.pid} did not stop")


def ensure_running(root: Any, **kwargs: Any) -> SimulatorStatus:
    """A daemon for ``root`` serving: the one already there, else a new background process."""
    st = status(root)
    if st.running:
        return st
    try:
        return start_process(root, **kwargs)
    except SimulatorError:
        st = status(root)  # lost a start race against another command: use the winner
        if st.running:
            return st
        raise


@contextmanager
def use_simulator(root: Any, **kwargs: Any) -> Iterator[dict[str, Path]]:
    """Socket paths of a simulator for ``root`` for the duration of a block: the running daemon if
    there is one, else an embedded one started (and stopped) here. For one-shot CLI commands."""
    st = status(root)
    if st.running:
        yield {bdf: Path(p) for bdf, p in st.sockets.items()}
        return
    try:
        sim = start_embedded(root, **kwargs)
    except SimulatorError:
        st = status(root)
        if not st.running:
            raise
        yield {bdf: Path(p) for bdf, p in st.sockets.items()}
        return
    with sim:
        yield {bdf: sim.socket_path(bdf) for bdf in sim.endpoints}
