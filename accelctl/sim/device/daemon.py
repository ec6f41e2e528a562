"""The simulator daemon: one selectors/epoll control loop serving every endpoint of a fixture.

It plays the kernel driver: one AF_UNIX SOCK_SEQPACKET listening socket per endpoint; each accepted
connection is an open file with its own :class:`Session`; each control message is an ioctl. The
data path (rings, doorbells, DMA buffers) never touches the socket: it is shared memory served by
each session's engine thread.

Robustness rules: a malformed, oversized or truncated message, or one carrying more fds than
allowed (or fds where none belong), drops that connection after closing every fd it carried; the
loop keeps serving everyone else. Semantic errors get an errno reply and their fds closed.
"""

from __future__ import annotations

import array
import errno
import json
import os
import selectors
import signal
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from accelctl.protocol import abi
from accelctl.protocol.abi import CtrlCmd

from . import faults as F
from .config import EndpointConfig
from .firmware import Firmware
from .iova import IovaError
from .session import Session, SessionError

MAX_CONNECTIONS_PER_ENDPOINT = 64
_ANC_SIZE = socket.CMSG_SPACE(abi.CTRL_MAX_MSG_FDS * 4)
_PEERCRED = struct.Struct("3i")
LISTEN_BACKLOG = 64


class DaemonError(OSError):
    """The daemon could not start (socket path taken, bad state dir, ...)."""


class ProtocolError(Exception):
    """A control message that breaks framing: the connection is dropped."""


@dataclass
class Connection:
    sock: socket.socket
    endpoint: Endpoint
    session: Session


class Endpoint:
    def __init__(self, daemon: DeviceDaemon, config: EndpointConfig, socket_path: Path,
                 state_dir: Path | None, faults: list[F.FaultSpec]) -> None:
        self.daemon = daemon
        self.config = config
        self.socket_path = socket_path
        self.firmware = Firmware(config, state_dir)
        self.faults = F.FaultInjector(faults)
        self.listener: socket.socket | None = None
        self.connections: dict[int, Connection] = {}

    @property
    def sessions(self) -> list[Session]:
        return [c.session for c in self.connections.values()]


