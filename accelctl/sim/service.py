"""Running the device simulator for a fixture: embedded (a thread) or as a separate process.

Everything for one fixture lives in an instance directory under the runtime dir
(``$ACCELCTL_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/accelctl``, else ``$TMPDIR/accelctl-<uid>``
with ``/tmp`` as the default ``$TMPDIR``), keyed by a hash of the realpath of the fixture's sysfs
root. Both directories must be ours alone (``private_dir``: owner, mode 0700, no foreign link or
writable directory on the way); one that is not is refused with UnsafePathError, never used.
Files in them are opened without following links:

    <runtime>/<hash>/daemon.pid     JSON {pid, mode, root, sockets, idle_exit_s, started_at};
                                    flock-held while a daemon lives
    <runtime>/<hash>/<bdf>.sock     one SOCK_SEQPACKET socket per endpoint
    <runtime>/<hash>/state/         device memory (sparse files) + persistent firmware state
    <runtime>/<hash>/daemon.log     stderr of a daemon started in the background

Liveness is the flock on daemon.pid, never ``kill(pid, 0)`` (pid reuse).

Three ways a daemon runs (``SimulatorStatus.started_by``): ``on-demand`` (a command needed a
device; a background process shared by every command, exits after ``idle_exit_s`` without a
client), ``serve`` (`accelctl sim serve`: runs until `accelctl sim stop`; a `sim serve` while an
on-demand daemon runs adopts it: SIGUSR1 turns its idle exit off) and ``embedded`` (a thread of a
program that owns it: it ends with that program, nothing else stops it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelctl import dirs
from accelctl.errors import BackendError
from accelctl.sim.private_dir import open_private_file, private_dir, read_private_file

RUNTIME_DIR_ENV = dirs.RUNTIME_DIR_ENV
PIDFILE = "daemon.pid"
LOGFILE = "daemon.log"
#: Device-side busy-poll before sleeping, for a daemon in its own process (driver-core.md 2.2 hybrid).
PROCESS_SPIN_US = 50.0
#: A daemon a command started on demand exits after this long with no client connected (a
#: daemon started with `accelctl sim serve` runs until `accelctl sim stop`).
IDLE_EXIT_ENV = "ACCELCTL_SIM_IDLE_EXIT_S"
DEFAULT_IDLE_EXIT_S = 600.0
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class SimulatorError(BackendError):
    """The simulator could not be started, reached or stopped."""


class SimulatorRunningError(SimulatorError):
    """A simulator already serves this tree; ``status`` says which (its pid, how it was started)."""

    def __init__(self, message: str, *, status: SimulatorStatus, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


@dataclass
class SimulatorStatus:
    running: bool
    instance_dir: str
    root: str
    pid: int | None = None
    mode: str | None = None  # "process" | "embedded"
    sockets: dict[str, str] = field(default_factory=dict)
    #: Seconds without a client before it exits; None: it runs until stopped (or its program ends).
    idle_exit_s: float | None = None
    #: When it started (seconds since the epoch).
    started_at: float | None = None
    #: The bundled fixture ``root`` is the tree of (None for any other directory).
    fixture: str | None = None

    @property
    def started_by(self) -> str | None:
        """``on-demand`` (a command; exits when idle), ``serve`` (runs until `sim stop`) or
        ``embedded`` (a thread of the program that owns it); None when not running."""
        if not self.running:
            return None
        if self.mode == "embedded":
            return "embedded"
        return "on-demand" if self.idle_exit_s is not None else "serve"

    def describe(self) -> str:
        """Who runs it and until when, in words (for messages)."""
        if self.started_by == "embedded":
            return f"embedded in process {self.pid}; it ends with that process"
        if self.started_by == "on-demand":
            return f"pid {self.pid}, started on demand by a command; it exits after {self.idle_exit_s:g} s without a client"
        return f"pid {self.pid}, started by 'accelctl sim serve'; it runs until stopped"

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running, "pid": self.pid, "mode": self.mode, "started_by": self.started_by,
            "idle_exit_s": self.idle_exit_s, "started_at": self.started_at, "fixture": self.fixture, "root": self.root,
            "instance_dir": self.instance_dir, "sockets": dict(sorted(self.sockets.items())),
        }


# --- paths ----------------------------------------------------------------------------------------


def runtime_dir() -> Path:
    """The runtime directory, created if missing and checked to be ours alone.

    Raises:
        UnsafePathError: it (or the way to it) is not private to us: refused, never used.
    """
    return private_dir(dirs.runtime_dir())


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

    def __init__(self, directory: Path, root: Any) -> None:
        self.path = directory / PIDFILE
        self.fd = open_private_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise _already_running(_status_of(directory, str(_root_path(root)))) from None

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


def _already_running(st: SimulatorStatus) -> SimulatorRunningError:
    return SimulatorRunningError(
        f"a simulator already serves {st.fixture or st.root} ({st.describe()})", status=st,
        hint=f"it ends with process {st.pid}; stop that program, or use the simulator it serves"
        if st.started_by == "embedded" else f"use it as it is, or stop it first: {stop_command(st.root)}",
    )


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


def _make_daemon(root: Any, endpoints: list[Any], *, faults: Any = None, spin_us: float = 0.0,
                 die_by_signal: bool = False) -> Any:
    from accelctl.sim.device import DeviceDaemon

    if not endpoints:
        raise SimulatorError(f"no accelerator endpoints to serve under {_root_path(root)}")
    d = instance_dir(root)
    return DeviceDaemon(endpoints, d, state_dir=d / "state", faults=expand_faults(endpoints, faults),
                        spin_us=spin_us, die_by_signal=die_by_signal)


def expand_faults(endpoints: list[Any], faults: Any) -> Any:
    """Fault specs for the daemon: {bdf: [FaultSpec]} as given, or a list of JSON-style dicts
    (each optionally naming its "bdf"; without one it applies to every endpoint)."""
    if not faults or isinstance(faults, dict):
        return faults or None
    from accelctl.sim.device import FaultSpec

    bdfs = [e.bdf for e in endpoints]
    out: dict[str, list[Any]] = {bdf: [] for bdf in bdfs}
    for spec in faults:
        spec = dict(spec)
        target = spec.pop("bdf", None)
        for bdf in [target] if target else bdfs:
            out.setdefault(bdf, []).append(FaultSpec.from_dict(dict(spec)))
    return out


def _info(root: Any, daemon: Any, mode: str, idle_exit_s: float | None = None) -> dict[str, Any]:
    return {
        "pid": os.getpid(), "mode": mode, "root": str(_root_path(root)),
        "sockets": {bdf: str(ep.socket_path) for bdf, ep in daemon.endpoints.items()},
        "idle_exit_s": idle_exit_s, "started_at": round(time.time(), 3),
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


def start_embedded(root: Any, endpoints: list[Any], *, faults: Any = None,
                   spin_us: float = 0.0) -> EmbeddedSimulator:
    """Start a daemon for ``root`` serving ``endpoints`` (EndpointConfig) in a thread of this
    process. For tests and programs that own the simulator's lifetime; commands share a
    background process instead (`ensure_running`).

    Raises SimulatorError when another daemon already serves this fixture.
    """
    d = _prepare_instance_dir(root)
    lock = _InstanceLock(d, root)
    try:
        daemon = _make_daemon(root, endpoints, faults=faults, spin_us=spin_us)
        daemon.start_thread()
        lock.publish(_info(root, daemon, "embedded"))
    except BaseException:
        lock.release()
        raise
    return EmbeddedSimulator(root, daemon, lock)


def serve(root: Any, endpoints: list[Any], *, faults: Any = None, spin_us: float = PROCESS_SPIN_US,
          idle_exit_s: float | None = None, ready: threading.Event | None = None) -> None:
    """Run the daemon in this thread until SIGTERM / SIGINT (the foreground of ``accelctl sim serve``)."""
    d = _prepare_instance_dir(root)
    lock = _InstanceLock(d, root)
    try:
        daemon = _make_daemon(root, endpoints, faults=faults, spin_us=spin_us, die_by_signal=True)
        daemon.start()
        info = _info(root, daemon, "process", idle_exit_s)
        idle = _IdleExit(idle_exit_s)

        def keep_running(*_: object) -> None:
            # `sim serve` adopted this on-demand daemon: no idle exit any more, and say so.
            idle.seconds = None
            lock.publish({**info, "idle_exit_s": None, "adoptable": False})

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: daemon.stop())
            previous[KEEP_RUNNING_SIGNAL] = signal.signal(KEEP_RUNNING_SIGNAL, keep_running)
        # Only a daemon that handles the signal may be sent it (its default action is to exit).
        info["adoptable"] = KEEP_RUNNING_SIGNAL in previous and idle_exit_s is not None
        lock.publish(info)
        # A spinning engine thread holds the GIL; keep the control loop's wait for it short.
        old_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        if ready is not None:
            ready.set()
        if idle_exit_s is not None:
            threading.Thread(target=_exit_when_idle, args=(daemon, idle), daemon=True,
                             name="accelsim-idle").start()
        try:
            daemon.run()
        finally:
            sys.setswitchinterval(old_interval)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        lock.release()


@dataclass
class _IdleExit:
    #: None: never (turned off by KEEP_RUNNING_SIGNAL).
    seconds: float | None


#: Sent by `sim serve` to an on-demand daemon it adopts: run until stopped.
KEEP_RUNNING_SIGNAL = signal.SIGUSR1


def _exit_when_idle(daemon: Any, idle: _IdleExit) -> None:
    """Stop `daemon` once no client has been connected for `idle.seconds` seconds."""
    idle_since = time.monotonic()
    while not daemon._stopping:
        idle_s = idle.seconds
        if idle_s is None:
            return
        if any(ep.connections for ep in list(daemon.endpoints.values())):
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= idle_s:
            daemon.stop()
            return
        time.sleep(min(1.0, max(0.05, idle_s / 10)))


def start_process(root: Any, endpoints: list[Any], *, faults: list[dict[str, Any]] | None = None,
                  spin_us: float = PROCESS_SPIN_US, idle_exit_s: float | None = None,
                  timeout: float = START_TIMEOUT_S) -> SimulatorStatus:
    """Start ``python -m accelctl.sim.device`` for ``root`` in the background, serving
    ``endpoints`` (EndpointConfig; handed over on the child's stdin, so the simulator never
    scans the tree itself); wait until it serves."""
    from accelctl.sim.device.config import endpoints_to_json

    d = _prepare_instance_dir(root)
    if _lock_is_held(d / PIDFILE):
        raise _already_running(_status_of(d))
    if not endpoints:
        raise SimulatorError(f"no accelerator endpoints to serve under {_root_path(root)}")
    cmd = [sys.executable, "-m", "accelctl.sim.device", "--sysfs-root", str(_root_path(root)),
           "--endpoints", "-", "--spin-us", str(spin_us)]
    if idle_exit_s is not None:
        cmd += ["--idle-exit", str(idle_exit_s)]
    for spec in faults or ():
        cmd += ["--fault", json.dumps(spec)]
    log = open_private_file(d / LOGFILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # handed to the child
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": _pythonpath()})
    finally:
        os.close(log)
    assert proc.stdin is not None
    try:
        proc.stdin.write(endpoints_to_json(endpoints).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it exited already; the loop below reports why
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
    return _status_of(instance_dir(root), str(_root_path(root)))


def _status_of(d: Path, root: str | None = None) -> SimulatorStatus:
    """The simulator of instance directory ``d`` (``root``: the tree it is for, when known)."""
    pidfile = d / PIDFILE
    if not _lock_is_held(pidfile):
        return SimulatorStatus(False, str(d), root or "")
    info = _read_pidfile(pidfile)
    idle = info.get("idle_exit_s")
    started = info.get("started_at")
    root = root or str(info.get("root") or "")
    return SimulatorStatus(
        True, str(d), root, info.get("pid"), info.get("mode"), dict(info.get("sockets") or {}),
        idle_exit_s=float(idle) if isinstance(idle, (int, float)) else None,
        started_at=float(started) if isinstance(started, (int, float)) else None,
        fixture=_fixture_of(root),
    )


def stop_command(root: Any) -> str:
    """The command that stops ``root``'s simulator, spelled so a user can paste it."""
    import shlex

    path = str(_root_path(root))
    fixture = _fixture_of(path)
    if fixture is not None:
        return f"accelctl sim stop --fixture {shlex.quote(fixture)}"
    return f"accelctl sim stop --sysfs-root {shlex.quote(path)}"


