"""asyncio adapter: the same session, with completions delivered through the event loop.

The CQ eventfd of each queue is an ``add_reader`` source; reaping runs in the loop's thread (the
session's owner). Commands submitted during one loop iteration share one doorbell and one kick
(coalesced with ``call_soon``). Each command costs one asyncio future (~0.2 us, against ~1.9 us
for a concurrent.futures one), and the loop itself caps one queue at roughly 0.27 M cmd/s
(driver-core.md 2.2).

    async with await accelctl.endpoints.open_endpoint_async(name, fixture=...) as adev:
        cpl = await adev.execute(cmd.fill(0, 4096, 0xAB))
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from accelctl.driver.commands import Command
from accelctl.driver.session import IoQueue, Session
from accelctl.driver.tracker import Completion, Request
from accelctl.errors import CommandTimeoutError

_SERVICE_INTERVAL_S = 0.05


class AsyncQueue:
    def __init__(self, owner: AsyncSession, queue: IoQueue) -> None:
        self._owner = owner
        self.queue = queue
        self._pending: list[Request] = []
        self._flush_scheduled = False
        owner.loop.add_reader(queue.fileno(), self._reap)

    def _reap(self) -> None:
        self.queue.process_completions()

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        if pending:
            self.queue.qpair.submit_many(pending)

    def _on_done(self, req: Request) -> None:
        fut: asyncio.Future = req.user_data
        if not fut.done():  # the awaiting task may have given up (timeout, cancellation)
            fut.set_result(req)

    def submit(self, command: Command, *, timeout: float | None = None) -> asyncio.Future:
        """Queue a command for this loop iteration's doorbell; the future resolves to its Request."""
        loop = self._owner.loop
        fut = loop.create_future()
        req = Request(command.opcode, command.sqe, self._on_done, command.buffers, timeout, fut)
        self._pending.append(req)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        self._owner._ensure_service()
        return fut

    async def execute(self, command: Command, timeout: float | None = None) -> Completion:
        ctrl = self._owner.session.controller
        fut = self.submit(command, timeout=timeout)
        budget = (timeout or ctrl.io_timeout_s or 30.0) + ctrl.abort_timeout_s * 2 + ctrl.ready_timeout_s * 2
        try:
            req = await asyncio.wait_for(asyncio.shield(fut), budget)
        except asyncio.TimeoutError:
            raise CommandTimeoutError("command did not complete; it stays owned until the device "
                                      "completes it or a reset cancels it", timeout_s=budget) from None
        return ctrl.result_of(req)

    async def execute_many(self, commands: Iterable[Command], timeout: float | None = None) -> list[Completion]:
        return list(await asyncio.gather(*(self.execute(c, timeout) for c in commands)))

    def close(self) -> None:
        self._owner.loop.remove_reader(self.queue.fileno())


class AsyncSession:
    def __init__(self, session: Session, loop: asyncio.AbstractEventLoop) -> None:
        self.session = session
        self.loop = loop
        self._queues: list[AsyncQueue] = []
        self._service_handle: asyncio.TimerHandle | None = None
        ctrl = session.controller
        # Removal / fatal-status notices wake the loop like they wake a sync waiter.
        loop.add_reader(ctrl.control.fileno(), ctrl._on_control_readable, ctrl.control.fileno())
        loop.add_reader(ctrl.device_events.fd, ctrl._on_device_event, ctrl.device_events.fd)
        self._default: AsyncQueue | None = None

    def _ensure_service(self) -> None:
        if self._service_handle is None:
            self._service_handle = self.loop.call_later(_SERVICE_INTERVAL_S, self._service)

    def _service(self) -> None:
        """Timeout scan / pending reset while commands are outstanding (reaping first)."""
        self._service_handle = None
        self.session.process_completions()
        if self.session.outstanding:
            self._ensure_service()

    async def create_qpair(self, depth: int = 256) -> AsyncQueue:
        q = AsyncQueue(self, self.session.create_qpair(depth))
        self._queues.append(q)
        return q

    @property
    def queue(self) -> AsyncQueue:
        if self._default is None:
            self._default = AsyncQueue(self, self.session.queue)
            self._queues.append(self._default)
        return self._default

    async def execute(self, command: Command, timeout: float | None = None) -> Completion:
        if command.admin:
            # Admin commands are rare and short: run them synchronously in the loop's thread.
            return self.session.execute(command, timeout)
        return await self.queue.execute(command, timeout)

    def close(self) -> None:
        if self.session.closed:
            return
        for q in self._queues:
            q.close()
        ctrl = self.session.controller
        for fd in (ctrl.control.fileno(), ctrl.device_events.fd):
            try:
                self.loop.remove_reader(fd)
            except (ValueError, OSError):
                pass
        if self._service_handle is not None:
            self._service_handle.cancel()
        self.session.close()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