class DeviceDaemon:
    """Serve ``endpoints`` on sockets ``socket_dir/<bdf>.sock``.

    ``start()`` binds everything (clients may connect as soon as it returns), ``run()`` is the
    loop (blocking), ``start_thread()`` runs it in a daemon thread (embedded mode), ``stop()``
    ends it and releases every session.
    """

    def __init__(
        self,
        endpoints: list[EndpointConfig],
        socket_dir: str | os.PathLike[str],
        *,
        state_dir: str | os.PathLike[str] | None = None,
        faults: dict[str, list[F.FaultSpec]] | None = None,
        spin_us: float = 0.0,
        die_by_signal: bool = False,
    ) -> None:
        self.socket_dir = Path(socket_dir)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.spin_us = spin_us
        #: Process mode: "daemon death" SIGKILLs the process. Embedded: abandon every connection.
        self.die_by_signal = die_by_signal
        self.endpoints: dict[str, Endpoint] = {}
        for cfg in sorted(endpoints, key=lambda c: c.bdf):
            if cfg.bdf in self.endpoints:
                raise DaemonError(errno.EEXIST, f"endpoint {cfg.bdf} given twice")
            self.endpoints[cfg.bdf] = Endpoint(
                self, cfg, self.socket_dir / f"{cfg.bdf}.sock", self.state_dir,
                list((faults or {}).get(cfg.bdf, [])),
            )
        self._sel = selectors.DefaultSelector()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._deferred: deque[Callable[[], None]] = deque()
        self._stopping = False
        self._started = False
        self._looping = False
        self._thread: threading.Thread | None = None
        self._next_session_id = 1
        self.dead = False
        self._handlers: dict[int, tuple[Callable[..., tuple[bytes, list[int]]], int, int]] = {
            CtrlCmd.VERSION: (self._h_version, 0, 0),
            CtrlCmd.GET_INFO: (self._h_get_info, 0, 0),
            CtrlCmd.REG_READ: (self._h_reg_read, 0, 0),
            CtrlCmd.REG_WRITE: (self._h_reg_write, 0, 0),
            CtrlCmd.DMA_MAP: (self._h_dma_map, 1, 1),
            CtrlCmd.DMA_UNMAP: (self._h_dma_unmap, 0, 0),
            CtrlCmd.SET_IRQS: (self._h_set_irqs, 0, abi.CTRL_MAX_MSG_FDS),
            CtrlCmd.SET_KICKS: (self._h_set_kicks, 0, abi.CTRL_MAX_MSG_FDS),
            CtrlCmd.GET_DOORBELLS: (self._h_get_doorbells, 0, 0),
            CtrlCmd.RESET: (self._h_reset, 0, 0),
            CtrlCmd.SET_EVENT_NOTIFIER: (self._h_set_notifier, 1, 1),
            CtrlCmd.PASSTHRU: (self._h_passthru, 0, 0),
            CtrlCmd.FAULT: (self._h_fault, 0, 0),
            CtrlCmd.INTROSPECT: (self._h_introspect, 0, 0),
            CtrlCmd.STATS: (self._h_stats, 0, 0),
        }

    # ==========================================================================================
    # lifecycle
    # ==========================================================================================

    def start(self) -> None:
        if self._started:
            return
        self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sel.register(self._wake_fd, selectors.EVENT_READ, ("wake", None))
        try:
            for ep in self.endpoints.values():
                self._listen(ep)
        except OSError:
            self._close_listeners()
            raise
        self._started = True

    def _listen(self, ep: Endpoint) -> None:
        path = ep.socket_path
        if len(os.fsencode(path)) >= 108:
            raise DaemonError(errno.ENAMETOOLONG, f"socket path too long for AF_UNIX: {path}")
        if path.exists() or path.is_symlink():
            # A leftover from a dead daemon: refuse only if someone still answers on it.
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()
            else:
                raise DaemonError(errno.EADDRINUSE, f"another daemon serves {path}")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.bind(str(path))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        ep.listener = sock
        self._sel.register(sock, selectors.EVENT_READ, ("listen", ep))

    def start_thread(self) -> threading.Thread:
        self.start()
        self._thread = threading.Thread(target=self.run, name="accelsim-daemon", daemon=True)
        self._thread.start()
        return self._thread

    def run(self) -> None:
        """The control loop; returns after :meth:`stop` (from any thread or a signal handler)."""
        self.start()
        self._looping = True
        try:
            while not self._stopping:
                for key, _ in self._sel.select():
                    kind, obj = key.data
                    if kind == "listen":
                        self._accept(obj)
                    elif kind == "conn":
                        self._on_message(obj)
                    else:
                        try:
                            os.eventfd_read(self._wake_fd)
                        except BlockingIOError:
                            pass
                while self._deferred:
                    self._deferred.popleft()()
        finally:
            self._looping = False
            self._shutdown()

    def stop(self, timeout: float = 10.0) -> None:
        """End the loop (safe from any thread and from a signal handler) and release everything."""
        self._stopping = True
        self._wake()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        elif not self._looping and self._started:
            self._shutdown()  # started but never looping: nobody else will clean up

    def _wake(self) -> None:
        try:
            os.eventfd_write(self._wake_fd, 1)
        except OSError:
            pass

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the control loop (from an engine thread)."""
        self._deferred.append(fn)
        self._wake()

    def _shutdown(self) -> None:
        if not self._started:
            return
        self._started = False
        for ep in self.endpoints.values():
            for conn in list(ep.connections.values()):
                self._drop(conn)
        self._close_listeners()
        for ep in self.endpoints.values():
            ep.firmware.close()
        try:
            self._sel.unregister(self._wake_fd)
        except (KeyError, ValueError):
            pass
        self._sel.close()
        os.close(self._wake_fd)

    def _close_listeners(self) -> None:
        for ep in self.endpoints.values():
            self._close_listener(ep)

    def _close_listener(self, ep: Endpoint) -> None:
        if ep.listener is None:
            return
        try:
            self._sel.unregister(ep.listener)
        except (KeyError, ValueError):
            pass
        ep.listener.close()
        ep.listener = None
        try:
            ep.socket_path.unlink()
        except FileNotFoundError:
            pass

    # ==========================================================================================
    # device-level events (reset, removal, death)
    # ==========================================================================================

    def device_reset(self, bdf: str, initiator: Session | None = None) -> int:
        """Reset the endpoint: abort all in-flight work (retryable), make every session except the
        initiator stale, firmware back to power-on. Returns the new reset generation.
        Raises SessionError(EIO) when an injected reset failure fires, ENODEV when the device does
        not come back (it is then removed)."""
        ep = self.endpoints[bdf]
        if ep.firmware.removed:
            raise SessionError(errno.ENODEV, "device removed")
        if ep.faults.active and ep.faults.on_reset(F.RESET_FAIL):
            raise SessionError(errno.EIO, "device reset failed (injected)")
        for s in ep.sessions:
            s.quiesce_for_device_reset(make_stale=s is not initiator)
        new_serial = None
        if ep.faults.active:
            spec = ep.faults.on_reset(F.NEW_SERIAL)
            if spec is not None:
                new_serial = spec.new_serial or _derived_serial(ep.firmware.serial, spec.seed)
        gen = ep.firmware.device_reset(new_serial=new_serial)
        if initiator is not None:
            initiator.adopt_reset_gen(gen)
        for s in ep.sessions:
            s.publish_reset_gen(gen)
        if ep.faults.active and ep.faults.on_reset(F.NO_RETURN):
            self.call_soon(lambda: self.remove_endpoint(bdf))
            raise SessionError(errno.ENODEV, "device did not come back after reset (injected)")
        return gen

    def request_removal(self, bdf: str) -> None:
        """Surprise removal, from any thread: applied on the control loop."""
        self.call_soon(lambda: self.remove_endpoint(bdf))

    def remove_endpoint(self, bdf: str) -> None:
        ep = self.endpoints[bdf]
        ep.firmware.removed = True
        for conn in list(ep.connections.values()):
            conn.session.mark_removed()
            self._drop(conn)
        self._close_listener(ep)

    def die(self) -> None:
        """Injected daemon death: no cleanup, no goodbye."""
        if self.die_by_signal:
            os.kill(os.getpid(), signal.SIGKILL)
        self.dead = True

        def abandon() -> None:
            for ep in self.endpoints.values():
                for conn in list(ep.connections.values()):
                    conn.session.running = False
                    self._drop(conn)
                self._close_listener(ep)
            self._stopping = True

        self.call_soon(abandon)

    # ==========================================================================================
    # connections and messages
    # ==========================================================================================

    def _accept(self, ep: Endpoint) -> None:
        assert ep.listener is not None
        try:
            sock, _ = ep.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if len(ep.connections) >= MAX_CONNECTIONS_PER_ENDPOINT or ep.firmware.removed:
            sock.close()
            return
        sock.setblocking(False)
        try:
            pid, _uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        except OSError:
            pid = None
        sid = self._next_session_id
        self._next_session_id += 1
        try:
            session = Session(ep, sid, pid, self.spin_us)
        except OSError:
            sock.close()
            return
        conn = Connection(sock, ep, session)
        ep.connections[sock.fileno()] = conn
        self._sel.register(sock, selectors.EVENT_READ, ("conn", conn))

    def _drop(self, conn: Connection) -> None:
        """EOF, error or protocol violation: the file's release()."""
        ep = conn.endpoint
        fileno = conn.sock.fileno()
        if fileno >= 0:
            try:
                self._sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
            ep.connections.pop(fileno, None)
        conn.session.release()
        conn.sock.close()

    def _on_message(self, conn: Connection) -> None:
        fds: list[int] = []
        try:
            data, anc, flags, _ = conn.sock.recvmsg(abi.CTRL_MAX_MSG_SIZE, _ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        try:
            fds = _fds_from_ancillary(anc)
            if not data and not anc:
                raise ProtocolError("EOF")
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise ProtocolError("message or its fds truncated")
            if len(data) < abi.CTRL_HEADER_SIZE:
                raise ProtocolError("short header")
            msg_id, cmd, size, mflags, _err = abi.CTRL_HEADER.unpack_from(data)
            if size != len(data) or mflags & ~int(abi.CtrlFlags.NO_REPLY):
                raise ProtocolError("bad size or flags")
            entry = self._handlers.get(cmd)
            if entry is not None and not entry[1] <= len(fds) <= entry[2]:
                raise ProtocolError(f"command {cmd} with {len(fds)} fds")
            if entry is None and fds:
                raise ProtocolError("unknown command with fds")
        except ProtocolError:
            _close_fds(fds)
            self._drop(conn)
            return
        payload = memoryview(data)[abi.CTRL_HEADER_SIZE:]
        reply_fds: list[int] = []
        err = 0
        try:
            if entry is None:
                raise SessionError(errno.ENOTTY, f"unknown control command {cmd}")
            handler = entry[0]
            if cmd not in (CtrlCmd.GET_INFO, CtrlCmd.INTROSPECT, CtrlCmd.STATS):
                conn.session.check_live()
            body, reply_fds = handler(conn, payload, fds)
            fds = []  # consumed
        except (SessionError, IovaError, F.FaultSpecError, OSError, ValueError, struct.error) as exc:
            _close_fds(fds)
            err = getattr(exc, "errno", None) or errno.EINVAL
            text = getattr(exc, "strerror", None) or str(exc)
            body = str(text).encode()[:1024]
        if self.dead or conn.sock.fileno() < 0:
            return
        if mflags & abi.CtrlFlags.NO_REPLY and not err:
            return
        rflags = abi.CtrlFlags.REPLY | (abi.CtrlFlags.ERROR if err else 0)
        header = abi.CTRL_HEADER.pack(msg_id, cmd, abi.CTRL_HEADER_SIZE + len(body), int(rflags), err)
        anc_out = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", reply_fds).tobytes())] if reply_fds else []
        try:
            conn.sock.sendmsg([header, body], anc_out, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        except OSError:
            self._drop(conn)  # a client that does not read its replies loses its connection

    # ==========================================================================================
    # control command handlers: (conn, payload, fds) -> (reply body, reply fds)
    # ==========================================================================================

    def _h_version(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        req = _json(payload) if len(payload) else {}
        want = req.get("abi", list(abi.ABI_VERSION))
        if not isinstance(want, list) or not want or want[0] != abi.ABI_VERSION[0]:
            raise SessionError(errno.EPROTO, f"ABI major {want!r} not supported (device speaks {abi.ABI_VERSION})")
        fw = conn.endpoint.firmware
        caps = {
            "abi": list(abi.ABI_VERSION),
            "max_msg_fds": abi.CTRL_MAX_MSG_FDS,
            "max_msg_size": abi.CTRL_MAX_MSG_SIZE,
            "max_data_xfer_size": 256 << 20,
            "num_queues": abi.MAX_QUEUES,
            "max_queue_depth": 4096,
            "max_vectors": 64,
            "doorbell_stride": abi.DOORBELL_STRIDE,
            "doorbell_page_size": abi.DOORBELL_PAGE_SIZE,
            "dma_page_size": abi.DMA_PAGE_SIZE,
            "memory_size": fw.memory_size,
            "features": ["sgl", "passthru", "fault_injection", "introspect", "device_poll",
                         abi.FEATURE_NEED_WAKEUP],
        }
        return json.dumps(caps).encode(), []

    def _h_get_info(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        fw = conn.endpoint.firmware
        cfg = conn.endpoint.config
        la = abi.unpack_logical_address(fw.logical_address)
        info = {
            "bdf": cfg.bdf,
            "serial": fw.serial,
            "model": cfg.model,
            "firmware_rev": cfg.firmware_rev,
            "vendor_id": f"{cfg.vendor_id:04x}",
            "device_id": f"{cfg.device_id:04x}",
            "card": cfg.card,
            "memory_size": fw.memory_size,
            "reset_gen": fw.reset_gen,
            "session_id": conn.session.id,
            "session_reset_gen": conn.session.reset_gen,
            "stale": conn.session.stale,
            "removed": fw.removed,
            "logical_address": None if la is None else {"card": la[0], "endpoint": la[1], "global_id": la[2]},
        }
        return json.dumps(info).encode(), []

    def _h_reg_read(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        offset, width = abi.CTRL_REG.unpack(payload)
        return abi.CTRL_REG_VALUE.pack(conn.session.reg_read(offset, width)), []

    def _h_reg_write(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        offset, width, value = abi.CTRL_REG_WRITE.unpack(payload)
        conn.session.reg_write(offset, width, value)
        return b"", []

    def _h_dma_map(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        iova, size, offset, flags = abi.CTRL_DMA_MAP.unpack(payload)
        try:
            conn.session.dma_map(fds[0], iova, size, offset, flags)
        finally:
            os.close(fds[0])  # the mapping keeps the pages; the fd is not needed any more
            fds.clear()
        return b"", []

    def _h_dma_unmap(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        iova, size = abi.CTRL_DMA_UNMAP.unpack(payload)
        conn.session.dma_unmap(iova, size)
        return b"", []

    def _h_set_irqs(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        first, count = abi.CTRL_FD_RANGE.unpack(payload)
        _check_eventfds(fds, count)
        conn.session.set_irqs(first, fds)
        return b"", []

    def _h_set_kicks(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        first, count = abi.CTRL_FD_RANGE.unpack(payload)
        _check_eventfds(fds, count)
        conn.session.set_kicks(first, fds)
        return b"", []

    def _h_set_notifier(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        _check_eventfds(fds, 1)
        conn.session.set_notifier(fds[0])
        return b"", []

    def _h_get_doorbells(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        # The daemon keeps its own fd; sendmsg duplicates it into the client.
        return abi.CTRL_U32.pack(abi.DOORBELL_PAGE_SIZE), [conn.session.doorbell_fd]

    def _h_reset(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        (scope,) = abi.CTRL_RESET.unpack(payload)
        if scope == abi.ResetScope.CONTROLLER:
            conn.session.controller_reset()
            return abi.CTRL_U32.pack(conn.session.reset_gen), []
        if scope == abi.ResetScope.DEVICE:
            gen = self.device_reset(conn.endpoint.config.bdf, initiator=conn.session)
            return abi.CTRL_U32.pack(gen), []
        raise SessionError(errno.EINVAL, f"unknown reset scope {scope}")

    def _h_passthru(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        if len(payload) != abi.CTRL_PASSTHRU.size + abi.SQE_SIZE:
            raise SessionError(errno.EINVAL, "PASSTHRU carries an 8-byte header and one 64-byte SQE")
        (qid,) = abi.CTRL_PASSTHRU.unpack_from(payload)
        cmd = abi.SQE.unpack_from(payload, abi.CTRL_PASSTHRU.size)
        status, result = conn.session.passthru(qid, cmd)
        return abi.CQE.pack(result & 0xFFFFFFFF, result >> 32, 0, qid, cmd[abi.SQE_CID], status | 1), []

    def _h_fault(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        req = _json(payload)
        ep = conn.endpoint
        if req.get("clear"):
            ep.faults.clear()
        specs = [F.FaultSpec.from_dict(d) for d in req.get("add", [])]
        for spec in specs:
            if spec.now:
                self._fire_now(ep, spec)
            else:
                ep.faults.add(spec)
        return json.dumps({"faults": ep.faults.list()}).encode(), []

    def _fire_now(self, ep: Endpoint, spec: F.FaultSpec) -> None:
        if spec.kind == F.FATAL:
            for s in ep.sessions:
                s.set_fatal("injected")
        elif spec.kind == F.REMOVE:
            self.request_removal(ep.config.bdf)
        elif spec.kind == F.DAEMON_DEATH:
            self.die()

    def _h_introspect(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        return json.dumps(self.introspect()).encode(), []

    def _h_stats(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        fw = conn.endpoint.firmware
        return json.dumps({"bdf": fw.bdf, "counters": fw.counters, "errors": fw.error_count,
                           "sessions": len(conn.endpoint.connections)}).encode(), []

    def introspect(self) -> dict[str, Any]:
        """Every connection's tables (queues, DMA maps, eventfds), per endpoint; plus open fds."""
        return {
            "pid": os.getpid(),
            "open_fds": _count_open_fds(),
            "endpoints": {
                bdf: {
                    "removed": ep.firmware.removed,
                    "reset_gen": ep.firmware.reset_gen,
                    "serial": ep.firmware.serial,
                    "socket": str(ep.socket_path),
                    "faults": ep.faults.list(),
                    "sessions": [s.describe() for s in ep.sessions],
                }
                for bdf, ep in self.endpoints.items()
            },
        }


def _fds_from_ancillary(anc: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(data[: len(data) - len(data) % a.itemsize])
            fds.extend(a)
    return fds


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()


def _check_eventfds(fds: list[int], count: int) -> None:
    if count != len(fds):
        raise SessionError(errno.EINVAL, f"count {count} but {len(fds)} fds attached")
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target != "anon_inode:[eventfd]":
            raise SessionError(errno.EINVAL, f"fd is not an eventfd ({target or 'unknown'})")


def _json(payload: memoryview) -> dict[str, Any]:
    try:
        value = json.loads(bytes(payload).decode())
    except (UnicodeDecodeError, ValueError):
        raise SessionError(errno.EINVAL, "payload is not JSON") from None
    if not isinstance(value, dict):
        raise SessionError(errno.EINVAL, "payload must be a JSON object")
    return value


def _count_open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _derived_serial(serial: str, seed: int) -> str:
    import hashlib

    digest = hashlib.sha256(f"{serial}:{seed}".encode()).hexdigest()[:16]
    return "-".join(digest[i : i + 2] for i in range(0, 16, 2))
