"""SimPlatform: a fixture tree plus the device simulator that plays its kernel driver and firmware.

The platform decides who plays the kernel driver: here, one simulator daemon per fixture, started
on demand as a background process that outlives the command (so concurrent commands share one
device and its state) and serving exactly the machine's accelerator endpoints. Resets go to the
simulator (in-flight commands aborted with a retryable status, sessions made stale, firmware back
to power-on); what a real kernel would then show in /sys (a device gone, a new serial) is
mirrored into the fixture tree by accelctl.platform.fixture_mutate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from accelctl.errors import DeviceNotFoundError
from accelctl.platform.linux import LinuxPlatform
from accelctl.sysfs import SysfsRoot

#: How long a reset waits for the simulator to say who is connected before calling it unknown.
INTROSPECT_TIMEOUT_S = 5.0

#: The accelerator endpoints of the machine (PciFunction objects), asked for only when needed.
Accelerators = Callable[[], Iterable[Any]]


class SimPlatform(LinuxPlatform):
    kind = "simulator"

    def __init__(self, root: SysfsRoot, accelerators: Accelerators | None = None) -> None:
        super().__init__(root)
        self._accelerators = accelerators

    # -- what is served ---------------------------------------------------------------------------

    def served_endpoints(self) -> list[Any]:
        """EndpointConfig for every accelerator endpoint of the machine, sorted by BDF."""
        if self._accelerators is None:
            return []
        return sorted((endpoint_config(fn) for fn in self._accelerators()), key=lambda c: c.bdf)

    def endpoint_socket(self, bdf: str) -> str:
        """The socket of endpoint ``bdf``, starting the fixture's simulator daemon if none runs.

        Raises:
            SimulatorError: the daemon could not be started.
            DeviceNotFoundError: the running daemon does not serve ``bdf`` (it was started with
                another set of accelerator rules).
        """
        from accelctl.sim import service

        st = service.ensure_running(self.root.path, self.served_endpoints)
        path = st.sockets.get(bdf)
        if path is None:
            raise DeviceNotFoundError(
                bdf, f"the simulator running for this fixture does not serve {bdf}",
                hint=f"it was started with other accelerator rules: {service.stop_command(self.root.path)}, then retry",
            )
        return str(path)

    @contextmanager
    def endpoint_sockets(self) -> Iterator[dict[str, str]]:
        """BDF -> socket of every served endpoint (the daemon is started if needed)."""
        from accelctl.sim import service

        st = service.ensure_running(self.root.path, self.served_endpoints)
        yield dict(st.sockets)

    def start_daemon(self, *, faults: list[dict[str, Any]] | None = None, spin_us: float | None = None) -> Any:
        """Start the background daemon that runs until `accelctl sim stop` (`accelctl sim serve`).
        A daemon a command started on demand is adopted instead (it stops exiting when idle;
        device state and clients stay), unless faults are asked for: a daemon gets those only
        when it starts.

        Raises:
            SimulatorRunningError: one runs already that is not adopted (``.status`` says which).
        """
        from accelctl.sim import service

        kwargs: dict[str, Any] = {"faults": faults}
        if spin_us is not None:
            kwargs["spin_us"] = spin_us
        try:
            return service.start_process(self.root.path, self.served_endpoints(), **kwargs)
        except service.SimulatorRunningError as err:
            if faults or err.status.started_by != "on-demand":
                raise
            return service.keep_running(self.root.path)

    def serve(self, *, faults: list[dict[str, Any]] | None = None, spin_us: float | None = None) -> None:
        """Run the daemon in this thread until SIGTERM/SIGINT (`accelctl sim serve --foreground`)."""
        from accelctl.sim import service

        kwargs: dict[str, Any] = {"faults": faults}
        if spin_us is not None:
            kwargs["spin_us"] = spin_us
        service.serve(self.root.path, self.served_endpoints(), **kwargs)

    # -- who is connected ------------------------------------------------------------------------

    def daemon_sockets(self) -> dict[str, str]:
        """BDF -> socket of a running simulator daemon for this tree ({} when none runs)."""
        from accelctl.sim import service

        st = service.status(self.root.path)
        return dict(st.sockets) if st.running else {}

    def introspect(self, *, timeout_s: float = INTROSPECT_TIMEOUT_S) -> dict[str, Any] | None:
        """The running daemon's view of every endpoint and connection; None when no daemon runs
        (then nobody can be connected through it).

        Raises:
            BackendError: a daemon runs but did not answer within ``timeout_s`` (on all of its
                sockets together): who is connected is unknown, which is not "nobody".
        """
        import time

        from accelctl.errors import BackendError
        from accelctl.protocol.abi import CtrlCmd

        sockets = self.daemon_sockets()
        if not sockets:
            return None
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        for path in sockets.values():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                with _channel(path, timeout_s=left) as ch:
                    body, _ = ch.request(CtrlCmd.INTROSPECT)
                    return json.loads(body)
            except (OSError, ValueError) as err:
                # one endpoint gone (removed) or garbled: another socket of the daemon may answer
                last = err
        raise BackendError(f"the simulator daemon for {self.root.path} did not answer INTROSPECT within "
                           f"{timeout_s:g} s ({last or 'no time left'})")

    # -- actions -------------------------------------------------------------------------------

    def add_faults(self, socket: str | os.PathLike[str], faults: list[dict[str, Any]]) -> None:
        """Arm faults on the endpoint served at ``socket`` (``<bdf>.sock``), through the
        daemon's admin socket beside it: sessions cannot inject faults (security.md)."""
        from accelctl.protocol.abi import CtrlCmd
        from accelctl.sim.device.daemon import ADMIN_SOCKET

        path = Path(socket)
        with _channel(str(path.with_name(ADMIN_SOCKET))) as ch:
            ch.request(CtrlCmd.FAULT, json.dumps({"bdf": path.name.removesuffix(".sock"), "add": faults}).encode())

    def device_reset(self, socket: str | os.PathLike[str], *, timeout_s: float) -> int:
        """Device-level reset of one simulated endpoint; the new reset generation.

        Raises:
            BackendError: the simulator reported failure (errno ENODEV: it did not come back).
        """
        from accelctl.protocol.abi import CTRL_RESET, CTRL_U32, CtrlCmd, ResetScope

        with _channel(str(socket), timeout_s=timeout_s) as ch:
            body, _ = ch.request(CtrlCmd.RESET, CTRL_RESET.pack(ResetScope.DEVICE))
            return CTRL_U32.unpack_from(body)[0]


