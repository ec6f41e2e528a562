"""The public synchronous API of the driver core.

    from accelctl.endpoints import open_endpoint      # by name, on a machine; or Session(socket)
    from accelctl.driver import commands as cmd

    with open_endpoint("card0.ep0", fixture="two-socket") as dev:
        buf = dev.alloc_dma(1 << 20)                 # registered, pre-faulted, zero-copy view
        buf.view[:5] = b"hello"
        dev.execute(cmd.write(0x0, buf))              # sync: submit + reap here; raises on error
        q = dev.create_qpair(depth=256)
        q.submit_many([cmd.fill(i * 4096, 4096, i) for i in range(32)], callback=done)  # one doorbell
        while q.outstanding:
            dev.poll(timeout=0.1)                    # callbacks run here, in this thread

Threading rule (SPDK's): a session and its queues belong to the thread that uses them; callbacks
run only inside ``execute``/``process_completions``/``poll``; there is no hidden reaper thread.
Use one session (or one qpair plus your own lock) per thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from accelctl.protocol import abi
from accelctl.driver import commands as cmds
from accelctl.driver.commands import Command
from accelctl.driver.controller import Controller
from accelctl.driver.dma import BufferPool, DmaBuffer
from accelctl.driver.notify import WaitMode
from accelctl.driver.qpair import QueuePair
from accelctl.driver.tracker import Completion, Request
from accelctl.errors import DeviceNotFoundError

class IoQueue:
    """An IO queue pair of a session, with the command-level API."""

    def __init__(self, session: Session, qp: QueuePair) -> None:
        self.session = session
        self.qpair = qp
        self._ctrl = session.controller

    @property
    def qid(self) -> int:
        return self.qpair.qid

    @property
    def outstanding(self) -> int:
        return self.qpair.outstanding

    def submit(self, command: Command, callback: Callable[[Request], Any] | None = None, *,
               timeout: float | None = None, user_data: Any = None) -> Request:
        """Send one command now (one doorbell); ``callback(request)`` runs once when it ends."""
        return self._ctrl.submit(self.qpair, command, callback, timeout_s=timeout, user_data=user_data)

    def submit_many(self, commands: Iterable[Command], callback: Callable[[Request], Any] | None = None, *,
                    timeout: float | None = None) -> list[Request]:
        """Send a batch with one doorbell store and one kick."""
        reqs = [Request(c.opcode, c.sqe, callback, c.buffers, timeout) for c in commands]
        self.qpair.submit_many(reqs)
        return reqs

    def execute(self, command: Command, timeout: float | None = None) -> Completion:
        """Submit and wait in this thread; returns the completion or raises its typed error."""
        return self._ctrl.execute(self.qpair, command, timeout)

    def wait(self, request: Request, timeout: float | None = None) -> Completion:
        """Wait for a submitted request (reaping here) and return its completion or raise."""
        if not request.done:
            self._ctrl.wait_for(self.qpair, request, timeout)
        return self._ctrl.result_of(request)

    def process_completions(self, max_completions: int = 0) -> int:
        """Reap what completed and run the callbacks here. Never blocks."""
        n = self.qpair.process_completions(max_completions)
        self._ctrl.service()
        return n

    def fileno(self) -> int:
        """The completion eventfd: readable when completions may be waiting (interrupt mode)."""
        return self.qpair.fileno()

    def close(self) -> None:
        if self.qpair.qid in self._ctrl.io_qpairs:
            self._ctrl.delete_qpair(self.qpair)


class Session:
    """One open endpoint: a connection to its driver, a controller, queues and DMA buffers."""

    def __init__(self, socket_path: str, *, bdf: str | None = None, **controller_options: Any) -> None:
        self.bdf = bdf
        self.socket_path = socket_path
        self.controller = Controller(socket_path, **controller_options)
        self._default: IoQueue | None = None
        self._queues: list[IoQueue] = []
        self.pool = BufferPool(self.alloc_dma)
        self.closed = False

    # -- queues and buffers ---------------------------------------------------------------------

    def create_qpair(self, depth: int = 256) -> IoQueue:
        q = IoQueue(self, self.controller.create_qpair(depth))
        self._queues.append(q)
        return q

    @property
    def queue(self) -> IoQueue:
        """The default IO queue, created on first use."""
        if self._default is None:
            self._default = self.create_qpair()
        return self._default

    def alloc_dma(self, size: int) -> DmaBuffer:
        """A new DMA buffer, pre-faulted and registered with the device. Close it when done."""
        return self.controller.alloc_dma(size)

    def register(self, buf: DmaBuffer) -> DmaBuffer:
        return self.controller.register(buf)

    def unregister(self, buf: DmaBuffer) -> None:
        """Refused (BufferBusyError) while commands still use the buffer."""
        self.controller.unregister(buf)

    def alloc_device_memory(self, size: int, *, address: int | None = None) -> int:
        """Device memory no other session can read or write (zeroed now, and again when freed
        or when this session closes); its device address. Memory not allocated is the device's
        shared scratch space."""
        return self.controller.alloc_device_memory(size, address)

    def free_device_memory(self, address: int) -> None:
        self.controller.free_device_memory(address)

    # -- commands -------------------------------------------------------------------------------

    def execute(self, command: Command, timeout: float | None = None) -> Completion:
        """Run one command synchronously: admin commands on the admin queue, IO on the default one."""
        if command.admin:
            return self.controller.execute_admin(command, timeout)
        return self.queue.execute(command, timeout)

    def submit(self, command: Command, callback: Callable[[Request], Any] | None = None, *,
               timeout: float | None = None) -> Request:
        qp = self.controller.admin if command.admin else self.queue.qpair
        return self.controller.submit(qp, command, callback, timeout_s=timeout)

    def submit_many(self, commands: Iterable[Command], callback: Callable[[Request], Any] | None = None, *,
                    timeout: float | None = None) -> list[Request]:
        return self.queue.submit_many(commands, callback, timeout=timeout)

    def process_completions(self) -> int:
        """Reap every queue of the session (callbacks run here). Never blocks."""
        ctrl = self.controller
        n = sum(qp.process_completions() for qp in ctrl._all_qpairs())
        ctrl.service()
        return n

    def poll(self, timeout: float = 0.0) -> int:
        """Reap; when nothing completed, wait up to ``timeout`` for a completion, then reap."""
        n = self.process_completions()
        if n or timeout <= 0:
            return n
        self.controller.waiter.sleep(timeout)
        return self.process_completions()

    def fileno(self) -> int:
        """An fd readable when any queue of the session may have completions (epoll set)."""
        return self.controller.waiter.fileno()

    @property
    def outstanding(self) -> int:
        return self.controller.outstanding

    def reset(self, *, device: bool = False) -> None:
        """Controller reset: in-flight commands end once with a retryable abort, queued ones go
        out afterwards in order. Raises DeviceFailedError when recovery gives up.

        ``device=True`` resets the whole endpoint: other sessions of it become stale."""
        self.controller.reset(device=device)
        self.controller._check_usable()

    # -- admin conveniences -----------------------------------------------------------------------

    def identify(self) -> dict:
        return cmds.decode_identify_controller(self.controller.identify_raw(abi.IdentifyCns.CONTROLLER))

    def identify_endpoint(self) -> dict:
        return cmds.decode_identify_endpoint(self.controller.identify_raw(abi.IdentifyCns.ENDPOINT))

    def log_page(self, name: str) -> Any:
        """Decoded log page: "health", "error" or "firmware"."""
        log_id, size, decode = cmds.LOG_PAGES[name]
        buf = self.alloc_dma(size)
        try:
            self.execute(cmds.get_log_page(buf, log_id, size))
            return decode(bytes(buf.view))
        finally:
            buf.close()

    def get_feature(self, feature: int) -> int:
        return self.execute(cmds.get_features(feature)).result & 0xFFFFFFFF

    def set_feature(self, feature: int, value: int) -> int:
        return self.execute(cmds.set_features(feature, value)).result & 0xFFFFFFFF

    # -- data movement conveniences (chunked through pooled buffers) ---------------------------

    def write_memory(self, dev_addr: int, data: bytes | memoryview, *, chunk: int = 4 << 20) -> int:
        """Copy host bytes to device memory at ``dev_addr``; returns bytes written."""
        mv = memoryview(data).cast("B")
        buf = self.pool.get(min(chunk, max(len(mv), 1)))
        try:
            for off in range(0, len(mv), buf.size):
                n = min(buf.size, len(mv) - off)
                buf.view[:n] = mv[off:off + n]
                self.execute(cmds.write(dev_addr + off, buf, 0, n))
        finally:
            self.pool.put(buf)
        return len(mv)

    def read_memory(self, dev_addr: int, length: int, *, chunk: int = 4 << 20) -> bytes:
        out = bytearray(length)
        buf = self.pool.get(min(chunk, max(length, 1)))
        try:
            for off in range(0, length, buf.size):
                n = min(buf.size, length - off)
                self.execute(cmds.read(dev_addr + off, buf, 0, n))
                out[off:off + n] = buf.view[:n]
        finally:
            self.pool.put(buf)
        return bytes(out)

    def compare_memory(self, dev_addr: int, data: bytes | memoryview, *, chunk: int = 4 << 20) -> int | None:
        """None when device memory equals ``data``; else the offset of the first difference."""
        mv = memoryview(data).cast("B")
        buf = self.pool.get(min(chunk, max(len(mv), 1)))
        q = self.queue
        try:
            for off in range(0, len(mv), buf.size):
                n = min(buf.size, len(mv) - off)
                buf.view[:n] = mv[off:off + n]
                req = q.submit(cmds.compare(dev_addr + off, buf, 0, n))
                if not req.done:
                    self.controller.wait_for(q.qpair, req, None)
                cpl = req.completion
                if cpl is not None and cpl.sct == abi.StatusCodeType.MEDIA and cpl.sc == abi.MediaStatus.COMPARE_FAILURE:
                    return off + (cpl.result & 0xFFFFFFFF)
                self.controller.result_of(req)  # raises any other error
        finally:
            self.pool.put(buf)
        return None

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Drain (bounded), disable, release queues and the pool. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self.controller.close()
        finally:
            for buf in self.pool.buffers:
                if buf.refs == 0:
                    buf.iova = None
                    buf._owner = None
            self.pool.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A session nobody closed: garbage collection may run it at any time, in any thread, so
        # no device I/O (drain, register write) and no callbacks, only this process's fds and
        # maps. Closing the socket is what tells the daemon to release its side. close() is the
        # orderly way.
        if getattr(self, "closed", True):
            return
        self.closed = True
        try:
            self.controller.abandon()
            self.pool.abandon()
        except Exception:  # noqa: BLE001 - nothing may escape a finalizer (interpreter exit included)
            pass
