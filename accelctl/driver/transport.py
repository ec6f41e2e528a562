"""The control channel to a device endpoint: "ioctls" over a Unix SEQPACKET socket.

One connection is one open file of the device: the daemon keeps a context per connection and
releases all of it when the socket closes (or the process dies). Every request carries a msg_id;
replies are matched by it and never assumed in order. File descriptors (memfds, eventfds) travel
with SCM_RIGHTS; a reply whose control data was truncated (MSG_CTRUNC) is rejected and every fd
that did arrive is closed, so no fd leaks on an error path (driver-core.md pitfall 19).

The socket is only for the slow path; submissions and completions never go through it.
"""

from __future__ import annotations

import array
import errno
import os
import select
import socket
import struct
import time
from collections.abc import Sequence

from accelctl.protocol import abi
from accelctl.errors import BackendError, DeviceRemovedError

_MAX_FDS = 16
_PEERCRED = struct.Struct("3i")
_FD_SPACE = socket.CMSG_SPACE(_MAX_FDS * array.array("i").itemsize)


def recv_with_fds(sock: socket.socket, bufsize: int) -> tuple[bytes, list[int]]:
    """One message and the fds that came with it; raises (closing the fds) on truncation."""
    data, ancdata, flags, _ = sock.recvmsg(bufsize, _FD_SPACE)
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(payload[: len(payload) - (len(payload) % arr.itemsize)])
            fds.extend(arr)
    if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
        for fd in fds:
            os.close(fd)
        raise BackendError("control message truncated (fds or payload lost)")
    return data, fds


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _cmd_name(cmd: int) -> str:
    try:
        return f"control command {abi.CtrlCmd(cmd).name}"
    except ValueError:
        return f"control command {cmd}"


class ControlChannel:
    """Request/reply over one SEQPACKET connection to an endpoint socket."""

    def __init__(self, path: str, *, timeout_s: float = 5.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            self._sock.connect(path)
        except OSError as exc:
            self._sock.close()
            raise DeviceRemovedError(f"cannot connect to the device at {path}: {exc.strerror}") from exc
        self._check_server()
        self._next_id = 1
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self.closed = False
        #: Unsolicited messages (device events) received while waiting for a reply.
        self.events: list[tuple[int, bytes]] = []

    def _check_server(self) -> None:
        """The driver at the other end runs as root or as us: a socket another user's process
        serves (a squatted runtime directory) never gets our data (security.md)."""
        try:
            _pid, uid, _gid = _PEERCRED.unpack(
                self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        except OSError:
            return  # not a Unix socket with credentials (cannot happen for AF_UNIX)
        if uid not in (0, os.geteuid()):
            self._sock.close()
            err = BackendError(f"refusing the device at {self.path}: it is served by uid {uid}, not by root or us")
            err.errno = errno.EACCES
            raise err

    def fileno(self) -> int:
        return self._sock.fileno()

    def request(
        self, cmd: int, payload: bytes = b"", fds: Sequence[int] = (), *, timeout_s: float | None = None
    ) -> tuple[bytes, list[int]]:
        """Send one request and wait for its reply. Returns (reply payload, received fds).

        Raises BackendError with the daemon's errno on an error reply, DeviceRemovedError when the
        connection is gone, BackendError(ETIMEDOUT) when no reply comes in time.
        """
        if self.closed:
            raise DeviceRemovedError("control channel is closed")
        msg_id = self._next_id
        self._next_id = (msg_id + 1) & 0xFFFF or 1
        header = abi.CTRL_HEADER.pack(msg_id, cmd, abi.CTRL_HEADER_SIZE + len(payload), 0, 0)
        try:
            if fds:
                self._sock.sendmsg(
                    [header, payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                )
            else:
                self._sock.send(header + payload)
        except OSError as exc:
            raise DeviceRemovedError(f"device connection lost ({exc.strerror})") from exc
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BackendError(f"no reply to {_cmd_name(cmd)} within the timeout")
            if not self._poll.poll(remaining * 1000):
                continue
            try:
                data, rfds = recv_with_fds(self._sock, abi.CTRL_MAX_MSG_SIZE)
            except ConnectionError as exc:
                raise DeviceRemovedError("device connection lost") from exc
            if not data:
                self.closed = True
                raise DeviceRemovedError("the device closed the connection (daemon gone or device removed)")
            if len(data) < abi.CTRL_HEADER_SIZE:
                _close_all(rfds)
                raise BackendError(f"short control reply ({len(data)} bytes)")
            r_id, r_cmd, _size, r_flags, r_errno = abi.CTRL_HEADER.unpack_from(data)
            body = data[abi.CTRL_HEADER_SIZE:]
            if not r_flags & abi.CtrlFlags.REPLY:
                _close_all(rfds)
                self.events.append((r_cmd, body))
                continue
            if r_id != msg_id:
                _close_all(rfds)  # a late reply to a request we gave up on
                continue
            if r_flags & abi.CtrlFlags.ERROR:
                _close_all(rfds)
                code = r_errno or errno.EIO
                detail = body.decode("utf-8", "replace") or os.strerror(code)
                err = BackendError(f"{_cmd_name(cmd)} failed: {detail}")
                err.errno = code
                raise err
            return body, rfds

    def close(self) -> None:
        if not self.closed:
            self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass
