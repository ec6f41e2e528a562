"""The simulator daemon: one selectors/epoll control loop serving every endpoint of a fixture.

It plays the kernel driver: one AF_UNIX SOCK_SEQPACKET listening socket per endpoint; each accepted
connection is an open file with its own :class:`Session`; each control message is an ioctl. The
data path (rings, doorbells, DMA buffers) never touches the socket: it is shared memory served by
each session's engine thread.

Robustness rules (security.md): a malformed, oversized or truncated message, or one carrying more
fds than allowed (or fds where none belong), drops that connection after closing every fd it
carried; the loop keeps serving everyone else. Every JSON payload is checked against its
command's schema before anything acts on it (messages.py); semantic errors get an errno reply and
their fds closed; an unexpected exception while handling one message is logged and answered EIO,
never allowed to end the loop. Connections and descriptors are budgeted per peer process
(quota.py).

Fault injection is administrative: it goes through ``admin.sock`` beside the endpoint sockets,
which only the daemon's own uid (or root) may use; a device socket answers FAULT with EPERM.
"""

from __future__ import annotations

import array
import errno
import json
import logging
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
from . import messages as M
from .config import EndpointConfig
from .devmem import DeviceMemoryMap
from .firmware import Firmware
from .iova import IovaError
from .quota import MAX_CONNECTIONS_PER_ENDPOINT, MAX_CONNECTIONS_PER_PEER, FdBudget, QuotaError, raise_fd_limit
from .session import Session, SessionError

_ANC_SIZE = socket.CMSG_SPACE(abi.CTRL_MAX_MSG_FDS * 4)
_PEERCRED = struct.Struct("3i")
LISTEN_BACKLOG = 64
#: The administrative socket's name in the socket directory (no BDF can take it).
ADMIN_SOCKET = "admin.sock"
#: Errors a handler may raise to refuse one request: their errno goes back to the sender.
_REFUSALS = (SessionError, IovaError, F.FaultSpecError, OSError, ValueError, struct.error)

log = logging.getLogger("accelctl.sim.daemon")


class DaemonError(OSError):
    """The daemon could not start (socket path taken, bad state dir, ...)."""


class ProtocolError(Exception):
    """A control message that breaks framing: the connection is dropped."""


@dataclass
class Connection:
    sock: socket.socket
    endpoint: Endpoint
    session: Session


@dataclass
class AdminConnection:
    """A connection to admin.sock, from the daemon's own uid or root."""

    sock: socket.socket
    peer_pid: int | None


@dataclass
class _Request:
    msg_id: int
    cmd: int
    flags: int
    payload: memoryview
    fds: list[int]


