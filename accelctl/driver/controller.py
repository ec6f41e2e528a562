"""The controller of one session: bring-up, admin queue, IO queues, abort, async events,
keep-alive and the timeout / reset / recovery state machine.

States: ENABLING -> LIVE -> RESETTING -> LIVE, or FAILED after ``max_resets`` consecutive failed
resets, or REMOVED (socket EOF, CSTS all-ones). FAILED and REMOVED are terminal: queued and new
commands fail at once with DNR set.

Timeout escalation (Linux nvme_timeout, SPDK bdev_nvme), for a command past its deadline:
  1. reap the CQ: if that completes it, the interrupt was lost ("completion polled", counted);
  2. CSTS fatal or gone -> reset / removed;
  3. admin command, or already aborted once -> controller reset;
  4. no abort credit free (ACL+1) -> re-arm and wait;
  5. otherwise send ABORT(sqid, cid) and re-arm; an abort that fails or answers
     "not aborted" (cdw0 bit 0, SPDK #2131) while the command is still live -> reset.

Reset (client-driven, pitfalls 5, 11, 12): stop submitting (new work queues up); CC.EN=0 and wait
for RDY=0, after which the device touches neither old queues nor old buffers; *then* reap what it
posted before, and end every command still owned with ABORTED_SQ_DELETION (retryable, exactly once
through ``finish``); zero the rings; re-enable; recreate the IO queues in the same memory with
admin commands; re-arm AERs; resubmit the queued work in FIFO order. No admin command is sent to
the sick device before the disable. A timeout never releases a buffer: only a CQE or the
disable-then-cancel path does.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from accelctl.protocol import abi
from accelctl.driver import commands as cmds
from accelctl.driver.commands import Command
from accelctl.driver.dma import PAGE_SIZE, DmaBuffer, IovaAllocator, round_up
from accelctl.driver.notify import EventFd, Waiter, WaitMode
from accelctl.protocol.fence import make_fence
from accelctl.driver.qpair import QueuePair, QueueState
from accelctl.driver.tracker import Completion, Request, RequestState
from accelctl.driver.transport import ControlChannel
from accelctl.errors import (
    BackendError,
    BufferBusyError,
    CommandAbortedError,
    CommandError,
    CommandTimeoutError,
    DeviceFailedError,
    DeviceRemovedError,
    DriverError,
    SessionStaleError,
)


class ControllerState(str, Enum):
    ENABLING = "enabling"
    LIVE = "live"
    RESETTING = "resetting"
    FAILED = "failed"
    REMOVED = "removed"
    STALE = "stale"
    CLOSED = "closed"


_TERMINAL = (ControllerState.FAILED, ControllerState.REMOVED, ControllerState.STALE, ControllerState.CLOSED)


class RecoveryCounters:
    __slots__ = ("timeouts", "aborts_sent", "aborts_not_aborted", "resets", "reset_failures",
                 "async_events", "keep_alives", "bring_up_retries")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Controller:
    """Owns the control channel, the doorbell page, the admin qpair and the IO qpairs."""

    def __init__(
        self,
        socket_path: str,
        *,
        wait: WaitMode | str = WaitMode.INTERRUPT,
        admin_depth: int = 32,
        admin_timeout_s: float = 5.0,
        io_timeout_s: float | None = 5.0,
        abort_timeout_s: float = 1.0,
        max_resets: int = 3,
        ready_timeout_s: float = 5.0,
        control_timeout_s: float = 5.0,
        keep_alive_ms: int = 0,
        strict: bool = False,
        need_wakeup: bool = True,
    ) -> None:
        self.wait_mode = WaitMode(wait)
        # Plain bools for the per-command checks (an Enum member lookup costs ~90 ns here).
        self._poll_mode = self.wait_mode is WaitMode.POLL
        self._interrupt_mode = self.wait_mode is WaitMode.INTERRUPT
        #: Use the device's NEED_WAKEUP flags to skip kicks while its engine is awake (when offered).
        self.need_wakeup = need_wakeup
        self.admin_timeout_s = admin_timeout_s
        self.io_timeout_s = io_timeout_s
        self.abort_timeout_s = abort_timeout_s
        self.max_resets = max_resets
        self.ready_timeout_s = ready_timeout_s
        self.keep_alive_ms = keep_alive_ms
        self.strict = strict
        self.state = ControllerState.ENABLING
        self.counters = RecoveryCounters()
        self.events: list[int] = []  # async event words, oldest first
        self.iovas = IovaAllocator()
        self.buffers: set[DmaBuffer] = set()  # registered with this session
        self.io_qpairs: dict[int, QueuePair] = {}
        self._queue_memory: dict[int, DmaBuffer] = {}
        self._abort_credits = 1
        self._reset_pending = False
        self._next_keep_alive = 0.0
        self._aer: Request | None = None
        self.failure_reason = ""
        self.control = ControlChannel(socket_path, timeout_s=control_timeout_s)
        try:
            self._bring_up(admin_depth)
        except BaseException:
            self._teardown_local()
            raise

    # ------------------------------------------------------------------------------------------
    # bring-up
    # ------------------------------------------------------------------------------------------

    def _bring_up(self, admin_depth: int) -> None:
        body, _ = self.control.request(abi.CtrlCmd.VERSION, json.dumps({"abi": list(abi.ABI_VERSION)}).encode())
        self.caps: dict[str, Any] = json.loads(body or b"{}")
        #: The full fence for the NEED_WAKEUP handshake, when the device offers it (ABI 1.1) and
        #: this CPU has one; None = kick on every doorbell (the 1.0 protocol).
        self._fence = None
        features = self.caps.get("features") if isinstance(self.caps, dict) else None
        if isinstance(features, list) and abi.FEATURE_NEED_WAKEUP in features and self.need_wakeup:
            self._fence = make_fence()
        reply, fds = self.control.request(abi.CtrlCmd.GET_DOORBELLS)
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise BackendError("GET_DOORBELLS returned no doorbell page")
        (size,) = abi.CTRL_U32.unpack_from(reply) if len(reply) >= 4 else (abi.DOORBELL_PAGE_SIZE,)
        try:
            self._doorbell_map = mmap.mmap(fds[0], size or abi.DOORBELL_PAGE_SIZE)
        finally:
            os.close(fds[0])
        self.doorbells = memoryview(self._doorbell_map).cast("I")
        self.device_events = EventFd()
        self.control.request(abi.CtrlCmd.SET_EVENT_NOTIFIER, fds=[self.device_events.fd])
        self.waiter = Waiter(self.wait_mode)
        self.waiter.watch(self.control.fileno(), self._on_control_readable)
        self.waiter.watch(self.device_events.fd, self._on_device_event)
        self.admin = self._make_qpair(abi.ADMIN_QID, admin_depth)
        self.admin.default_timeout_s = self.admin_timeout_s
        self._enable()
        ident = self._bring_up_step(lambda: self.identify_raw(abi.IdentifyCns.CONTROLLER))
        fields = abi.IDENTIFY_CONTROLLER.unpack_from(ident)
        self.identity = ident
        self.max_queue_entries = fields[7]
        self._abort_credits = fields[8] + 1  # ACL is 0's based
        self.max_queues = fields[6]
        self.mdts = fields[11]
        self.memory_size = fields[12]
        if self._aer is None or self._aer.state >= RequestState.DONE:  # a recovery re-arms it itself
            self._arm_async_events()
        if self.wait_mode is not WaitMode.INTERRUPT:
            # The device spins on the SQ doorbell before sleeping on its kick, so a spinning host
            # sees ~2 us round trips instead of an eventfd wake-up on each side.
            self._bring_up_step(lambda: self.execute_admin(cmds.set_features(abi.Feature.DEVICE_POLL_US, 200)))
        if self.keep_alive_ms:
            self._bring_up_step(
                lambda: self.execute_admin(cmds.set_features(abi.Feature.KEEP_ALIVE_TIMER, self.keep_alive_ms)))
            self._next_keep_alive = time.monotonic() + self.keep_alive_ms / 2000
        self.state = ControllerState.LIVE

    def _bring_up_step(self, step: Callable[[], Any]) -> Any:
        """One admin command of bring-up, retried when it ends with a retryable error.

        A lost completion makes the command time out; recovery resets the controller and ends
        the command ABORTED_SQ_DELETION, which is retryable: after open, a caller would retry
        it, so open does too (it used to give up: issue 14). At most ``max_resets`` retries;
        a reset that fails marks the controller failed and the retry raises that instead."""
        attempt = 0
        while True:
            try:
                return step()
            except CommandAbortedError as exc:
                attempt += 1
                if not exc.retryable or attempt > self.max_resets or self.state in _TERMINAL:
                    raise
                self.counters.bring_up_retries += 1

    def _make_qpair(self, qid: int, depth: int) -> QueuePair:
        sq_bytes = round_up(depth * abi.SQE_SIZE, PAGE_SIZE)
        cq_bytes = round_up(depth * abi.CQE_SIZE, PAGE_SIZE)
        mem = self._queue_memory.get(qid)
        if mem is None:
            mem = DmaBuffer(sq_bytes + cq_bytes, name=f"accelctl-q{qid}")
            self.register(mem)
            self._queue_memory[qid] = mem
        kick, irq = EventFd(), EventFd()
        self.control.request(abi.CtrlCmd.SET_KICKS, abi.CTRL_FD_RANGE.pack(qid, 1), [kick.fd])
        self.control.request(abi.CtrlCmd.SET_IRQS, abi.CTRL_FD_RANGE.pack(qid, 1), [irq.fd])
        qp = QueuePair(self, qid, depth, mem.view[:sq_bytes], mem.view[sq_bytes:], self.doorbells,
                       abi.sq_doorbell_index(qid), abi.cq_doorbell_index(qid), kick, irq, strict=self.strict)
        qp.drain_irq = self.wait_mode is WaitMode.INTERRUPT or self.wait_mode is WaitMode.HYBRID
        if self._fence is not None:
            qp.enable_need_wakeup(self._fence)
        self.waiter.add(irq.fd)
        return qp

    def _queue_iovas(self, qp: QueuePair) -> tuple[int, int]:
        mem = self._queue_memory[qp.qid]
        assert mem.iova is not None
        return mem.iova, mem.iova + round_up(qp.depth * abi.SQE_SIZE, PAGE_SIZE)

    def _reg_write(self, reg: abi.Reg, value: int) -> None:
        self.control.request(abi.CtrlCmd.REG_WRITE, abi.CTRL_REG_WRITE.pack(reg, abi.REG_WIDTH[reg], value))

    def reg_read(self, reg: abi.Reg) -> int:
        body, _ = self.control.request(abi.CtrlCmd.REG_READ, abi.CTRL_REG.pack(reg, abi.REG_WIDTH[reg]))
        return abi.CTRL_REG_VALUE.unpack_from(body)[0]

    def _wait_ready(self, want: bool) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            csts = self.reg_read(abi.Reg.CSTS)
            if csts == abi.CSTS_GONE:
                raise DeviceRemovedError("the device is gone (CSTS reads all ones)")
            if bool(csts & abi.CSTS_RDY) == want:
                return
            if want and csts & abi.CSTS_CFS:
                raise BackendError("the controller reported fatal status while enabling")
            if time.monotonic() > deadline:
                raise BackendError(f"CSTS.RDY did not become {int(want)} within {self.ready_timeout_s}s")
            time.sleep(0.001)

    def _enable(self) -> None:
        sq_iova, cq_iova = self._queue_iovas(self.admin)
        self._reg_write(abi.Reg.AQA, abi.make_aqa(self.admin.depth, self.admin.depth))
        self._reg_write(abi.Reg.ASQ, sq_iova)
        self._reg_write(abi.Reg.ACQ, cq_iova)
        self._reg_write(abi.Reg.CC, abi.CC_EN)
        self._wait_ready(True)
        self.admin.state = QueueState.ENABLED

    def _create_io_queues(self, qp: QueuePair) -> None:
        sq_iova, cq_iova = self._queue_iovas(qp)
        interrupts = self.wait_mode is not WaitMode.POLL
        self.execute_admin(cmds.create_io_cq(qp.qid, qp.depth, cq_iova, qp.qid, interrupts=interrupts))
        self.execute_admin(cmds.create_io_sq(qp.qid, qp.depth, sq_iova, qp.qid))

    def create_qpair(self, depth: int = 256) -> QueuePair:
        self._check_usable()
        depth = max(2, min(depth, self.max_queue_entries, abi.MAX_TAGS))
        qid = next(q for q in range(1, abi.MAX_QUEUES) if q not in self.io_qpairs)
        qp = self._make_qpair(qid, depth)
        qp.default_timeout_s = self.io_timeout_s
        qp.state = QueueState.DISABLED
        self.io_qpairs[qid] = qp
        try:
            self._create_io_queues(qp)
        except BaseException:
            del self.io_qpairs[qid]
            self._release_qpair(qp)
            raise
        qp.state = QueueState.ENABLED
        return qp

    def delete_qpair(self, qp: QueuePair) -> None:
        """Delete an IO queue pair; refused while commands are outstanding on it."""
        if qp.outstanding:
            raise BufferBusyError(f"queue {qp.qid} still has {qp.outstanding} command(s) outstanding")
        if self.state is ControllerState.LIVE:
            self.execute_admin(cmds.delete_io_sq(qp.qid))
            self.execute_admin(cmds.delete_io_cq(qp.qid))
        qp.state = QueueState.DELETED
        self.io_qpairs.pop(qp.qid, None)
        self._release_qpair(qp)

    def _release_qpair(self, qp: QueuePair) -> None:
        self.waiter.remove(qp.irq.fd)
        qp.release()
        qp.kick.close()
        qp.irq.close()
        mem = self._queue_memory.pop(qp.qid, None)
        if mem is None:
            return
        if self.control.closed:
            # The daemon dropped every mapping of this connection when it closed.
            self.buffers.discard(mem)
            mem.iova = None
            mem._owner = None
        try:
            mem.close()
        except DriverError:
            pass

    # ------------------------------------------------------------------------------------------
    # DMA registration
    # ------------------------------------------------------------------------------------------

    def register(self, buf: DmaBuffer) -> DmaBuffer:
        """DMA_MAP: give the device the memfd and an IOVA range for it (the "pin")."""
        self._check_usable()
        if buf.iova is not None:
            return buf
        size = round_up(buf.size, abi.DMA_PAGE_SIZE)
        iova = self.iovas.allocate(size)
        try:
            self.control.request(abi.CtrlCmd.DMA_MAP,
                                 abi.CTRL_DMA_MAP.pack(iova, size, 0, abi.DmaFlags.READ | abi.DmaFlags.WRITE),
                                 [buf.fd])
        except BaseException:
            self.iovas.free(iova, size)
            raise
        buf.iova = iova
        buf._owner = self
        self.buffers.add(buf)
        return buf

    def unregister(self, buf: DmaBuffer) -> None:
        """DMA_UNMAP; refused (BufferBusyError) while commands still reference the buffer."""
        if buf.iova is None:
            return
        if buf.refs:
            raise BufferBusyError(f"DMA buffer is in use by {buf.refs} command(s)")
        size = round_up(buf.size, abi.DMA_PAGE_SIZE)
        if not self.control.closed and self.state not in (ControllerState.REMOVED, ControllerState.CLOSED):
            try:
                self.control.request(abi.CtrlCmd.DMA_UNMAP, abi.CTRL_DMA_UNMAP.pack(buf.iova, size))
            except DeviceRemovedError:
                pass
        self.iovas.free(buf.iova, size)
        self.buffers.discard(buf)
        buf.iova = None
        buf._owner = None

    def alloc_dma(self, size: int) -> DmaBuffer:
        return self.register(DmaBuffer(size))

    def alloc_device_memory(self, size: int, address: int | None = None) -> int:
        """Device memory private to this session (ABI 1.2 MEM_ALLOC): other sessions' commands on
        it are refused (ACCESS_DENIED); it starts zeroed and is zeroed again when freed or when
        this session ends. Returns its device address; ``size`` is rounded up to 4 KiB."""
        size = round_up(size, PAGE_SIZE)
        body, _ = self.control.request(abi.CtrlCmd.MEM_ALLOC, abi.CTRL_MEM_ALLOC.pack(
            abi.MEM_ANY if address is None else address, size, 0))
        return abi.CTRL_MEM_ADDR.unpack_from(body)[0]

    def free_device_memory(self, address: int) -> None:
        self.control.request(abi.CtrlCmd.MEM_FREE, abi.CTRL_MEM_ADDR.pack(address))

    # ------------------------------------------------------------------------------------------
    # commands
    # ------------------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.state in _TERMINAL:
            raise self._terminal_error()

    def _terminal_error(self) -> DriverError:
        if self.state is ControllerState.REMOVED:
            return DeviceRemovedError("the device was removed or its driver (simulator daemon) went away")
        if self.state is ControllerState.STALE:
            return SessionStaleError("the device was reset by another session; reopen it")
        if self.state is ControllerState.CLOSED:
            return DriverError("the session is closed")
        return DeviceFailedError(f"the device failed: {self.max_resets} resets in a row did not recover it")

    def failure_completion(self) -> Completion:
        source = {ControllerState.REMOVED: "removed", ControllerState.STALE: "stale"}.get(self.state, "failed")
        return Completion(abi.STATUS_ABORTED_SQ_DELETION | abi.STATUS_DNR, source=source)

    def submit(self, qp: QueuePair, command: Command, callback: Callable[[Request], Any] | None = None,
               *, timeout_s: float | None = None, user_data: Any = None) -> Request:
        req = Request(command.opcode, command.sqe, callback, command.buffers, timeout_s, user_data)
        return qp.submit(req)

    def wait_for(self, qp: QueuePair, req: Request, timeout_s: float | None) -> None:
        """Reap (running callbacks here) until ``req`` ends; escalate timeouts on the way.

        Raises CommandTimeoutError when it is still not done after its timeout plus the
        abort/reset budget; the command then stays owned by the driver (buffers stay pinned)
        until a completion or a reset ends it.
        """
        budget = (timeout_s if timeout_s is not None else (req.timeout_s or 30.0))
        budget += self.abort_timeout_s * 2 + self.ready_timeout_s * 2
        deadline = time.monotonic_ns() + int(budget * 1e9)
        if not self._interrupt_mode and self._spin_for(qp, req, deadline):
            return
        # Interrupt wait: straight into epoll (the device cannot have answered without signalling
        # the CQ eventfd, so a look before sleeping would only cost a failed eventfd read), reap
        # only when an fd fired, and run the timeout scan on every 50 ms slice. A completion
        # whose interrupt was lost is therefore found by the scan and counted as "polled".
        qps = (qp,) if qp is self.admin else (qp, self.admin)
        waiter = self.waiter
        done = RequestState.DONE
        clock = time.monotonic_ns
        while True:
            now = clock()
            if now >= deadline:
                self.service()
                if req.state >= done:
                    return
                raise CommandTimeoutError(
                    f"command {req!r} did not complete; it stays owned until the device completes it "
                    f"or a reset cancels it", timeout_s=budget)
            waiter.sleep(min(deadline - now, 50_000_000) / 1e9)
            if waiter.woken:
                for q in qps:  # the command's own queue first: when that ends it, return
                    q.process_completions()
                    if req.state >= done:
                        return
            self.service()
            if req.state >= done:
                return

    _SERVICE_EVERY_NS = 1_000_000

    def _spin_for(self, qp: QueuePair, req: Request, deadline: int) -> bool:
        """Poll / hybrid: spin on the CQ's phase bit (45 ns a look) until ``req`` ends, the spin
        budget runs out (hybrid) or the deadline passes (poll). Timeouts, control-socket and
        device events are looked at once a millisecond."""
        clock = time.monotonic_ns
        now = clock()
        spin_end = deadline if self.wait_mode is WaitMode.POLL else min(deadline, now + self.waiter.spin_ns)
        next_service = now + self._SERVICE_EVERY_NS
        pending = qp.cq.pending
        done = RequestState.DONE
        spins = 0
        while True:
            if pending():
                qp.process_completions()
                if req.state >= done:
                    return True
            spins += 1
            if not spins & 0xFF:
                # Every ~20 us: give the CPU away if something else is runnable here. When the
                # device's engine shares this core (a loaded 2-core machine), a spinner that never
                # yields makes it wait for a whole scheduler slice; on an idle core this returns
                # at once.
                os.sched_yield()
            now = clock()
            if now >= next_service:
                next_service = now + self._SERVICE_EVERY_NS
                if qp is not self.admin:
                    self.admin.process_completions()
                self.waiter.sleep(0)  # runs the control-socket / device-event hooks
                self.service()
                if req.state >= done:
                    return True
            if now >= spin_end:
                if self.wait_mode is WaitMode.POLL and req.state < done:
                    raise CommandTimeoutError(
                        f"command {req!r} did not complete; it stays owned until the device completes "
                        f"it or a reset cancels it", timeout_s=(deadline - now) / 1e9)
                return req.state >= done

    _next_poll_service_ns = 0

    def _poll_service(self, qp: QueuePair) -> None:
        """Poll mode, once a millisecond: what ``_spin_for`` does on its 1 ms tick (admin
        completions such as async events, control-socket / device-event hooks, timeouts), for
        callers whose commands all end within ``execute``'s own short spin."""
        self._next_poll_service_ns = time.monotonic_ns() + self._SERVICE_EVERY_NS
        if qp is not self.admin:
            self.admin.process_completions()
        self.waiter.sleep(0)
        self.service()

    def result_of(self, req: Request) -> Completion:
        """The completion of an ended request, or the typed error it ended with."""
        cpl = req.completion
        assert cpl is not None
        if cpl.ok:
            return cpl
        name = cpl.status_name
        if cpl.source == "removed":
            raise DeviceRemovedError(f"command {req.opcode:#x} failed: the device went away")
        if cpl.source == "stale":
            raise SessionStaleError(f"command {req.opcode:#x} failed: the device was reset by another session")
        if cpl.source == "failed":
            raise DeviceFailedError(f"command {req.opcode:#x} failed: the device is marked failed")
        if cpl.sc in (abi.GenericStatus.ABORTED_BY_REQUEST, abi.GenericStatus.ABORTED_SQ_DELETION) \
                and cpl.sct == abi.StatusCodeType.GENERIC:
            raise CommandAbortedError(f"command {req.opcode:#x} aborted ({name}, {cpl.source})",
                                      opcode=req.opcode, status=cpl.status, retryable=cpl.retryable)
        raise CommandError(f"command {req.opcode:#x} failed: {name}", opcode=req.opcode, status=cpl.status)

    #: Poll mode: how many looks at the CQ phase bit ``execute`` takes itself before handing
    #: over to the general spin (which also yields, services timeouts and watch fds). About
    #: 10-20 us: a small command is answered well within it.
    _QUICK_SPINS = 256

    def execute(self, qp: QueuePair, command: Command, timeout_s: float | None = None) -> Completion:
        """Submit one command and wait for it here (the public sync path: ``IoQueue.execute``).

        The same steps as ``submit`` + ``wait_for`` + ``result_of``; in poll mode it first spins
        a little on the CQ phase bit itself, which is where a small command's answer is, and
        reaps its own entry there (``QueuePair.spin_reap_own``)."""
        req = Request(command.opcode, command.sqe, None, command.buffers, timeout_s)
        qp.submit(req)
        if req.state < 3:  # < RequestState.DONE
            if self._poll_mode:
                if not qp.spin_reap_own(req, self._QUICK_SPINS):
                    self.wait_for(qp, req, timeout_s)
                elif time.monotonic_ns() >= self._next_poll_service_ns:
                    self._poll_service(qp)
            else:
                self.wait_for(qp, req, timeout_s)
        cpl = req.completion
        if cpl is not None and not cpl.status & 0x0FFE and cpl.source == "cqe":  # abi.status_ok
            return cpl
        return self.result_of(req)

    def execute_admin(self, command: Command, timeout_s: float | None = None) -> Completion:
        return self.execute(self.admin, command, timeout_s if timeout_s is not None else self.admin_timeout_s)

    def identify_raw(self, cns: int) -> bytes:
        buf = self.alloc_dma(abi.IDENTIFY_SIZE)
        try:
            self.execute_admin(cmds.identify(buf, cns))
            return bytes(buf.view)
        finally:
            buf.close()

    # ------------------------------------------------------------------------------------------
    # async events, keep-alive, device events
    # ------------------------------------------------------------------------------------------

    def _arm_async_events(self) -> None:
        self._aer = Request(abi.AdminOpcode.ASYNC_EVENT_REQUEST, cmds.async_event_request().sqe,
                            self._on_async_event, timeout_s=None)
        # AERs stay outstanding indefinitely: exempt from the timeout scan.
        self._aer.timeout_s = None
        self.admin.submit(self._aer)
        self._aer.timeout_s = None

    def _on_async_event(self, req: Request) -> None:
        cpl = req.completion
        if cpl is None or cpl.source not in ("cqe", "polled") or not cpl.ok:
            return  # cancelled by a reset (re-armed after it) or failure
        self.counters.async_events += 1
        self.events.append(cpl.result & 0xFFFFFFFF)
        if cpl.result & 0x7 == abi.AsyncEventType.ERROR and (cpl.result >> 8) & 0xFF == abi.AsyncEventInfo.FATAL_CONTROLLER:
            self._reset_pending = True
        if self.state is ControllerState.LIVE:
            self._arm_async_events()

    def _on_control_readable(self, fd: int) -> None:
        """The control socket is readable outside a request: an event message, or EOF."""
        import socket as _socket

        try:
            data = self.control._sock.recv(abi.CTRL_MAX_MSG_SIZE, _socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.waiter.remove(fd)  # EOF stays readable: stop watching it
            self.control.closed = True
            self.mark_removed()

    def _on_device_event(self, fd: int) -> None:
        self.device_events.drain()
        self.check_device_status()

    def check_device_status(self) -> None:
        """Read the CSTS / reset-generation mirror in the doorbell page (no syscall)."""
        if self.state in _TERMINAL:
            return
        csts = self.doorbells[abi.STATUS_CSTS_INDEX]
        if csts == abi.CSTS_GONE:
            self.mark_removed()
            return
        if self.doorbells[abi.STATUS_RESET_GEN_INDEX] != self.doorbells[abi.STATUS_SESSION_GEN_INDEX]:
            self.mark_stale()
            return
        if csts & abi.CSTS_CFS and self.state is ControllerState.LIVE:
            self._reset_pending = True

    def service(self) -> None:
        """Periodic work, run from the caller's reaping: timeouts, pending resets, keep-alive."""
        if self.state in _TERMINAL or self.state is ControllerState.RESETTING:
            return
        now = time.monotonic()
        if self._reset_pending:
            self._reset_pending = False
            self.reset()
            return
        for qp in (self.admin, *self.io_qpairs.values()):
            if qp.timeline and qp.timeline[0].deadline <= now:
                self._handle_timeouts(qp, now)
                if self.state is not ControllerState.LIVE:
                    return
        if self.keep_alive_ms and now >= self._next_keep_alive:
            self._next_keep_alive = now + self.keep_alive_ms / 2000
            self.counters.keep_alives += 1
            self.submit(self.admin, cmds.keep_alive(), timeout_s=self.admin_timeout_s)

    # ------------------------------------------------------------------------------------------
    # timeouts
    # ------------------------------------------------------------------------------------------

    def _handle_timeouts(self, qp: QueuePair, now: float) -> None:
        expired = qp.expired(now)
        if not expired:
            return
        # (1) A lost interrupt? Reap first and re-check each command's state (pitfall 6).
        qp.process_completions(source="polled")
        expired = [r for r in expired if r.state < RequestState.DONE]
        if not expired:
            return
        self.counters.timeouts += len(expired)
        # (2) Device fatal or gone.
        self.check_device_status()
        if self.state in _TERMINAL:
            return
        if self.doorbells[abi.STATUS_CSTS_INDEX] & abi.CSTS_CFS:
            self.reset()
            return
        for req in expired:
            if req.state >= RequestState.DONE:
                continue
            # (3) admin command or second timeout: reset.
            if qp is self.admin or req.aborted:
                self.reset()
                return
            # (4) no abort credit: wait for one.
            if self._abort_credits <= 0:
                req.deadline = now + self.abort_timeout_s
                continue
            # (5) abort once.
            self._send_abort(qp, req, now)

    def _send_abort(self, qp: QueuePair, victim: Request, now: float) -> None:
        self._abort_credits -= 1
        self.counters.aborts_sent += 1
        victim.aborted = True
        victim.state = RequestState.ABORTING
        victim.deadline = now + self.abort_timeout_s
        qp.timeline.append(victim)  # re-armed: the scan finds it again after abort_timeout_s
        victim_cid = victim.cid

        def on_abort_done(abort_req: Request) -> None:
            self._abort_credits += 1
            cpl = abort_req.completion
            assert cpl is not None
            not_aborted = cpl.ok and (cpl.result & abi.ABORT_RESULT_NOT_ABORTED)
            if (not cpl.ok or not_aborted) and victim.state < RequestState.DONE and victim.cid == victim_cid:
                if cpl.source in ("cqe", "polled"):
                    self.counters.aborts_not_aborted += 1
                    self._reset_pending = True

        self.submit(self.admin, cmds.abort(qp.qid, victim.cid), on_abort_done, timeout_s=self.abort_timeout_s)

    # ------------------------------------------------------------------------------------------
    # reset / recovery
    # ------------------------------------------------------------------------------------------

    def _all_qpairs(self) -> list[QueuePair]:
        return [self.admin, *self.io_qpairs.values()]

    def reset(self, *, device: bool = False) -> None:
        """Controller reset with recovery; FAILED after ``max_resets`` consecutive failures.

        ``device=True`` resets the whole endpoint (firmware back to power-on): every *other*
        session of the endpoint becomes stale (SessionStaleError from then on), this one adopts
        the new reset generation and recovers as from a controller reset."""
        if self.state in _TERMINAL:
            raise self._terminal_error()
        self.state = ControllerState.RESETTING
        for qp in self._all_qpairs():
            qp.state = QueueState.DISABLED
        attempts = 0
        while True:
            attempts += 1
            self.counters.resets += 1
            try:
                self._reset_once(device=device and attempts == 1)
            except DeviceRemovedError:
                self.mark_removed()
                return
            except (BackendError, CommandError, CommandTimeoutError) as exc:
                if getattr(exc, "errno", None) == errno.ENODEV:  # the device did not come back
                    self.mark_removed()
                    return
                self.counters.reset_failures += 1
                if attempts >= self.max_resets or self.state in _TERMINAL:
                    self.mark_failed(str(exc))
                    return
                time.sleep(min(0.01 * attempts, 0.05))
                continue
            return

    def _disable_and_cancel(self, device: bool = False) -> None:
        """CC.EN=0 (or a device reset), wait RDY=0, reap what the device posted before, cancel
        the rest once."""
        if device:
            self.control.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.DEVICE))
        else:
            self._reg_write(abi.Reg.CC, 0)
        self._wait_ready(False)
        # The device no longer touches the old queues or buffers: now it is safe to end
        # everything it owned. Completions it posted before the disable finish normally.
        cancelled = Completion(abi.STATUS_ABORTED_SQ_DELETION, source="reset")
        for qp in self._all_qpairs():
            qp.process_completions()
        for qp in self._all_qpairs():
            qp.cancel_inflight(lambda _req: cancelled)
            qp.reset_rings()
        self._abort_credits = max(self._abort_credits, 1)

    def _reset_once(self, device: bool = False) -> None:
        self._disable_and_cancel(device)
        self._enable()
        # Admin work queued during the reset (aborts, keep-alives) goes out before queue creation
        # would wait behind it; the IO queues stay disabled until recreated.
        self.admin.process_completions()
        for qp in self.io_qpairs.values():
            self._create_io_queues(qp)
        for qp in self.io_qpairs.values():
            qp.state = QueueState.ENABLED
        self.state = ControllerState.LIVE
        self._arm_async_events()
        for qp in self.io_qpairs.values():
            qp.process_completions()  # resubmits the queued FIFO in order

    def _end_everything(self, completion: Completion) -> None:
        """Terminal states: the device no longer touches our queues (disabled, quiesced by the
        daemon before it published the reset, or gone), so first reap what it posted before
        (those commands really finished), then end the rest once."""
        for qp in self._all_qpairs():
            qp.process_completions()
        for qp in self._all_qpairs():
            qp.state = QueueState.FAILED
            qp.cancel_inflight(lambda _req: completion)
            qp.cancel_all_queued(completion)

    def mark_failed(self, reason: str = "") -> None:
        """Terminal: recovery gave up. The device is disabled first so it touches nothing more."""
        if self.state in _TERMINAL:
            return
        try:
            self._reg_write(abi.Reg.CC, 0)
        except DriverError:
            pass
        self.state = ControllerState.FAILED
        self.failure_reason = reason
        self._end_everything(self.failure_completion())

    def mark_removed(self) -> None:
        """Terminal: the device (or its daemon) is gone, so nothing can touch host memory any more."""
        if self.state in (ControllerState.REMOVED, ControllerState.CLOSED):
            return
        self.state = ControllerState.REMOVED
        self._end_everything(self.failure_completion())

    def mark_stale(self) -> None:
        """Terminal: another session reset the whole device; our queues are gone with it."""
        if self.state in _TERMINAL:
            return
        self.state = ControllerState.STALE
        self._end_everything(self.failure_completion())

    # ------------------------------------------------------------------------------------------
    # close
    # ------------------------------------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        return sum(qp.outstanding for qp in self._all_qpairs()) - (
            1 if self._aer is not None and self._aer.state < RequestState.DONE else 0)

    def close(self, *, drain_timeout_s: float = 2.0) -> None:
        """Quiesce (reap outstanding work, bounded), disable, release everything. Idempotent."""
        if self.state is ControllerState.CLOSED:
            return
        deadline = time.monotonic() + drain_timeout_s
        if self.state not in _TERMINAL:
            while self.outstanding and time.monotonic() < deadline:
                for qp in self._all_qpairs():
                    qp.process_completions()
                self.service()
                if self.outstanding:
                    self.waiter.sleep(0.005)
            if self.state not in _TERMINAL:
                try:
                    # Disable first: afterwards the device touches nothing, so ending what is left
                    # (the AER, anything stuck) and unmapping the buffers is safe.
                    self._reg_write(abi.Reg.CC, 0)
                    self._wait_ready(False)
                    for qp in self._all_qpairs():
                        qp.process_completions()
                except DriverError:
                    pass
        closing = Completion(abi.STATUS_ABORTED_SQ_DELETION | abi.STATUS_DNR, source="cancel")
        for qp in self._all_qpairs():
            qp.state = QueueState.DELETED
            qp.cancel_inflight(lambda _req: closing)
            qp.cancel_all_queued(closing)
        self.state = ControllerState.CLOSED
        self._teardown_local()

    def abandon(self) -> None:
        """Let go without a word to the device: no drain, no register write, no callback. For a
        session nobody holds any more (garbage collection runs at any time, in any thread). Only
        this process's resources go (socket, eventfds, maps); the daemon releases its side of the
        session when the socket closes, as the kernel does when a process dies."""
        if self.state is ControllerState.CLOSED:
            return
        self.state = ControllerState.CLOSED
        self._teardown_local()

    def _teardown_local(self) -> None:
        """Release local resources; the daemon releases its side when the socket closes."""
        self.control.close()
        for qp in list(getattr(self, "io_qpairs", {}).values()):
            self._release_qpair(qp)
        self.io_qpairs = {}
        admin = getattr(self, "admin", None)
        if admin is not None:
            self._release_qpair(admin)
        for buf in list(self.buffers):
            buf.iova = None
            buf._owner = None
        self.buffers.clear()
        for name in ("waiter", "device_events"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()
        if getattr(self, "doorbells", None) is not None:
            self.doorbells.release()
            self._doorbell_map.close()
            self.doorbells = None  # type: ignore[assignment]