def endpoint_config(fn: Any, *, memory_cap: int | None = None) -> Any:
    """The simulator's EndpointConfig for one accelerator function of the topology."""
    from accelctl.sim.device.config import DEFAULT_MEMORY_CAP, EndpointConfig, serial_for

    bars = tuple(fn.bars or ())
    bar0 = next((b for b in bars if b.index == 0), None)
    return EndpointConfig(
        bdf=str(fn.bdf),
        serial=serial_for(str(fn.bdf), fn.serial),
        model=fn.model or "accelsim",
        memory_size=_memory_size(bars, memory_cap or DEFAULT_MEMORY_CAP),
        vendor_id=int(fn.vendor_id or 0),
        device_id=int(fn.device_id or 0),
        card=fn.card,
        bar0_size=int(bar0.size or 0) if bar0 is not None else 0,
        numa_node=fn.numa_node if fn.numa_node is not None else -1,
    )


#: Device memory is backed by a sparse file; below this a device gets this much anyway.
MIN_MEMORY_SIZE = 1 << 20


def _memory_size(bars: tuple[Any, ...], cap: int) -> int:
    """Device memory = the largest BAR (usually the prefetchable 64-bit one), capped, page-rounded."""
    size = max((int(b.size or 0) for b in bars), default=0) or MIN_MEMORY_SIZE
    return max(MIN_MEMORY_SIZE, min(size, cap)) // 4096 * 4096


@contextmanager
def _channel(path: str, *, timeout_s: float = 5.0) -> Iterator[Any]:
    from accelctl.driver.transport import ControlChannel

    ch = ControlChannel(path, timeout_s=timeout_s)
    try:
        yield ch
    finally:
        ch.close()


def platform_for(
    root: SysfsRoot, *, live: bool, accelerators: Accelerators | None = None, force_kind: str | None = None
) -> LinuxPlatform:
    """The platform acting on `root`: the live /sys is Linux; a fixture or any other directory
    is simulated (writes there would change nothing real). `force_kind` overrides (tests of the
    Linux executor against a scratch tree)."""
    kind = force_kind or ("linux" if live else "simulator")
    return LinuxPlatform(root) if kind == "linux" else SimPlatform(root, accelerators)