class Endpoint:
    def __init__(self, daemon: DeviceDaemon, config: EndpointConfig, socket_path: Path,
                 state_dir: Path | None, faults: list[F.FaultSpec]) -> None:
        self.daemon = daemon
        self.config = config
        self.socket_path = socket_path
        self.firmware = Firmware(config, state_dir)
        self.devmem = DeviceMemoryMap(self.firmware.memory_size, self.firmware.scrub)
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
        self.admin_socket_path = self.socket_dir / ADMIN_SOCKET
        self._admin_listener: socket.socket | None = None
        self._admin_conns: dict[int, AdminConnection] = {}
        #: Descriptor budgets, from the process limit (raised to the hard limit first).
        self.fd_budget = FdBudget(raise_fd_limit())
        #: An fd kept open to be closed when accept() meets EMFILE: then the pending connection
        #: can be accepted and closed instead of staying readable forever (a busy loop).
        self._spare_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
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
            CtrlCmd.FAULT: (self._h_fault_refused, 0, 0),
            CtrlCmd.INTROSPECT: (self._h_introspect, 0, 0),
            CtrlCmd.STATS: (self._h_stats, 0, 0),
            CtrlCmd.MEM_ALLOC: (self._h_mem_alloc, 0, 0),
            CtrlCmd.MEM_FREE: (self._h_mem_free, 0, 0),
        }
        self._admin_handlers: dict[int, tuple[Callable[..., tuple[bytes, list[int]]], int, int]] = {
            CtrlCmd.FAULT: (self._admin_fault, 0, 0),
            CtrlCmd.INTROSPECT: (self._admin_introspect, 0, 0),
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
                ep.listener = self._bind(ep.socket_path)
                self._sel.register(ep.listener, selectors.EVENT_READ, ("listen", ep))
            self._admin_listener = self._bind(self.admin_socket_path, mode=0o600)
            self._sel.register(self._admin_listener, selectors.EVENT_READ, ("admin-listen", None))
        except OSError:
            self._close_listeners()
            raise
        self._started = True

    def _bind(self, path: Path, mode: int | None = None) -> socket.socket:
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
        try:
            sock.bind(str(path))
            if mode is not None:
                os.chmod(path, mode)
            sock.listen(LISTEN_BACKLOG)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

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
                    try:
                        if kind == "listen":
                            self._accept(obj)
                        elif kind == "conn":
                            self._on_message(obj)
                        elif kind == "admin":
                            self._on_admin_message(obj)
                        elif kind == "admin-listen":
                            self._accept_admin()
                        else:
                            try:
                                os.eventfd_read(self._wake_fd)
                            except BlockingIOError:
                                pass
                    except Exception:  # noqa: BLE001 - one client's trouble never ends the loop
                        log.exception("control loop: %s event failed", kind)
                        if kind == "conn":
                            self._drop(obj)
                        elif kind == "admin":
                            self._drop_admin(obj)
                while self._deferred:
                    try:
                        self._deferred.popleft()()
                    except Exception:  # noqa: BLE001
                        log.exception("control loop: deferred work failed")
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
        for admin in list(self._admin_conns.values()):
            self._drop_admin(admin)
        self._close_listeners()
        for ep in self.endpoints.values():
            ep.firmware.close()
        try:
            self._sel.unregister(self._wake_fd)
        except (KeyError, ValueError):
            pass
        self._sel.close()
        os.close(self._wake_fd)
        os.close(self._spare_fd)

    def _close_listeners(self) -> None:
        for ep in self.endpoints.values():
            self._close_listener(ep)
        self._unlisten(self._admin_listener, self.admin_socket_path)
        self._admin_listener = None

    def _close_listener(self, ep: Endpoint) -> None:
        self._unlisten(ep.listener, ep.socket_path)
        ep.listener = None

    def _unlisten(self, sock: socket.socket | None, path: Path) -> None:
        """Stop listening on ``sock`` and remove its socket file."""
        if sock is None:
            return
        self._forget(sock)
        sock.close()
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def _forget(self, sock: socket.socket) -> None:
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError):
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

    def _accept_socket(self, listener: socket.socket) -> tuple[socket.socket, int | None, int | None] | None:
        """One pending connection and its peer's (pid, uid); None when there is none. At the
        descriptor limit the connection is accepted and closed at once (never left pending)."""
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            os.close(self._spare_fd)
            try:
                listener.accept()[0].close()
            except OSError:
                pass
            self._spare_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            log.warning("descriptor limit reached: refused a connection")
            return None
        try:
            pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        except OSError:
            pid = uid = None
        return sock, pid, uid

    def _accept(self, ep: Endpoint) -> None:
        assert ep.listener is not None
        accepted = self._accept_socket(ep.listener)
        if accepted is None:
            return
        sock, pid, _uid = accepted
        if len(ep.connections) >= MAX_CONNECTIONS_PER_ENDPOINT or ep.firmware.removed \
                or self._peer_connections(pid) >= MAX_CONNECTIONS_PER_PEER:
            sock.close()
            return
        sessions = self._all_sessions()
        try:
            self.fd_budget.check(sessions, pid, 5, "connect")
        except QuotaError:
            sock.close()
            return
        sock.setblocking(False)
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

    def _all_sessions(self) -> list[Session]:
        return [c.session for ep in self.endpoints.values() for c in ep.connections.values()]

    def _peer_connections(self, pid: int | None) -> int:
        return sum(1 for s in self._all_sessions() if s.peer_pid == pid)

    def check_fd_budget(self, session: Session, more: int, what: str) -> None:
        """Raise QuotaError (ENOSPC) when ``session``'s peer may not make the daemon hold
        ``more`` descriptors (called by a session before it keeps new ones)."""
        self.fd_budget.check(self._all_sessions(), session.peer_pid, more, what)

    def _drop(self, conn: Connection) -> None:
        """EOF, error or protocol violation: the file's release()."""
        ep = conn.endpoint
        fileno = conn.sock.fileno()
        if fileno >= 0:
            self._forget(conn.sock)
            ep.connections.pop(fileno, None)
        conn.session.release()
        conn.sock.close()

    def _read_request(self, sock: socket.socket, handlers: dict[int, tuple[Any, int, int]]) -> _Request | None:
        """The next request on ``sock``; None when there is nothing to read. Raises ProtocolError
        (every fd it carried closed) for EOF or a message that breaks framing."""
        fds: list[int] = []
        try:
            data, anc, flags, _ = sock.recvmsg(abi.CTRL_MAX_MSG_SIZE, _ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise ProtocolError(f"receive failed: {exc}") from None
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
            entry = handlers.get(cmd)
            if entry is not None and not entry[1] <= len(fds) <= entry[2]:
                raise ProtocolError(f"command {cmd} with {len(fds)} fds")
            if entry is None and fds:
                raise ProtocolError("unknown command with fds")
        except ProtocolError:
            _close_fds(fds)
            raise
        return _Request(msg_id, cmd, mflags, memoryview(data)[abi.CTRL_HEADER_SIZE:], fds)

    def _dispatch(self, req: _Request, handler: Callable[[], tuple[bytes, list[int]]] | None
                  ) -> tuple[int, bytes, list[int]]:
        """Run one request's handler: (errno, reply body, reply fds). A refusal's errno goes back
        to the sender; anything unexpected is logged and answered EIO: it hurts only this request."""
        try:
            if handler is None:
                raise SessionError(errno.ENOTTY, f"unknown control command {req.cmd}")
            body, reply_fds = handler()
            req.fds = []  # consumed
            return 0, body, reply_fds
        except _REFUSALS as exc:
            err = getattr(exc, "errno", None) or errno.EINVAL
            text = getattr(exc, "strerror", None) or str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug in one handler must not end the loop
            log.exception("control command %s failed", req.cmd)
            err, text = errno.EIO, f"internal error in the simulator ({type(exc).__name__}); see its log"
        finally:
            _close_fds(req.fds)
        return err, str(text).encode()[:1024], []

    def _reply(self, sock: socket.socket, req: _Request, err: int, body: bytes, reply_fds: list[int]) -> bool:
        """Send the reply; False when the peer does not take it (its connection is to be dropped)."""
        if req.flags & abi.CtrlFlags.NO_REPLY and not err:
            return True
        rflags = abi.CtrlFlags.REPLY | (abi.CtrlFlags.ERROR if err else 0)
        header = abi.CTRL_HEADER.pack(req.msg_id, req.cmd, abi.CTRL_HEADER_SIZE + len(body), int(rflags), err)
        anc_out = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", reply_fds).tobytes())] if reply_fds else []
        try:
            sock.sendmsg([header, body], anc_out, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        except OSError:
            return False  # a client that does not read its replies loses its connection
        return True

    def _on_message(self, conn: Connection) -> None:
        try:
            req = self._read_request(conn.sock, self._handlers)
        except ProtocolError:
            self._drop(conn)
            return
        if req is None:
            return
        entry = self._handlers.get(req.cmd)
        handler = None
        if entry is not None:
            def handler() -> tuple[bytes, list[int]]:
                if req.cmd not in (CtrlCmd.GET_INFO, CtrlCmd.INTROSPECT, CtrlCmd.STATS):
                    conn.session.check_live()
                return entry[0](conn, req.payload, req.fds)
        err, body, reply_fds = self._dispatch(req, handler)
        if self.dead or conn.sock.fileno() < 0:
            return
        if not self._reply(conn.sock, req, err, body, reply_fds):
            self._drop(conn)

    # --- the administrative socket ------------------------------------------------------------

    def _accept_admin(self) -> None:
        assert self._admin_listener is not None
        accepted = self._accept_socket(self._admin_listener)
        if accepted is None:
            return
        sock, pid, uid = accepted
        # Only the daemon's own uid (or root): the socket's mode says the same, this makes sure.
        if uid not in (0, os.geteuid()) or len(self._admin_conns) >= MAX_CONNECTIONS_PER_PEER:
            sock.close()
            return
        sock.setblocking(False)
        conn = AdminConnection(sock, pid)
        self._admin_conns[sock.fileno()] = conn
        self._sel.register(sock, selectors.EVENT_READ, ("admin", conn))

    def _drop_admin(self, conn: AdminConnection) -> None:
        fileno = conn.sock.fileno()
        if fileno >= 0:
            self._forget(conn.sock)
            self._admin_conns.pop(fileno, None)
        conn.sock.close()

    def _on_admin_message(self, conn: AdminConnection) -> None:
        try:
            req = self._read_request(conn.sock, self._admin_handlers)
        except ProtocolError:
            self._drop_admin(conn)
            return
        if req is None:
            return
        entry = self._admin_handlers.get(req.cmd)
        handler = None if entry is None else (lambda: entry[0](req.payload))
        err, body, reply_fds = self._dispatch(req, handler)
        if conn.sock.fileno() >= 0 and not self._reply(conn.sock, req, err, body, reply_fds):
            self._drop_admin(conn)

    def _admin_fault(self, payload: memoryview) -> tuple[bytes, list[int]]:
        """FAULT on admin.sock: ``{"bdf": one endpoint or null for all, "clear": bool, "add": [...]}``;
        every spec is checked before any is armed. Replies the faults now armed, per endpoint."""
        bdf, clear, raw_specs = M.fault_request(payload)
        if bdf is not None and bdf not in self.endpoints:
            raise SessionError(errno.EINVAL, f"no endpoint {bdf}")
        targets = [self.endpoints[bdf]] if bdf is not None else list(self.endpoints.values())
        for d in raw_specs:
            F.FaultSpec.from_dict(dict(d))  # all checked before any is armed
        for ep in targets:
            if clear:
                ep.faults.clear()
            for d in raw_specs:
                spec = F.FaultSpec.from_dict(dict(d))  # each endpoint its own match counters
                if spec.now:
                    self._fire_now(ep, spec)
                else:
                    ep.faults.add(spec)
        if bdf is not None:
            return json.dumps({"faults": targets[0].faults.list()}).encode(), []
        return json.dumps({"faults": {ep.config.bdf: ep.faults.list() for ep in targets}}).encode(), []

    def _admin_introspect(self, payload: memoryview) -> tuple[bytes, list[int]]:
        return json.dumps(self.introspect()).encode(), []

    # ==========================================================================================
    # control command handlers: (conn, payload, fds) -> (reply body, reply fds)
    # ==========================================================================================

    def _h_version(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        want = M.version_request(payload) or abi.ABI_VERSION
        if want[0] != abi.ABI_VERSION[0]:
            raise SessionError(errno.EPROTO, f"ABI major {want[0]} not supported (device speaks {abi.ABI_VERSION})")
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
            "features": ["sgl", "passthru", "introspect", "device_poll", abi.FEATURE_NEED_WAKEUP,
                         "device_memory_allocation"],
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

    def _h_mem_alloc(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        address, size, flags = abi.CTRL_MEM_ALLOC.unpack(payload)
        if flags:
            raise SessionError(errno.EINVAL, f"unknown MEM_ALLOC flags {flags:#x}")
        start = conn.session.mem_alloc(None if address == abi.MEM_ANY else address, size)
        return abi.CTRL_MEM_ADDR.pack(start), []

    def _h_mem_free(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        (address,) = abi.CTRL_MEM_ADDR.unpack(payload)
        conn.session.mem_free(address)
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

    def _h_fault_refused(self, conn: Connection, payload: memoryview, fds: list[int]) -> tuple[bytes, list[int]]:
        # A fault hits every session of the endpoint: not something one session may do to others.
        raise SessionError(errno.EPERM, f"fault injection is administrative: use {self.admin_socket_path}")

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


def _count_open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _derived_serial(serial: str, seed: int) -> str:
    import hashlib

    digest = hashlib.sha256(f"{serial}:{seed}".encode()).hexdigest()[:16]
    return "-".join(digest[i : i + 2] for i in range(0, 16, 2))
