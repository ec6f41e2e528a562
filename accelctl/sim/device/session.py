"""One connection = one open file = one controller instance: registers, queues, IOVA map, eventfds,
and the queue engine thread that plays the device for this session's rings.

Threads: the daemon's control loop calls the control-path methods; the engine thread runs
:meth:`Session._run`. Both take ``self.lock`` around anything that touches queues, the IOVA map or
registers; the engine holds it for one processing pass (a batch), not per command, and never while
it sleeps or spins.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import random
import select
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from accelctl.protocol import abi

from accelctl.protocol.fence import make_fence

from . import faults as F
from .commands import CommandSet
from .iova import IovaMap
from .queues import DeviceCQ, DeviceSQ, HeldCommand

if TYPE_CHECKING:
    from .daemon import Endpoint

MAX_VECTORS = 64
MAX_PENDING_EVENTS = 16
#: While a CQ is full (a misbehaving host), re-check its head doorbell this often.
STALL_RECHECK_S = 0.001
ENGINE_JOIN_TIMEOUT_S = 5.0
#: Idle doorbell looks (~0.15 us each) between two sched_yield() calls of a spinning engine.
_SPIN_YIELD_EVERY = 64
_YIELD = getattr(os, "sched_yield", None)
#: A slow fault's sleep is cut in slices this long, so a stop, reset or release ends it early.
_SLOW_SLICE_S = 0.05
#: The doorbell page can be neither shrunk nor grown, and its seals not changed, by the client we
#: hand it to: a client that truncated it made the daemon's own stores fault (SIGBUS, exit 135).
DOORBELL_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL

log = logging.getLogger("accelctl.sim.session")
#: Data one processing pass moves at most (plus one command) before it lets the session lock go:
#: INTROSPECT, resets and the session's own control requests wait at most that long for it.
PASS_BYTES = 32 << 20
#: Most bytes one PASSTHRU IO command may move or compare (it runs on the shared control loop).
PASSTHRU_MAX_BYTES = 64 << 10
_DATA_OPCODES = frozenset({abi.IoOpcode.WRITE, abi.IoOpcode.READ, abi.IoOpcode.COMPARE, abi.IoOpcode.FILL,
                           abi.IoOpcode.COPY})


class SessionError(OSError):
    """A control request this session refuses (errno + message go back in the reply)."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)