def _fixture_of(root: str) -> str | None:
    from accelctl.sim.fixture.bundled import bundled_fixture_of

    try:
        return bundled_fixture_of(root) if root else None
    except OSError:
        return None


def running() -> list[SimulatorStatus]:
    """Every simulator running in the runtime directory (one per tree), sorted by root."""
    found = []
    for entry in sorted(runtime_dir().iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            continue
        st = _status_of(entry)
        if st.running:
            found.append(st)
    return sorted(found, key=lambda st: st.root)


def stop(root: Any, *, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop a background daemon for ``root``. False when none was running.

    Raises SimulatorError for an embedded daemon of another process (that process owns it)."""
    return _stop(status(root), timeout=timeout)


def stop_all(*, timeout: float = STOP_TIMEOUT_S) -> list[tuple[SimulatorStatus, bool]]:
    """Stop every background simulator; embedded ones are left to their programs. Returns each
    simulator found and whether it was stopped (False: embedded, or it had stopped already)."""
    out = []
    for st in running():
        out.append((st, st.started_by != "embedded" and _stop(st, timeout=timeout)))
    return out


def _stop(st: SimulatorStatus, *, timeout: float) -> bool:
    if not st.running or st.pid is None:
        return False
    if st.mode != "process":
        raise SimulatorError(f"the simulator of {st.root} is {st.describe()}",
                             hint="stop the program that embeds it")
    pidfile = Path(st.instance_dir) / PIDFILE
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


def idle_exit_seconds() -> float:
    """How long a daemon started on demand waits, unused, before it exits ($ACCELCTL_SIM_IDLE_EXIT_S)."""
    try:
        value = float(os.environ.get(IDLE_EXIT_ENV) or DEFAULT_IDLE_EXIT_S)
    except ValueError:
        return DEFAULT_IDLE_EXIT_S
    return value if value > 0 else DEFAULT_IDLE_EXIT_S


def keep_running(root: Any, *, timeout: float = START_TIMEOUT_S) -> SimulatorStatus:
    """Adopt the on-demand daemon of ``root`` as a served one: its idle exit is turned off
    (`sim serve` while a command's daemon runs). Returns its status, idle_exit_s None.

    Raises SimulatorError when none runs, SimulatorRunningError when the one running is not an
    on-demand daemon (it is served already, or embedded)."""
    st = status(root)
    if not st.running or st.pid is None:
        raise SimulatorError(f"no simulator runs for {st.root}")
    if st.started_by != "on-demand" or not _read_pidfile(Path(st.instance_dir) / PIDFILE).get("adoptable"):
        raise _already_running(st)
    os.kill(st.pid, KEEP_RUNNING_SIGNAL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = status(root)
        if not now.running:
            raise SimulatorError("the simulator exited before it could be kept running", hint="run 'accelctl sim serve' again")
        if now.pid == st.pid and now.idle_exit_s is None:  # (pid None: the pidfile is being rewritten)
            return now
        time.sleep(0.02)
    raise SimulatorError(f"simulator pid {st.pid} did not answer within {timeout:.0f} s")


def ensure_running(root: Any, endpoints: Any, **kwargs: Any) -> SimulatorStatus:
    """A daemon for ``root`` serving: the one already there, else a new background process that
    outlives this command, so concurrent commands share one device (its state included); it
    exits after `idle_exit_seconds()` without a client.

    ``endpoints`` is a list of EndpointConfig, or a callable returning one (called only when a
    daemon has to be started). Two commands racing to start one: the loser's child finds the
    instance lock taken and exits, and the loser waits for the winner to publish its sockets.
    """
    st = status(root)
    if st.running and st.sockets:
        return st
    if not st.running:
        configs = endpoints() if callable(endpoints) else endpoints
        kwargs.setdefault("idle_exit_s", idle_exit_seconds())
        try:
            return start_process(root, configs, **kwargs)
        except SimulatorError:
            st = status(root)
            if not st.running:
                raise
    # another command's daemon holds the lock and is still starting: wait for its sockets
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        st = status(root)
        if not st.running:
            raise SimulatorError("the simulator another command started exited before serving",
                                 hint="see 'accelctl sim status' and its log in the instance dir")
        if st.sockets and all(Path(p).exists() for p in st.sockets.values()):
            return st
        time.sleep(0.02)
    raise SimulatorError(f"the simulator another command started did not serve within {START_TIMEOUT_S:.0f} s")
