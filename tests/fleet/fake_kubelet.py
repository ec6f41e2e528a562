"""A fake kubelet that is a real gRPC server and client on Unix sockets: it serves Registration
on <dir>/kubelet.sock and, on each Register, connects back to the plugin's socket and reads its
ListAndWatch stream, as the kubelet's device manager does."""

from __future__ import annotations

import os
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc

from accelctl.fleet.deviceplugin import api_pb2, api_pb2_grpc

#: Guards against a hang only; no test asserts how fast anything happens.
HANG_GUARD_S = 120.0


@dataclass
class Connection:
    request: api_pb2.RegisterRequest
    channel: grpc.Channel
    stub: api_pb2_grpc.DevicePluginStub
    options: api_pb2.DevicePluginOptions
    updates: list[list[tuple[str, str, list[int]]]] = field(default_factory=list)
    ended: bool = False


class FakeKubelet(api_pb2_grpc.RegistrationServicer):
    def __init__(self, plugin_dir: str) -> None:
        self.dir = plugin_dir
        self.socket = os.path.join(plugin_dir, "kubelet.sock")
        self.connections: list[Connection] = []
        self._cond = threading.Condition()
        self._server: grpc.Server | None = None

    def start(self) -> FakeKubelet:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        api_pb2_grpc.add_RegistrationServicer_to_server(self, server)
        server.add_insecure_port(f"unix://{self.socket}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """What a kubelet going down leaves: its socket gone, the plugins' streams cut."""
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None
        for c in self.connections:
            c.channel.close()
        if os.path.exists(self.socket):
            os.unlink(self.socket)

    def restart(self) -> None:
        """A kubelet restart: it stops, and on start removes every socket in the directory
        (the plugins' too) before making its own again."""
        self.stop()
        for name in os.listdir(self.dir):
            path = os.path.join(self.dir, name)
            if not os.path.isdir(path):
                os.unlink(path)
        self.start()

    # --- the Registration service ----------------------------------------------------------

    def Register(self, request, context):  # noqa: N802 - the API's name
        if request.version != "v1beta1":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported version {request.version}")
        channel = grpc.insecure_channel(f"unix://{os.path.join(self.dir, request.endpoint)}")
        stub = api_pb2_grpc.DevicePluginStub(channel)
        options = stub.GetDevicePluginOptions(api_pb2.Empty(), timeout=HANG_GUARD_S)
        conn = Connection(request, channel, stub, options)
        threading.Thread(target=self._watch, args=(conn,), daemon=True).start()
        with self._cond:
            self.connections.append(conn)
            self._cond.notify_all()
        return api_pb2.Empty()

    def _watch(self, conn: Connection) -> None:
        try:
            for resp in conn.stub.ListAndWatch(api_pb2.Empty()):
                devices = [(d.ID, d.health, [n.ID for n in d.topology.nodes]) for d in resp.devices]
                with self._cond:
                    conn.updates.append(devices)
                    self._cond.notify_all()
        except grpc.RpcError:
            pass
        with self._cond:
            conn.ended = True
            self._cond.notify_all()

    # --- for the tests -----------------------------------------------------------------------

    def wait_for(self, predicate, what: str):  # type: ignore[no-untyped-def]
        """Block until predicate() is truthy (re-checked on every event); fail after the guard."""
        deadline = time.monotonic() + HANG_GUARD_S
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                assert left > 0, f"the fake kubelet never saw: {what}"
                self._cond.wait(min(left, 0.5))

    def latest(self) -> Connection:
        return self.wait_for(lambda: self.connections and self.connections[-1], "a registration")

    def devices(self) -> list[tuple[str, str, list[int]]]:
        conn = self.latest()
        return self.wait_for(lambda: conn.updates and conn.updates[-1], "a device list")
