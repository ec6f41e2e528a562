"""The kubelet device plugin (API v1beta1) over a Unix socket in the device-plugin directory.

Lifecycle, as the kubelet expects it:

1. serve the DevicePlugin service on ``<dir>/<socket>``;
2. call Register on ``<dir>/kubelet.sock`` (the kubelet then connects back and opens
   ListAndWatch);
3. poll: take a fresh inventory, update health, push the device list to every ListAndWatch
   stream when it changed; watch the kubelet's socket. A kubelet that restarts deletes every
   socket in the directory and makes a new kubelet.sock: the plugin sees the new socket (another
   inode) or its own socket gone, serves again and registers again.

The plugin never reads sysfs itself: `snapshot` gives it inventories, `nodes_of` the device
nodes of an endpoint (the CLI passes accelctl.sysfs.devnodes over the command's machine).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from accelctl.errors import AccelError, InvalidRequestError
from accelctl.fleet.deviceplugin.health import HealthPolicy, HealthTracker

if TYPE_CHECKING:
    from accelctl.fleet.deviceplugin.health import DeviceHealth
    from accelctl.fleet.inventory import Inventory

API_VERSION = "v1beta1"
KUBELET_SOCKET = "kubelet.sock"
DEFAULT_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
VISIBLE_DEVICES_ENV = "ACCELCTL_VISIBLE_DEVICES"


def _grpc() -> tuple[Any, Any, Any]:
    try:
        import grpc

        from accelctl.fleet.deviceplugin import api_pb2, api_pb2_grpc
    except ImportError as err:
        from accelctl.errors import MissingDependencyError

        raise MissingDependencyError(err.name or "grpcio") from None
    return grpc, api_pb2, api_pb2_grpc


def check_resource_name(name: str) -> None:
    """An extended resource name (``vendor-domain/type``) the kubelet accepts.

    Raises:
        InvalidRequestError: no domain, a kubernetes.io domain, or characters a name cannot have.
    """
    import re

    domain, _, base = name.partition("/")
    ok = (re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+", domain)
          and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", base)
          and not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io")))
    if not ok:
        raise InvalidRequestError(
            f"resource name {name!r} is not an extended resource name",
            hint="use vendor-domain/type, e.g. accel.example.com/accelerator (not *.kubernetes.io)")


@dataclass
class PluginOptions:
    resource_name: str
    plugin_dir: str = DEFAULT_PLUGIN_DIR
    socket_name: str = "accelctl.sock"
    #: seconds between polls (health, kubelet socket)
    poll_interval: float = 5.0
    policy: HealthPolicy = field(default_factory=HealthPolicy)
    #: device nodes every allocation gets besides each endpoint's own (e.g. /dev/kfd)
    extra_devices: Sequence[str] = ()


class DevicePlugin:
    """One plugin: a gRPC server, a registration, a poll thread. start() ... stop()."""

    def __init__(self, options: PluginOptions, snapshot: Callable[[], Inventory],
                 nodes_of: Callable[[str], list[str]] = lambda bdf: [],
                 log: Callable[[str], None] = lambda message: None) -> None:
        check_resource_name(options.resource_name)
        self.options = options
        self._snapshot = snapshot
        self._nodes_of = nodes_of
        self._log = log
        self._tracker = HealthTracker(options.policy)
        self._cond = threading.Condition()
        self._stopping = False
        self._version = 0
        self._devices: list[DeviceHealth] = []
        self._inventory: Inventory | None = None
        self._server: Any = None
        self._registered_kubelet: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        #: polls done; (poll, bdf, health) for every change of a device's health, first list included
        self.polls = 0
        self.failed_polls = 0
        self.transitions: list[tuple[int, str, str]] = []
        self.registrations = 0

    @property
    def socket_path(self) -> str:
        return os.path.join(self.options.plugin_dir, self.options.socket_name)

    @property
    def kubelet_socket(self) -> str:
        return os.path.join(self.options.plugin_dir, KUBELET_SOCKET)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Take the first inventory, serve, register if the kubelet is there, start polling.

        Raises:
            AccelError: the first inventory could not be taken (bad sysfs root, ...).
            MissingDependencyError: grpcio/protobuf are not installed.
        """
        _grpc()
        self._poll_devices(raise_errors=True)
        self._serve()
        self._check_kubelet()
        self._thread = threading.Thread(target=self._loop, name="accelctl-device-plugin", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def _loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self.options.poll_interval)
            self._wake.clear()
            if self._stopping:
                return
            self._poll_devices(raise_errors=False)
            try:
                self._check_kubelet()
            except AccelError as err:  # the directory went away: keep trying, do not die
                self._log(f"cannot serve: {err}")

    # --- polling -----------------------------------------------------------------------------

    def _poll_devices(self, *, raise_errors: bool) -> None:
        try:
            inv = self._snapshot()
        except AccelError as err:
            if raise_errors:
                raise
            # A scan that failed (a device vanishing mid-read) says nothing new: keep the last
            # state, try again next poll.
            self.failed_polls += 1
            self._log(f"poll failed, keeping the last device list: {err}")
            return
        devices = self._tracker.update(inv)
        with self._cond:
            self.polls += 1
            before = {d.bdf: d.health for d in self._devices}
            for d in devices:
                if before.get(d.bdf) != d.health:
                    self.transitions.append((self.polls, d.bdf, d.health))
                    if d.bdf in before:
                        why = f" ({'; '.join(d.reasons)})" if d.reasons else ""
                        self._log(f"{d.bdf} is now {d.health}{why}")
            self._inventory = inv
            if [(d.bdf, d.health, d.numa_node) for d in devices] != [
                    (d.bdf, d.health, d.numa_node) for d in self._devices]:
                self._devices = devices
                self._version += 1
                self._cond.notify_all()

    def _check_kubelet(self) -> None:
        try:
            st = os.stat(self.kubelet_socket)
        except OSError:
            if self._registered_kubelet is not None:
                self._log("the kubelet's socket is gone; waiting for it to come back")
            self._registered_kubelet = None
            return
        identity = (st.st_dev, st.st_ino)
        own_gone = not os.path.exists(self.socket_path)
        if identity == self._registered_kubelet and not own_gone:
            return
        if own_gone or self._registered_kubelet is not None:
            self._serve()  # the kubelet removed our socket (it does on restart): serve anew
        grpc, api_pb2, api_pb2_grpc = _grpc()
        try:
            with grpc.insecure_channel(f"unix://{self.kubelet_socket}") as channel:
                api_pb2_grpc.RegistrationStub(channel).Register(
                    api_pb2.RegisterRequest(
                        version=API_VERSION,
                        endpoint=self.options.socket_name,
                        resource_name=self.options.resource_name,
                        options=api_pb2.DevicePluginOptions(get_preferred_allocation_available=True),
                    ),
                    timeout=30,
                )
        except grpc.RpcError as err:
            self._log(f"registration with the kubelet failed ({err.code().name}: {err.details()}); "
                      "retrying next poll")
            return
        self._registered_kubelet = identity
        self.registrations += 1
        self._log(f"registered {self.options.resource_name} with the kubelet ({self.kubelet_socket})")

    def _serve(self) -> None:
        grpc, _, api_pb2_grpc = _grpc()
        if self._server is not None:
            self._server.stop(grace=None)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)  # stale, from us or an earlier run
        # Each ListAndWatch stream holds a worker for its whole life: leave room for the kubelet
        # reconnecting while an old stream winds down.
        if not os.path.isdir(self.options.plugin_dir):
            raise InvalidRequestError(f"the device-plugin directory {self.options.plugin_dir} does not exist",
                                      hint="mount the kubelet's /var/lib/kubelet/device-plugins there")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        api_pb2_grpc.add_DevicePluginServicer_to_server(_servicer_class()(self), server)
        try:
            server.add_insecure_port(f"unix://{self.socket_path}")
        except RuntimeError as err:
            raise InvalidRequestError(f"cannot serve on {self.socket_path}: {err}") from None
        server.start()
        self._server = server

    # --- what the servicer answers -------------------------------------------------------------

    def current(self) -> tuple[int, list[DeviceHealth]]:
        with self._cond:
            return self._version, list(self._devices)

    def wait_change(self, version: int, context: Any) -> tuple[int, list[DeviceHealth]] | None:
        """The next device list after `version`; None when the plugin stops or the stream ends."""
        with self._cond:
            while self._version == version and not self._stopping and context.is_active():
                self._cond.wait(timeout=1.0)  # re-check the stream now and then
            if self._stopping or not context.is_active():
                return None
            return self._version, list(self._devices)

    def preferred(self, available: Sequence[str], must: Sequence[str], size: int) -> list[str]:
        from accelctl.fleet.deviceplugin.allocation import preferred_allocation

        with self._cond:
            inv = self._inventory
        return [] if inv is None else preferred_allocation(inv, available, must, size)

    def allocation(self, ids: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """(environment, device nodes) for one container. Raises KeyError: an unknown id."""
        with self._cond:
            order = {d.bdf: i for i, d in enumerate(self._devices)}
            inv = self._inventory
        unknown = [i for i in ids if i not in order]
        if unknown:
            raise KeyError(", ".join(unknown))
        if inv is not None:
            gid = {d.bdf: d.global_id for d in inv.devices}
            order = {b: gid.get(b, len(gid) + i) for b, i in order.items()}
        chosen = sorted(dict.fromkeys(ids), key=order.__getitem__)
        nodes: list[str] = []
        for bdf in chosen:
            nodes.extend(self._nodes_of(bdf))
        nodes.extend(self.options.extra_devices)
        return {VISIBLE_DEVICES_ENV: ",".join(chosen)}, list(dict.fromkeys(nodes))


_SERVICER_CLASS: type | None = None


def _servicer_class() -> type:
    """The DevicePlugin service, on the generated base class (made at first use: grpc is an
    optional dependency)."""
    global _SERVICER_CLASS
    if _SERVICER_CLASS is not None:
        return _SERVICER_CLASS
    grpc, pb, pb_grpc = _grpc()

    def device_list(devices: list[DeviceHealth]) -> Any:
        out = pb.ListAndWatchResponse()
        for d in devices:
            dev = out.devices.add(ID=d.bdf, health=d.health)
            if d.numa_node is not None:  # never -1: a consumer may choke on it
                dev.topology.nodes.add(ID=d.numa_node)
        return out

    class DevicePluginServicer(pb_grpc.DevicePluginServicer):  # type: ignore[misc,name-defined]
        def __init__(self, plugin: DevicePlugin) -> None:
            self.plugin = plugin

        def GetDevicePluginOptions(self, request, context):  # noqa: N802 - the API's name
            return pb.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=True)

        def ListAndWatch(self, request, context):  # noqa: N802
            version, devices = self.plugin.current()
            yield device_list(devices)
            while True:
                nxt = self.plugin.wait_change(version, context)
                if nxt is None:
                    return
                version, devices = nxt
                yield device_list(devices)

        def GetPreferredAllocation(self, request, context):  # noqa: N802
            resp = pb.PreferredAllocationResponse()
            for req in request.container_requests:
                ids = self.plugin.preferred(list(req.available_deviceIDs), list(req.must_include_deviceIDs),
                                            req.allocation_size)
                resp.container_responses.add(deviceIDs=ids)
            return resp

        def Allocate(self, request, context):  # noqa: N802
            resp = pb.AllocateResponse()
            for req in request.container_requests:
                try:
                    envs, nodes = self.plugin.allocation(list(req.devices_ids))
                except KeyError as err:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown device id(s): {err.args[0]}")
                c = resp.container_responses.add()
                c.envs.update(envs)
                for path in nodes:
                    c.devices.add(container_path=path, host_path=path, permissions="rw")
            return resp

        def PreStartContainer(self, request, context):  # noqa: N802
            return pb.PreStartContainerResponse()

    _SERVICER_CLASS = DevicePluginServicer
    return _SERVICER_CLASS
