"""The one place the driver tests touch the simulator's own API (start, stop, faults, tables).

Faults go through the daemon's admin socket (FAULT), introspection through the ABI's INTROSPECT
on a connection of their own, exactly as any client would send them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from accelctl.protocol import abi
from accelctl.driver.transport import ControlChannel

BDF = "0000:41:00.0"
SERIAL = "aa-bb-cc-dd-00-00-00-01"


class SimHarness:
    def __init__(self, daemon: Any, sockets: dict[str, str], workdir: Path | None = None) -> None:
        self.daemon = daemon
        self.sockets = sockets
        self.workdir = workdir

    @classmethod
    def embedded(cls, memory_size: int = 80 << 20) -> SimHarness:
        """A daemon in a thread of this process (clients may still be other processes)."""
        from accelctl.sim.device import DeviceDaemon, EndpointConfig

        workdir = Path(tempfile.mkdtemp(prefix="accelctl-drvtest-"))
        configs = [EndpointConfig(bdf=BDF, serial=SERIAL, memory_size=memory_size)]
        daemon = DeviceDaemon(configs, workdir / "sock", state_dir=workdir / "state")
        daemon.start_thread()
        return cls(daemon, {c.bdf: str(workdir / "sock" / f"{c.bdf}.sock") for c in configs}, workdir)

    @classmethod
    def process(cls, memory_size: int = 80 << 20) -> SimHarness:
        """A daemon in a separate process (so it can be SIGKILLed like a crashed driver)."""
        workdir = Path(tempfile.mkdtemp(prefix="accelctl-drvtest-"))
        script = (
            "import sys\n"
            "from accelctl.sim.device import DeviceDaemon, EndpointConfig\n"
            f"d = DeviceDaemon([EndpointConfig(bdf={BDF!r}, serial={SERIAL!r}, memory_size={memory_size})],"
            f" {str(workdir / 'sock')!r}, state_dir={str(workdir / 'state')!r}, die_by_signal=True)\n"
            "d.start(); print('ready', flush=True); d.run()\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return cls(proc, {BDF: str(workdir / "sock" / f"{BDF}.sock")}, workdir)

    def kill(self) -> None:
        """SIGKILL a process daemon: no cleanup, sockets just close."""
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait(timeout=10)

    def socket_path(self, bdf: str = BDF) -> str:
        return self.sockets[bdf]

    def _control(self, cmd: int, payload: dict[str, Any] | None = None, bdf: str = BDF, *,
                 admin: bool = False) -> Any:
        path = self.socket_path(bdf)
        chan = ControlChannel(str(Path(path).with_name("admin.sock")) if admin else path)
        try:
            body, fds = chan.request(cmd, json.dumps(payload or {}).encode())
            for fd in fds:
                os.close(fd)
            return json.loads(body or b"{}")
        finally:
            chan.close()

    def add_fault(self, bdf: str = BDF, **spec: Any) -> Any:
        return self._control(abi.CtrlCmd.FAULT, {"bdf": bdf, "add": [spec]}, bdf, admin=True)

    def faults(self, bdf: str = BDF) -> list[dict[str, Any]]:
        """The endpoint's fault specs with how often each matched and fired (spent ones pruned)."""
        return self._control(abi.CtrlCmd.FAULT, {"bdf": bdf}, bdf, admin=True)["faults"]

    def clear_faults(self, bdf: str = BDF) -> None:
        self._control(abi.CtrlCmd.FAULT, {"bdf": bdf, "clear": True}, bdf, admin=True)

    def introspect(self, bdf: str = BDF) -> Any:
        return self._control(abi.CtrlCmd.INTROSPECT, None, bdf)

    def sessions(self, bdf: str = BDF) -> list[dict[str, Any]]:
        """Per-connection tables of the endpoint, without the connection asking."""
        sessions = self.introspect(bdf)["endpoints"][bdf]["sessions"]
        return [s for s in sessions if s["queues"] or s["dma_maps"] or s["kicks"] or s["irqs"] or s["notifier"]]

    def connection_count(self, bdf: str = BDF) -> int:
        return len(self.sessions(bdf))

    def stop(self) -> None:
        if isinstance(self.daemon, subprocess.Popen):
            if self.daemon.poll() is None:
                self.daemon.terminate()
                try:
                    self.daemon.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.daemon.kill()
                    self.daemon.wait()
        else:
            self.daemon.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
