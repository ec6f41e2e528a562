"""A simulator daemon in its own process, an attacker's raw connection, and an honest client.

Every daemon attack of issue 14 runs against a separate daemon process (a crash there is a real
exit status, not a test-thread exception) while an honest client, using the real driver core,
must keep working: open a session, write, read back, close.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from accelctl.protocol import abi
from accelctl.driver.transport import ControlChannel

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "sim"))

from rawclient import CtrlError, Memfd, RawClient  # noqa: E402,F401 - re-exported for the tests

BDF = "0000:41:00.0"
OTHER_BDF = "0000:42:00.0"
MEMORY = 16 << 20


class DaemonProcess:
    """``python -c`` running a DeviceDaemon with two endpoints; stop() reports how it ended."""

    def __init__(self, *, fd_limit: int | None = None, faults: dict[str, list[dict[str, Any]]] | None = None,
                 memory: int = MEMORY, workdir: Path | None = None) -> None:
        #: A given workdir (state kept across daemons) belongs to the caller; a temporary one is ours.
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="asim-adv-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.socket_dir = self.workdir / "sock"
        script = (
            "import json, logging, sys\n"
            "logging.basicConfig(stream=sys.stderr, level=logging.WARNING)\n"
            "from accelctl.sim.device import DeviceDaemon, EndpointConfig, FaultSpec\n"
            "faults = {bdf: [FaultSpec.from_dict(f) for f in specs] for bdf, specs in json.loads(sys.argv[1]).items()}\n"
            f"eps = [EndpointConfig(bdf={BDF!r}, serial='aa-00-00-00-00-00-00-01', memory_size={memory}),\n"
            f"       EndpointConfig(bdf={OTHER_BDF!r}, serial='aa-00-00-00-00-00-00-02', memory_size={memory})]\n"
            f"d = DeviceDaemon(eps, {str(self.socket_dir)!r}, state_dir={str(self.workdir / 'state')!r},"
            " faults=faults, die_by_signal=True)\n"
            "d.start(); print('ready', flush=True); d.run()\n"
        )

        def limit_fds() -> None:
            if fd_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.log = open(self.workdir / "daemon.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, json.dumps(faults or {})], stdout=subprocess.PIPE,
            stderr=self.log, text=True, env=env, preexec_fn=limit_fds,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "ready", f"daemon did not start: {line!r} {self.log_text()}"

    def socket(self, bdf: str = BDF) -> str:
        return str(self.socket_dir / f"{bdf}.sock")

    @property
    def admin_socket(self) -> str:
        return str(self.socket_dir / "admin.sock")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return (self.workdir / "daemon.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        code = self.proc.returncode
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return code


def stop_cleanly(daemon: DaemonProcess) -> None:
    """Stop ``daemon`` and fail unless it was still running until our SIGTERM ended it."""
    code = daemon.stop()
    assert code in (0, -15), f"daemon ended with {code}"


def admin_request(daemon: DaemonProcess, cmd: int, payload: dict[str, Any] | bytes) -> dict[str, Any]:
    """One request on the daemon's administrative socket (faults, for the daemon's owner only)."""
    ch = ControlChannel(daemon.admin_socket, timeout_s=30)
    try:
        body, fds = ch.request(cmd, payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        for fd in fds:
            os.close(fd)
        return json.loads(body or b"{}")
    finally:
        ch.close()


def add_fault(daemon: DaemonProcess, bdf: str = BDF, **spec: Any) -> dict[str, Any]:
    return admin_request(daemon, abi.CtrlCmd.FAULT, {"bdf": bdf, "add": [spec]})


def honest_round_trip(path: str, payload: bytes = b"honest client still served", address: int = 1 << 20) -> None:
    """What an honest runtime does: open a session, write, read back, close. Raises on any failure."""
    from accelctl.driver.session import Session

    with Session(path, control_timeout_s=30, admin_timeout_s=30, io_timeout_s=30) as dev:
        assert dev.write_memory(address, payload) == len(payload)
        assert dev.read_memory(address, len(payload)) == payload


def assert_survived(daemon: DaemonProcess, *paths: str) -> None:
    """The daemon process still runs and serves an honest client on every given endpoint."""
    assert daemon.alive(), f"daemon exited with {daemon.proc.returncode}: {daemon.log_text()}"
    for path in paths or (daemon.socket(),):
        honest_round_trip(path)
    assert daemon.alive(), f"daemon exited with {daemon.proc.returncode}: {daemon.log_text()}"
