"""SimPlatform: a fixture tree plus the device simulator that plays its kernel driver and firmware.

Resets go to the simulator (in-flight commands aborted with a retryable status, sessions made
stale, firmware back to power-on); what a real kernel would then show in /sys (a device gone, a
new serial) is mirrored into the fixture tree by accelctl.reset.fixture_mutate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from accelctl.platform.linux import LinuxPlatform
from accelctl.sysfs import SysfsRoot


class SimPlatform(LinuxPlatform):
    kind = "simulator"

    def __init__(self, root: SysfsRoot) -> None:
        super().__init__(root)

    # -- who is connected ------------------------------------------------------------------------

    def daemon_sockets(self) -> dict[str, str]:
        """BDF -> socket of a running simulator daemon for this tree ({} when none runs)."""
        from accelctl.sim import service

        st = service.status(self.root.path)
        return dict(st.sockets) if st.running else {}

    def introspect(self) -> dict[str, Any] | None:
        """The running daemon's view of every endpoint and connection (None when none runs)."""
        sockets = self.daemon_sockets()
        for path in sockets.values():
            try:
                with _channel(path) as ch:
                    from accelctl.driver.abi import CtrlCmd

                    body, _ = ch.request(CtrlCmd.INTROSPECT)
                    return json.loads(body)
            except OSError:
                continue
        return None

    # -- actions -------------------------------------------------------------------------------

    @contextmanager
    def simulator(self) -> Iterator[dict[str, Path]]:
        """Socket paths of a simulator for this tree (the running daemon, else an embedded one
        for the duration of the block)."""
        from accelctl.sim import service

        with service.use_simulator(self.root.path) as sockets:
            yield sockets

    def add_faults(self, socket: str | os.PathLike[str], faults: list[dict[str, Any]]) -> None:
        from accelctl.driver.abi import CtrlCmd

        with _channel(str(socket)) as ch:
            ch.request(CtrlCmd.FAULT, json.dumps({"add": faults}).encode())

    def device_reset(self, socket: str | os.PathLike[str], *, timeout_s: float) -> int:
        """Device-level reset of one simulated endpoint; the new reset generation.

        Raises:
            BackendError: the simulator reported failure (errno ENODEV: it did not come back).
        """
        from accelctl.driver.abi import CTRL_RESET, CTRL_U32, CtrlCmd, ResetScope

        with _channel(str(socket), timeout_s=timeout_s) as ch:
            body, _ = ch.request(CtrlCmd.RESET, CTRL_RESET.pack(ResetScope.DEVICE))
            return CTRL_U32.unpack_from(body)[0]


@contextmanager
def _channel(path: str, *, timeout_s: float = 5.0) -> Iterator[Any]:
    from accelctl.driver.transport import ControlChannel

    ch = ControlChannel(path, timeout_s=timeout_s)
    try:
        yield ch
    finally:
        ch.close()


def platform_for(root: SysfsRoot, *, fixture: bool, force_kind: str | None = None) -> LinuxPlatform:
    """The platform acting on `root`: the live /sys is Linux; a fixture or any other directory
    is simulated (writes there would change nothing real). `force_kind` overrides (tests of the
    Linux executor against a scratch tree)."""
    kind = force_kind or ("linux" if root.is_live and not fixture else "simulator")
    return LinuxPlatform(root) if kind == "linux" else SimPlatform(root)