class Session(CommandSet):
    def __init__(self, endpoint: Endpoint, session_id: int, peer_pid: int | None, spin_us: float) -> None:
        self.endpoint = endpoint
        self.firmware = endpoint.firmware
        self.faults = endpoint.faults
        self.id = session_id
        self.peer_pid = peer_pid
        self.lock = threading.RLock()
        self.reset_gen = self.firmware.reset_gen
        self.stale = False
        self.released = False
        # doorbell page: a memfd the client maps (GET_DOORBELLS)
        self.doorbell_fd = os.memfd_create(f"accelsim-db-{endpoint.config.bdf}-{session_id}",
                                           os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(self.doorbell_fd, abi.DOORBELL_PAGE_SIZE)
            fcntl.fcntl(self.doorbell_fd, fcntl.F_ADD_SEALS, DOORBELL_SEALS)
            self._db_map = mmap.mmap(self.doorbell_fd, abi.DOORBELL_PAGE_SIZE, mmap.MAP_SHARED)
        except OSError:
            os.close(self.doorbell_fd)
            raise
        self.db32 = memoryview(self._db_map).cast("I")
        self.db32[abi.STATUS_RESET_GEN_INDEX] = self.reset_gen
        self.db32[abi.STATUS_SESSION_GEN_INDEX] = self.reset_gen
        # registers
        self.cc = 0
        self.csts = 0
        self.aqa = 0
        self.asq = 0
        self.acq = 0
        self.intms = 0
        self.ever_enabled = False
        self.iova = IovaMap()
        self.kicks: dict[int, int] = {}
        self.irqs: dict[int, int] = {}
        self.notifier_fd: int | None = None
        self.sqs: dict[int, DeviceSQ] = {}
        self.cqs: dict[int, DeviceCQ] = {}
        self.sq_list: list[DeviceSQ] = []
        self.held: list[HeldCommand] = []
        self.aers: list[HeldCommand] = []
        self.pending_events: deque[int] = deque(maxlen=MAX_PENDING_EVENTS)
        self.spin_ns = int(spin_us * 1000)
        self.memory = self.firmware.memory
        self.memory_size = self.firmware.memory_size
        self.denied: tuple[tuple[int, int], ...] = ()  # set by devmem.register below
        self.counters = self.firmware.counters
        self._rng = random.Random(session_id)
        # engine
        self._epoll: select.epoll | None = None
        self._wake_fd = -1
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wake_pending = False
        self._irq_dirty = False  # some CQ has irq_pending set
        self._engine_ident = -1
        self._flags_clear = False  # the engine cleared the SQ flags and has not set them since
        #: The full fence of the NEED_WAKEUP handshake; None where there is none (the SQ flags
        #: then always say NEED_WAKEUP and hosts always kick).
        self._fence = make_fence()
        self.running = False  # CC.EN=1, RDY=1, no CFS: the engine fetches commands
        self.stats = {"commands": 0, "passes": 0, "sleeps": 0, "irqs": 0, "spin_hits": 0, "slow_waits": 0}
        #: True while the engine waits out a slow fault (without the lock: introspection shows it).
        self.slow_waiting = False
        self.admin_handlers, self.io_handlers = self.build_handlers()
        endpoint.devmem.register(self)

    # ==========================================================================================
    # control path (daemon thread)
    # ==========================================================================================

    def fd_cost(self) -> int:
        """Descriptors this session makes the daemon hold (quota.py): socket, doorbell page and
        its mapping, engine epoll and wake-up eventfd, eventfds, one per DMA mapping."""
        if self.released:
            return 0
        return 5 + len(self.kicks) + len(self.irqs) + (self.notifier_fd is not None) + len(self.iova)

    def _check_fds(self, more: int, what: str) -> None:
        if more > 0:
            self.endpoint.daemon.check_fd_budget(self, more, what)

    def check_live(self) -> None:
        if self.stale:
            raise SessionError(errno.ENODEV, "device was reset by another session; reopen it")
        if self.firmware.removed:
            raise SessionError(errno.ENODEV, "device removed")

    def reg_read(self, offset: int, width: int) -> int:
        with self.lock:
            values = {
                abi.Reg.CAP: abi.make_cap(4096, 2000, abi.DOORBELL_STRIDE),
                abi.Reg.VS: abi.VS_1_0,
                abi.Reg.INTMS: self.intms,
                abi.Reg.INTMC: self.intms,
                abi.Reg.CC: self.cc,
                abi.Reg.CSTS: abi.CSTS_GONE if self.firmware.removed else self.csts,
                abi.Reg.AQA: self.aqa,
                abi.Reg.ASQ: self.asq,
                abi.Reg.ACQ: self.acq,
            }
            if offset not in values or abi.REG_WIDTH[abi.Reg(offset)] != width:
                raise SessionError(errno.EINVAL, f"no {width}-byte register at {offset:#x}")
            return values[offset]

    def reg_write(self, offset: int, width: int, value: int) -> None:
        if offset not in abi.REG_WIDTH or abi.REG_WIDTH[abi.Reg(offset)] != width:
            raise SessionError(errno.EINVAL, f"no {width}-byte register at {offset:#x}")
        with self.lock:
            if offset == abi.Reg.CC:
                self._write_cc(value & 0xFFFFFFFF)
            elif offset in (abi.Reg.AQA, abi.Reg.ASQ, abi.Reg.ACQ):
                if self.cc & abi.CC_EN:
                    raise SessionError(errno.EBUSY, "admin queue registers are read-only while CC.EN=1")
                if offset == abi.Reg.AQA:
                    self.aqa = value & 0x0FFF0FFF
                elif offset == abi.Reg.ASQ:
                    self.asq = value
                else:
                    self.acq = value
            elif offset == abi.Reg.INTMS:
                self.intms |= value & 0xFFFFFFFF
            elif offset == abi.Reg.INTMC:
                self.intms &= ~value & 0xFFFFFFFF
            else:
                raise SessionError(errno.EPERM, f"register {abi.Reg(offset).name} is read-only")

    def _write_cc(self, value: int) -> None:
        was = self.cc & abi.CC_EN
        shn = value & abi.CC_SHN_MASK
        if shn and self.cc & abi.CC_EN:
            self._disable(abort_status=abi.STATUS_ABORTED_SQ_DELETION)
            self._set_csts((self.csts & ~abi.CSTS_SHST_MASK) | abi.CSTS_SHST_COMPLETE)
            self.cc = value & ~abi.CC_EN
            return
        if value & abi.CC_EN and not was:
            if self.ever_enabled and self.faults.active and self.faults.on_reset(F.RESET_FAIL):
                self.cc = value
                self._set_csts(abi.CSTS_CFS)  # enable after a reset failed: never becomes ready
                return
            self.cc = value
            self._enable()
        elif not value & abi.CC_EN and was:
            self.cc = value
            self._disable(abort_status=abi.STATUS_ABORTED_SQ_DELETION)
        else:
            self.cc = value

    def _enable(self) -> None:
        sq_entries, cq_entries = abi.aqa_sq_entries(self.aqa), abi.aqa_cq_entries(self.aqa)
        if sq_entries < 2 or cq_entries < 2:
            self.cc &= ~abi.CC_EN
            raise SessionError(errno.EINVAL, "AQA: admin queues need at least 2 entries")
        cq_map = self.iova.find(self.acq, cq_entries * abi.CQE_SIZE)
        sq_map = self.iova.find(self.asq, sq_entries * abi.SQE_SIZE)
        if cq_map is None or sq_map is None or not (cq_map.flags & abi.DmaFlags.WRITE):
            self.cc &= ~abi.CC_EN
            raise SessionError(errno.EFAULT, "ASQ/ACQ do not lie inside DMA mappings (ACQ needs WRITE)")
        cq_view = self.iova.translate(self.acq, cq_entries * abi.CQE_SIZE, abi.DmaFlags.WRITE)
        sq_view = self.iova.translate(self.asq, sq_entries * abi.SQE_SIZE, 0)
        assert cq_view is not None and sq_view is not None
        cq = DeviceCQ(0, cq_entries, cq_view, cq_map, 0, True)
        sq = DeviceSQ(0, sq_entries, sq_view, sq_map, cq)
        self.cqs[0] = cq
        self.sqs[0] = sq
        self.db32[cq.head_index] = 0
        self.db32[sq.tail_index] = 0
        self.db32[sq.flags_index] = abi.SQ_FLAG_NEED_WAKEUP
        self._rebuild_sq_list()
        self.ever_enabled = True
        self.pending_events.clear()
        self._set_csts(abi.CSTS_RDY)
        self.running = True
        self._start_engine()
        self.wake()

    def _disable(self, abort_status: int) -> None:
        """CC.EN=0 / controller reset: stop fetching, complete held commands with ``abort_status``
        (they land in the CQ before the queues go, so the host reaps them as normal completions),
        delete every queue. The host cancels whatever it still tracks after RDY=0."""
        self.running = False
        self._abort_held(abort_status)
        self._signal_irqs()
        self._delete_all_queues()
        self._set_csts(self.csts & ~(abi.CSTS_RDY | abi.CSTS_CFS))

    def controller_reset(self) -> None:
        with self.lock:
            if self.faults.active and self.faults.on_reset(F.RESET_FAIL):
                self.running = False
                self._set_csts(self.csts | abi.CSTS_CFS)
                raise SessionError(errno.EIO, "controller reset failed (injected)")
            self.firmware.counters["controller_resets"] += 1
            self._disable(abort_status=abi.STATUS_ABORTED_SQ_DELETION)
            self.cc &= ~abi.CC_EN

    def quiesce_for_device_reset(self, *, make_stale: bool) -> None:
        """Device reset: abort held work with a retryable status, delete queues, CC.EN=0. A session
        other than the resetting one becomes stale and loses its DMA maps and eventfds (the reset
        reclaims them even if its process never closes the connection: tt-kmd#261)."""
        with self.lock:
            self._disable(abort_status=abi.STATUS_ABORTED_SQ_DELETION)
            self.cc = 0
            if make_stale:
                self.stale = True
                self._close_eventfds(keep_notifier=True)
                self.iova.clear()
                self.endpoint.devmem.release(self, unregister=False)  # zeroed: nobody can use it now
        self._stop_engine()

    def adopt_reset_gen(self, gen: int) -> None:
        self.reset_gen = gen
        self.db32[abi.STATUS_SESSION_GEN_INDEX] = gen

    def publish_reset_gen(self, gen: int) -> None:
        self.db32[abi.STATUS_RESET_GEN_INDEX] = gen
        self.notify()

    def mark_removed(self) -> None:
        with self.lock:
            self.running = False
            self._set_csts(abi.CSTS_GONE)
        self.notify()

    def set_fatal(self, reason: str = "") -> None:
        """CSTS.CFS: the controller stops processing until it is disabled (reset)."""
        with self.lock:
            self.running = False
            self._set_csts(self.csts | abi.CSTS_CFS)
            self.raise_event(abi.make_event(abi.AsyncEventType.ERROR, abi.AsyncEventInfo.FATAL_CONTROLLER))
        self.notify()

    def notify(self) -> None:
        fd = self.notifier_fd
        if fd is not None:
            try:
                os.eventfd_write(fd, 1)
            except OSError:
                pass

    def _set_csts(self, value: int) -> None:
        self.csts = value & 0xFFFFFFFF
        self.db32[abi.STATUS_CSTS_INDEX] = self.csts

    # --- DMA -----------------------------------------------------------------------------------

    def dma_map(self, fd: int, iova: int, size: int, offset: int, flags: int) -> None:
        with self.lock:
            self._check_fds(1, "DMA_MAP")  # the mapping keeps a duplicate of the memfd
            self.iova.map(fd, iova, size, offset, flags)

    def dma_unmap(self, iova: int, size: int) -> None:
        with self.lock:
            self.iova.unmap(iova, size)

    # --- device memory allocations (devmem.py) ------------------------------------------------

    def mem_alloc(self, address: int | None, size: int) -> int:
        # Not under this session's lock: the allocation waits for the OTHER sessions' passes.
        return self.endpoint.devmem.alloc(self, address, size)

    def mem_free(self, address: int) -> None:
        with self.lock:  # our own engine is not moving data there while it is zeroed
            self.endpoint.devmem.free(self, address)

    # --- eventfds --------------------------------------------------------------------------------

    def set_kicks(self, first: int, fds: list[int]) -> None:
        """Takes ownership of ``fds`` when it returns; on an exception the caller still owns them."""
        with self.lock:
            if first + len(fds) > abi.MAX_QUEUES:
                raise SessionError(errno.EINVAL, f"qid beyond {abi.MAX_QUEUES - 1}")
            self._check_fds(sum(1 for q in range(first, first + len(fds)) if q not in self.kicks), "SET_KICKS")
            for qid, fd in enumerate(fds, first):
                old = self.kicks.pop(qid, None)
                if old is not None:
                    self._epoll_unregister(old)
                    os.close(old)
                self.kicks[qid] = fd
                self._epoll_register(fd)

    def set_irqs(self, first: int, fds: list[int]) -> None:
        with self.lock:
            if first + len(fds) > MAX_VECTORS:
                raise SessionError(errno.EINVAL, f"vector beyond {MAX_VECTORS - 1}")
            self._check_fds(sum(1 for v in range(first, first + len(fds)) if v not in self.irqs), "SET_IRQS")
            for vector, fd in enumerate(fds, first):
                old = self.irqs.pop(vector, None)
                if old is not None:
                    os.close(old)
                self.irqs[vector] = fd

    def set_notifier(self, fd: int) -> None:
        with self.lock:
            if self.notifier_fd is not None:
                os.close(self.notifier_fd)
            else:
                self._check_fds(1, "SET_EVENT_NOTIFIER")
            self.notifier_fd = fd

    def set_spin_us(self, spin_us: int) -> None:
        self.spin_ns = max(0, min(spin_us, 1_000_000)) * 1000

    def passthru(self, qid: int, cmd: tuple[int, ...]) -> tuple[int, int]:
        """Execute one command outside the rings (the ioctl path of a driver without queues).

        It runs on the daemon's control loop, which serves every client: an IO command moving
        more than PASSTHRU_MAX_BYTES is refused (INVALID_FIELD); big transfers go through rings."""
        with self.lock:
            handlers = self.admin_handlers if qid == 0 else self.io_handlers
            handler = handlers.get(cmd[0])
            if qid and cmd[abi.SQE_CDW12] > PASSTHRU_MAX_BYTES and cmd[0] in _DATA_OPCODES:
                status, result = abi.STATUS_INVALID_FIELD, 0
                self.counters["invalid_commands"] += 1
            elif handler is None or (qid == 0 and cmd[0] == abi.AdminOpcode.ASYNC_EVENT_REQUEST):
                status, result = abi.STATUS_INVALID_OPCODE, 0
                self.counters["invalid_commands"] += 1
            else:
                outcome = handler(self.sqs.get(qid), cmd)  # type: ignore[arg-type]
                status, result = outcome if outcome is not None else (abi.STATUS_INTERNAL_ERROR, 0)
            if status:
                self.firmware.record_error(qid, cmd[2], status, cmd[0], cmd[9] | (cmd[10] << 32), cmd[11])
            if self.cqs:
                self._signal_irqs()  # e.g. an ABORT that completed a held command
            return status, result

    # --- release: the file's release() hook -------------------------------------------------------

    def release(self) -> None:
        """Order (driver-core.md 3.6): quiesce, cancel device work, delete queues, unmap DMA, close
        eventfds, drop the doorbell page. Idempotent."""
        if self.released:
            return
        self.released = True
        with self.lock:
            self.running = False  # 1. stop fetching
        self._stop_engine()  # the engine thread is gone: nothing touches queue or DMA memory now
        with self.lock:
            self.held.clear()  # 2. device work of this session is cancelled (nobody to tell)
            self.aers.clear()
            self._delete_all_queues()  # 4. queues
            self.iova.clear()  # 5. DMA unmap, after quiesce
            self.endpoint.devmem.release(self, unregister=True)  # device memory zeroed and freed
            self._close_eventfds(keep_notifier=False)  # 6.
            self.db32.release()
            try:
                self._db_map.close()
            except BufferError:
                pass
            os.close(self.doorbell_fd)
            self.doorbell_fd = -1
        # 7. what the session did to the device (counts, errors) is saved: a daemon that dies later
        # loses only the work of sessions still open (firmware.py, what survives a power cycle).
        self.firmware.checkpoint()

    def _close_eventfds(self, *, keep_notifier: bool) -> None:
        for fd in self.kicks.values():
            self._epoll_unregister(fd)
            os.close(fd)
        self.kicks.clear()
        for fd in self.irqs.values():
            os.close(fd)
        self.irqs.clear()
        if not keep_notifier and self.notifier_fd is not None:
            os.close(self.notifier_fd)
            self.notifier_fd = None

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {
                "id": self.id,
                "pid": self.peer_pid,
                "stale": self.stale,
                "reset_gen": self.reset_gen,
                "cc": self.cc,
                "csts": self.csts,
                "running": self.running,
                "engine_alive": bool(self._thread and self._thread.is_alive()),
                "queues": [
                    {"qid": q.qid, "kind": "cq", "entries": q.entries, "vector": q.vector, "tail": q.tail}
                    for q in self.cqs.values()
                ]
                + [
                    {"qid": q.qid, "kind": "sq", "entries": q.entries, "cqid": q.cq.qid, "head": q.head}
                    for q in self.sqs.values()
                ],
                "dma_maps": self.iova.describe(),
                "device_memory": self.endpoint.devmem.describe(self.id),
                "kicks": sorted(self.kicks),
                "irqs": sorted(self.irqs),
                "notifier": self.notifier_fd is not None,
                "held": len(self.held),
                "aers": len(self.aers),
                "slow_waiting": self.slow_waiting,
                "spin_us": self.spin_ns // 1000,
                "stats": dict(self.stats),
            }

    # ==========================================================================================
    # queue engine (its own thread)
    # ==========================================================================================

    def _start_engine(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        if self._epoll is None:
            self._epoll = select.epoll()
            self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._epoll.register(self._wake_fd, select.EPOLLIN)
            for fd in self.kicks.values():
                self._epoll_register(fd)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"accelsim-engine-{self.endpoint.config.bdf}-{self.id}", daemon=True
        )
        self._thread.start()

    def _stop_engine(self) -> None:
        self._stopping = True
        self.wake()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(ENGINE_JOIN_TIMEOUT_S)
        self._thread = None
        if self._epoll is not None and (t is None or not t.is_alive()):
            self._epoll.close()
            self._epoll = None
            os.close(self._wake_fd)
            self._wake_fd = -1

    def wake(self) -> None:
        """Make the engine look at its state again (new queues, events, stop): it notices the
        flag while it busy-polls, and the eventfd while it sleeps."""
        self._wake_pending = True
        if self._wake_fd >= 0:
            try:
                os.eventfd_write(self._wake_fd, 1)
            except OSError:
                pass

    def _epoll_register(self, fd: int) -> None:
        if self._epoll is not None:
            try:
                self._epoll.register(fd, select.EPOLLIN)
            except OSError:
                pass

    def _epoll_unregister(self, fd: int) -> None:
        if self._epoll is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def _run(self) -> None:
        """Sleep on the kicks, process, then busy-poll the SQ tails for ``spin_ns`` after the last
        work (the spin phase processes straight from the doorbells, with no syscall per pass),
        then drain + scan once more and sleep again.

        NEED_WAKEUP (ABI 1.1): the SQ flags say NEED_WAKEUP except while the engine is awake.
        Before sleeping it sets them, runs a full fence and scans the doorbells once more; a host
        stores its tail, fences, then reads the flag. One of the two sees the other's store
        (store-buffering / Dekker), so a doorbell is never left unseen with no kick coming."""
        try:
            self._engine_loop()
        except Exception:  # noqa: BLE001 - a bug hits this session only: it sees fatal status
            log.exception("session %s engine failed; controller fatal until reset", self.id)
            with self.lock:
                self._fatal_locked("engine error")

    def _engine_loop(self) -> None:
        epoll = self._epoll
        assert epoll is not None
        fence = self._fence
        flags_set = True  # new SQs start with NEED_WAKEUP; cleared once the engine runs
        self._engine_ident = threading.get_ident()
        timeout: float | None = 0
        try:
            while not self._stopping:
                ready = epoll.poll(timeout) if timeout != 0 else epoll.poll(0)
                if self._stopping:
                    break
                self._wake_pending = False
                with self.lock:
                    if flags_set and fence is not None:
                        self._set_sq_flags(0)  # awake: hosts may skip the kick from now on
                        flags_set = False
                        self._flags_clear = True
                    # Drain every kick that fired BEFORE scanning the rings: a doorbell written
                    # after the drain comes with a fresh kick, so no wakeup is lost (pitfall 9).
                    for fd, _ in ready:
                        try:
                            os.read(fd, 8)
                        except OSError:
                            pass
                    did = self._process() if self.running else False
                    timeout = self._idle_timeout()
                if did:
                    if self.spin_ns:
                        self._spin_phase()
                    timeout = 0  # drain + scan once more before sleeping
                    continue
                if timeout != 0 and fence is not None:
                    with self.lock:
                        self._flags_clear = False
                        self._set_sq_flags(abi.SQ_FLAG_NEED_WAKEUP)
                        flags_set = True
                        fence()
                        # The re-check after the fence: a tail stored before the host read the
                        # flag as clear is seen here.
                        did = self._process() if self.running else False
                    if did:
                        timeout = 0
                        continue
                self.stats["sleeps"] += 1
        finally:
            if fence is not None:  # no engine: hosts must kick (a restarted engine scans first)
                with self.lock:
                    self._flags_clear = False
                    try:
                        self._set_sq_flags(abi.SQ_FLAG_NEED_WAKEUP)
                    except (ValueError, TypeError):  # doorbell page already released
                        pass

    def engine_awake_here(self) -> bool:
        """True on the engine thread while it runs with the NEED_WAKEUP flags clear."""
        return self._flags_clear and threading.get_ident() == self._engine_ident

    def _set_sq_flags(self, value: int) -> None:
        db = self.db32
        for sq in self.sq_list:
            db[sq.flags_index] = value

    def _spin_phase(self) -> None:
        """Busy-poll the SQ tail doorbells (no lock, no syscall while idle) and process what
        they announce, until ``spin_ns`` passes without work. Returns early when the control
        thread wants the engine (``wake``), when delayed completions or async events are
        pending (their timers live in the sleeping loop) or when the controller stops.

        This is the device's answer time in poll mode (doorbell seen -> CQE posted), so the
        common case touches as little as it can: stats are counted in locals and added up on
        the way out, and the interrupt pass runs only when a CQ has one pending."""
        perf = time.perf_counter_ns
        until = perf() + self.spin_ns
        yield_every = _SPIN_YIELD_EVERY
        lock = self.lock
        hits = fast_passes = commands = 0
        try:
            while True:
                db = self.db32
                sq_list = self.sq_list
                spins = 0
                found = False
                while not found:
                    for sq in sq_list:
                        if db[sq.tail_index] != sq.head:
                            found = True
                            break
                    else:
                        spins += 1
                        if not spins & 7:  # every 8th look: stop / wake requests, new queues, time
                            if self._wake_pending or self._stopping:
                                return
                            sq_list = self.sq_list
                            if perf() >= until:
                                return
                            if spins >= yield_every and _YIELD is not None:
                                # Every ~10 us idle: let a runnable thread have this CPU (the host
                                # on a loaded 2-core machine, or the daemon's control thread
                                # waiting for the GIL); returns at once when nothing else wants it.
                                spins = 0
                                _YIELD()
                hits += 1
                with lock:
                    if not self.running:
                        return
                    tail = db[sq.tail_index]
                    if (sq.qid and tail < sq.entries and not self.faults.active and not self.held
                            and not self.pending_events and self.sqs.get(sq.qid) is sq):
                        # The common case, _process cut to the SQ that moved: an IO SQ, no faults
                        # armed, nothing held back. Other SQs are seen by the next look.
                        n = self._process_io_sq(sq, tail)
                        fast_passes += 1
                        commands += n
                        if self._irq_dirty:
                            self._signal_irqs()
                        did = n > 0
                    else:
                        did = self._process()
                        if self.held or (self.pending_events and self.aers):
                            return
                if did:
                    until = perf() + self.spin_ns  # re-read: DEVICE_POLL_US may have just changed
        finally:
            stats = self.stats
            stats["spin_hits"] += hits
            stats["passes"] += fast_passes  # _process counts its own
            stats["commands"] += commands

    def _idle_timeout(self) -> float | None:
        """How long the engine may sleep: until the next delayed completion, a short recheck while
        a CQ is full, else until a kick."""
        timeout: float | None = None
        if self.held:
            now = time.perf_counter()
            deadlines = [h.deadline for h in self.held if h.deadline is not None]
            if deadlines:
                timeout = max(0.0, min(deadlines) - now) + 0.0001
        for sq in self.sq_list:
            if self.db32[sq.tail_index] != sq.head:
                timeout = STALL_RECHECK_S if timeout is None else min(timeout, STALL_RECHECK_S)
                break
        return timeout

    def _process(self) -> bool:
        """One pass over every SQ: fetch (with CQ flow control), execute, post; then interrupts.
        Called with the lock held. Returns whether anything happened."""
        self.stats["passes"] += 1
        db = self.db32
        did = False
        fetched = 0
        faults = self.faults
        sq_list = self.sq_list
        for sq in sq_list:
            tail = db[sq.tail_index]
            head = sq.head
            if tail == head:
                continue
            if tail >= sq.entries:
                self._fatal_locked(f"SQ {sq.qid} tail doorbell {tail} out of range")
                return True
            if sq.qid and not faults.active:
                fetched += self._process_io_sq(sq, tail)
                continue
            cq = sq.cq
            entries = sq.entries
            mem = sq.mem
            cq_entries = cq.entries
            handlers = self.admin_handlers if sq.qid == 0 else self.io_handlers
            budget = PASS_BYTES
            while head != tail and budget >= 0:
                # CQ flow control: never post into a full CQ; stop fetching instead.
                if (cq.tail + 1) % cq_entries == db[cq.head_index]:
                    break
                cmd = abi.SQE.unpack_from(mem, head * 64)
                head += 1
                if head == entries:
                    head = 0
                sq.head = head
                fetched += 1
                budget -= cmd[abi.SQE_CDW12]
                opcode = cmd[0]
                handler = handlers.get(opcode)
                if faults.active:
                    if self._command_faults(sq, cmd, handler):
                        # (a slow fault waits without the lock: queues may have changed meanwhile)
                        if not self.running or self.sq_list is not sq_list:
                            self.stats["commands"] += fetched
                            return True
                        continue
                    if not self.running:
                        return True
                if handler is None:
                    status, result = abi.STATUS_INVALID_OPCODE, 0
                    self.counters["invalid_commands"] += 1
                else:
                    outcome = handler(sq, cmd)
                    if outcome is None:  # held (AER)
                        continue
                    status, result = outcome
                if status:
                    self._record_error(sq, cmd, status)
                self._post(cq, head, sq.qid, cmd[2], status, result)
        if fetched:
            self.stats["commands"] += fetched
            did = True
        if self.held:
            self._post_due_held()
        if self.pending_events and self.aers:
            self.deliver_pending_events()
        self._signal_irqs()
        return did

    def _process_io_sq(self, sq: DeviceSQ, tail: int) -> int:
        """The hot path: an IO SQ with no faults armed. Same steps as the general loop, with the
        CQ state held in locals (IO handlers never post completions themselves)."""
        db = self.db32
        cq = sq.cq
        handlers = self.io_handlers
        unpack = abi.SQE.unpack_from
        pack_body = abi.CQE_BODY.pack_into
        mem, entries, qid = sq.mem, sq.entries, sq.qid
        cq_mem, hwords, cq_entries = cq.mem, cq.hwords, cq.entries
        ctail, phase = cq.tail, cq.phase
        cq_head = cq.head_seen
        head = sq.head
        n = 0
        budget = PASS_BYTES
        cdw12 = abi.SQE_CDW12
        while head != tail:
            nxt = ctail + 1
            if nxt == cq_entries:
                nxt = 0
            if nxt == cq_head:
                cq_head = cq.head_seen = db[cq.head_index]
                if nxt == cq_head:
                    break  # CQ full: stop fetching (flow control)
            cmd = unpack(mem, head * 64)
            head += 1
            if head == entries:
                head = 0
            handler = handlers.get(cmd[0])
            if handler is None:
                status, result = abi.STATUS_INVALID_OPCODE, 0
                self.counters["invalid_commands"] += 1
            else:
                status, result = handler(sq, cmd)  # type: ignore[misc]
            if status:
                self._record_error(sq, cmd, status)
            pack_body(cq_mem, ctail * 16, result & 0xFFFFFFFF, result >> 32, head, qid, cmd[2])
            hwords[ctail * 8 + 7] = (status & 0xFFFE) | phase  # status word last
            if nxt == 0:
                phase ^= 1
            ctail = nxt
            n += 1
            budget -= cmd[cdw12]  # the data length of the commands that move data
            if budget < 0:
                break  # the rest in the next pass: the lock is let go in between
        sq.head = head
        cq.tail, cq.phase = ctail, phase
        if n and cq.irq_enabled:  # a polled CQ (IEN=0) never interrupts
            cq.irq_pending = True
            self._irq_dirty = True
        return n

    def _post(self, cq: DeviceCQ, sqhd: int, sqid: int, cid: int, status: int, result: int) -> None:
        """Write the CQE body, THEN the status word with the phase bit (pitfall 2: torn CQE)."""
        tail = cq.tail
        abi.CQE_BODY.pack_into(cq.mem, tail * 16, result & 0xFFFFFFFF, (result >> 32) & 0xFFFFFFFF, sqhd, sqid, cid)
        cq.hwords[tail * 8 + 7] = (status & 0xFFFE) | cq.phase
        tail += 1
        if tail == cq.entries:
            tail = 0
            cq.phase ^= 1
        cq.tail = tail
        cq.irq_pending = True
        self._irq_dirty = True

    def _cq_has_room(self, cq: DeviceCQ) -> bool:
        return (cq.tail + 1) % cq.entries != self.db32[cq.head_index]

    def _signal_irqs(self) -> None:
        """Coalesced interrupt: one eventfd write per CQ per pass."""
        if not self._irq_dirty:
            return
        self._irq_dirty = False
        for cq in self.cqs.values():
            if cq.irq_pending:
                cq.irq_pending = False
                if cq.irq_enabled and not (self.intms >> cq.vector) & 1:
                    fd = self.irqs.get(cq.vector)
                    if fd is not None:
                        os.eventfd_write(fd, 1)
                        self.stats["irqs"] += 1

    def _record_error(self, sq: DeviceSQ, cmd: tuple[int, ...], status: int) -> None:
        self.firmware.record_error(sq.qid, cmd[2], status, cmd[0], cmd[9] | (cmd[10] << 32), cmd[11])

    def _fatal_locked(self, reason: str) -> None:
        self.running = False
        self._set_csts(self.csts | abi.CSTS_CFS)
        self.notify()

    # --- faults on the command path ----------------------------------------------------------------

    def _command_faults(self, sq: DeviceSQ, cmd: tuple[int, ...], handler: Any) -> bool:
        """Apply the faults firing for this command. True when the command was fully handled here."""
        hits = self.faults.on_command(cmd[0], sq.qid)
        if not hits:
            return False
        kinds = {h.kind: h for h in hits}
        if F.SLOW in kinds:
            self._slow_wait(kinds[F.SLOW].delay_ms / 1000.0)
            if not self.running or self.sqs.get(sq.qid) is not sq:
                return True  # disabled or deleted meanwhile: the host cancels the command
        if F.DAEMON_DEATH in kinds:
            self.endpoint.daemon.die()
            return True
        if F.REMOVE in kinds:
            self.running = False
            self.endpoint.daemon.request_removal(self.endpoint.config.bdf)
            return True
        if F.FATAL in kinds:
            self._fatal_locked("injected fatal status")
            return True
        if handler is None:
            status, result = abi.STATUS_INVALID_OPCODE, 0
        else:
            outcome = handler(sq, cmd)
            if outcome is None:
                return True
            status, result = outcome
        cid = cmd[2]
        cq = sq.cq
        if F.LOST_IRQ in kinds:
            # Posted, but this pass's interrupt for the CQ is swallowed.
            self._post(cq, sq.head, sq.qid, cid, status, result)
            cq.irq_pending = False  # only this completion's interrupt is lost, like a dropped MSI
            return True
        if F.DROP_CQE in kinds:
            return True
        if F.DELAY_CQE in kinds:
            deadline = time.perf_counter() + kinds[F.DELAY_CQE].delay_ms / 1000.0
            self.held.append(HeldCommand(sq, cid, cmd[0], status, result, deadline))
            return True
        if F.BOGUS_CID in kinds:
            cid ^= 0x8000  # same tag, another generation: a CID the host never has outstanding
        if F.CORRUPT_CQE in kinds:
            status = abi.make_status(self._rng.randrange(1, 3), self._rng.randrange(0x10, 0x7F))
            result = self._rng.getrandbits(64)
            self._post(cq, self._rng.getrandbits(16) % sq.entries, self._rng.getrandbits(16), cid, status, result)
            return True
        self._post(cq, sq.head, sq.qid, cid, status, result)
        if F.DUPLICATE_CQE in kinds and self._cq_has_room(cq):
            self._post(cq, sq.head, sq.qid, cid, status, result)
        return True

    def _slow_wait(self, seconds: float) -> None:
        """A slow device: the engine waits WITHOUT the session lock (it used to sleep holding
        it: INTROSPECT, resets and every control request of the session blocked behind the
        fault), in short slices so a stop, disable or release ends the wait. Called from a pass,
        which holds the lock exactly once."""
        self.stats["slow_waits"] += 1
        self.slow_waiting = True
        self.lock.release()
        try:
            deadline = time.monotonic() + seconds
            while not self._stopping and self.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, _SLOW_SLICE_S))
        finally:
            self.lock.acquire()
            self.slow_waiting = False

    # --- held commands ---------------------------------------------------------------------------

    def _post_due_held(self) -> None:
        now = time.perf_counter()
        keep = []
        for h in self.held:
            if h.deadline is not None and h.deadline <= now and h.sq.qid in self.sqs and self._cq_has_room(h.sq.cq):
                self._post(h.sq.cq, h.sq.head, h.sq.qid, h.cid, h.status, h.result)
            else:
                keep.append(h)
        self.held = keep

    def _abort_held(self, status: int, sq: DeviceSQ | None = None) -> None:
        """Complete held commands (of one SQ, or all) with ``status`` while their CQ has room;
        those that find no room are dropped here and cancelled by the host after the disable."""
        keep_held: list[HeldCommand] = []
        keep_aers: list[HeldCommand] = []
        for held, keep in ((self.held, keep_held), (self.aers, keep_aers)):
            for h in held:
                if sq is not None and h.sq is not sq:
                    keep.append(h)
                elif h.sq.qid in self.sqs and self._cq_has_room(h.sq.cq):
                    self._post(h.sq.cq, h.sq.head, h.sq.qid, h.cid, status, 0)
        self.held, self.aers = keep_held, keep_aers

    def raise_event(self, event: int) -> None:
        """Complete one outstanding async event request with ``event`` (or queue the event)."""
        with self.lock:
            if self.aers and 0 in self.sqs and self._cq_has_room(self.cqs[0]):
                h = self.aers.pop(0)
                self._post(h.sq.cq, h.sq.head, 0, h.cid, abi.STATUS_SUCCESS, event)
                self._signal_irqs()
            else:
                self.pending_events.append(event)

    # --- queues ------------------------------------------------------------------------------------

    def _rebuild_sq_list(self) -> None:
        self.sq_list = [self.sqs[q] for q in sorted(self.sqs)]

    def _delete_all_queues(self) -> None:
        for sq in self.sqs.values():
            sq.release()
        self.sqs.clear()
        for cq in self.cqs.values():
            cq.release()
        self.cqs.clear()
        self.sq_list = []
        self.held.clear()
        self.aers.clear()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
