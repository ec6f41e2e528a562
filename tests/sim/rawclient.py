"""A deliberately small raw client of the simulator ABI, written from accelctl.protocol.abi alone.

Tests use it to drive the daemon exactly as a driver would (real sockets, memfds, eventfds,
shared rings) without depending on the driver core, so a daemon bug cannot hide behind a matching
client bug. It keeps no trackers: tests look at raw CQEs.
"""

from __future__ import annotations

import array
import fcntl
import json
import mmap
import os
import select
import socket
import time

from accelctl.protocol import abi
from tests._wait import HANG_GUARD_S


class CtrlError(OSError):
    pass


class Memfd:
    """A sealed, mapped memfd (what a DMA buffer is)."""

    def __init__(self, size: int, name: str = "rawbuf") -> None:
        self.size = size
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, size)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        self.mm = mmap.mmap(self.fd, size, mmap.MAP_SHARED)
        self.view = memoryview(self.mm)

    def close(self) -> None:
        self.view.release()
        self.mm.close()
        os.close(self.fd)


class RawClient:
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self._msg_id = 0
        self.buffers: list[Memfd] = []
        self.next_iova = 0x10000
        self.db: memoryview | None = None
        self.queues: dict[int, dict] = {}
        self.irq_fds: dict[int, int] = {}
        self.kick_fds: dict[int, int] = {}

    # --- control path ---------------------------------------------------------------------------

    def request(self, cmd: int, payload: bytes = b"", fds: list[int] | None = None) -> tuple[bytes, list[int]]:
        self._msg_id = (self._msg_id + 1) & 0xFFFF
        header = abi.CTRL_HEADER.pack(self._msg_id, cmd, abi.CTRL_HEADER_SIZE + len(payload), 0, 0)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
        self.sock.sendmsg([header + payload], anc)
        data, anc_in, _flags, _ = self.sock.recvmsg(abi.CTRL_MAX_MSG_SIZE, socket.CMSG_SPACE(8 * 4))
        if not data:
            raise ConnectionResetError("daemon closed the connection")
        got_fds: list[int] = []
        for level, kind, raw in anc_in:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(raw)
                got_fds.extend(a)
        msg_id, rcmd, size, flags, err = abi.CTRL_HEADER.unpack_from(data)
        assert msg_id == self._msg_id and rcmd == cmd and size == len(data) and flags & abi.CtrlFlags.REPLY
        body = data[abi.CTRL_HEADER_SIZE :]
        if flags & abi.CtrlFlags.ERROR:
            raise CtrlError(err, body.decode(errors="replace"))
        return body, got_fds

    def json(self, cmd: int, obj: dict | None = None) -> dict:
        body, _ = self.request(cmd, json.dumps(obj).encode() if obj is not None else b"")
        return json.loads(body)

    def reg_read(self, reg: abi.Reg) -> int:
        body, _ = self.request(abi.CtrlCmd.REG_READ, abi.CTRL_REG.pack(reg, abi.REG_WIDTH[reg]))
        return abi.CTRL_REG_VALUE.unpack(body)[0]

    def reg_write(self, reg: abi.Reg, value: int) -> None:
        self.request(abi.CtrlCmd.REG_WRITE, abi.CTRL_REG_WRITE.pack(reg, abi.REG_WIDTH[reg], value))

    def alloc(self, size: int, flags: int = abi.DmaFlags.READ | abi.DmaFlags.WRITE) -> tuple[Memfd, int]:
        size = (size + 4095) // 4096 * 4096
        buf = Memfd(size)
        iova = self.next_iova
        self.request(abi.CtrlCmd.DMA_MAP, abi.CTRL_DMA_MAP.pack(iova, size, 0, flags), [buf.fd])
        self.next_iova += size + 0x10000  # leave holes so off-by-one IOVAs hit nothing
        self.buffers.append(buf)
        return buf, iova

    def fault(self, **spec) -> dict:
        """Arm a fault on this client's endpoint, through the daemon's admin socket (a session
        may not inject faults itself)."""
        return admin_json(self.path, abi.CtrlCmd.FAULT, {"add": [spec]})

    def clear_faults(self) -> dict:
        return admin_json(self.path, abi.CtrlCmd.FAULT, {"clear": True})

    def introspect(self) -> dict:
        return self.json(abi.CtrlCmd.INTROSPECT)

    # --- rings ------------------------------------------------------------------------------------

    def enable(self, admin_entries: int = 32) -> None:
        body, fds = self.request(abi.CtrlCmd.GET_DOORBELLS)
        self._db_mm = mmap.mmap(fds[0], abi.DOORBELL_PAGE_SIZE, mmap.MAP_SHARED)
        os.close(fds[0])
        self.db = memoryview(self._db_mm).cast("I")
        mem, iova = self.alloc(admin_entries * 80)
        self._setup_eventfds(0, 0)
        self.reg_write(abi.Reg.AQA, abi.make_aqa(admin_entries, admin_entries))
        self.reg_write(abi.Reg.ASQ, iova)
        self.reg_write(abi.Reg.ACQ, iova + admin_entries * 64)
        self._add_queue(0, admin_entries, mem, 0, admin_entries * 64, vector=0)
        self.reg_write(abi.Reg.CC, abi.CC_EN)
        assert self.reg_read(abi.Reg.CSTS) & abi.CSTS_RDY

    def _setup_eventfds(self, qid: int, vector: int) -> None:
        if vector not in self.irq_fds:
            irq = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self.request(abi.CtrlCmd.SET_IRQS, abi.CTRL_FD_RANGE.pack(vector, 1), [irq])
            self.irq_fds[vector] = irq
        kick = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.request(abi.CtrlCmd.SET_KICKS, abi.CTRL_FD_RANGE.pack(qid, 1), [kick])
        self.kick_fds[qid] = kick

    def _add_queue(self, qid: int, entries: int, mem: Memfd, sq_off: int, cq_off: int, vector: int) -> None:
        self.queues[qid] = {
            "entries": entries, "sq": mem.view[sq_off : sq_off + entries * 64],
            "cq": mem.view[cq_off : cq_off + entries * 16], "tail": 0, "head": 0, "phase": 1, "vector": vector,
        }

    def create_io_queue(self, qid: int, entries: int = 64, vector: int | None = None, irq: bool = True) -> None:
        vector = qid if vector is None else vector
        mem, iova = self.alloc(entries * 80)
        self._setup_eventfds(qid, vector)
        cq_iova = iova + entries * 64
        cpl = self.admin(abi.AdminOpcode.CREATE_IO_CQ, dptr=cq_iova,
                         cdw10=abi.queue_cdw10(qid, entries), cdw11=abi.create_cq_cdw11(vector, interrupts=irq))
        assert abi.status_ok(cpl["status"]), abi.status_name(cpl["status"])
        cpl = self.admin(abi.AdminOpcode.CREATE_IO_SQ, dptr=iova,
                         cdw10=abi.queue_cdw10(qid, entries), cdw11=abi.create_sq_cdw11(qid))
        assert abi.status_ok(cpl["status"]), abi.status_name(cpl["status"])
        self._add_queue(qid, entries, mem, 0, entries * 64, vector)

    def submit(self, qid: int, opcode: int, *, cid: int | None = None, flags: int = 0, dptr: int = 0,
               dlen: int = 0, cdw10: int = 0, cdw11: int = 0, cdw12: int = 0, cdw13: int = 0,
               cdw14: int = 0, cdw15: int = 0, ring: bool = True) -> int:
        q = self.queues[qid]
        cid = q["tail"] if cid is None else cid
        abi.SQE.pack_into(q["sq"], q["tail"] * 64, opcode, flags, cid, 0, 0, 0, 0, dptr, dlen,
                          cdw10, cdw11, cdw12, cdw13, cdw14, cdw15)
        q["tail"] = (q["tail"] + 1) % q["entries"]
        if ring:
            self.ring(qid)
        return cid

    def ring(self, qid: int) -> None:
        assert self.db is not None
        self.db[abi.sq_doorbell_index(qid)] = self.queues[qid]["tail"]
        os.eventfd_write(self.kick_fds[qid], 1)

    def peek(self, qid: int) -> dict | None:
        q = self.queues[qid]
        status = abi.CQE_STATUS.unpack_from(q["cq"], q["head"] * 16 + 14)[0]
        if status & 1 != q["phase"]:
            return None
        r0, r1, sqhd, sqid, cid, status = abi.CQE.unpack_from(q["cq"], q["head"] * 16)
        q["head"] += 1
        if q["head"] == q["entries"]:
            q["head"] = 0
            q["phase"] ^= 1
        assert self.db is not None
        self.db[abi.cq_doorbell_index(qid)] = q["head"]
        return {"result": r0 | (r1 << 32), "sqhd": sqhd, "sqid": sqid, "cid": cid, "status": status & 0xFFFE}

    def wait_cqe(self, qid: int, timeout: float = HANG_GUARD_S, use_irq: bool = True) -> dict | None:
        """Next CQE, waiting on the interrupt eventfd (or polling); None on timeout. The default
        timeout is a hang guard: pass a short one only to show that nothing comes."""
        deadline = time.monotonic() + timeout
        irq = self.irq_fds[self.queues[qid]["vector"]]
        while True:
            if use_irq:
                try:
                    os.eventfd_read(irq)  # drain before scanning
                except BlockingIOError:
                    pass
            cpl = self.peek(qid)
            if cpl is not None:
                return cpl
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if use_irq:
                select.select([irq], [], [], min(left, 0.05))
            else:
                time.sleep(0.0002)

    def irq_pending(self, qid: int) -> bool:
        r, _, _ = select.select([self.irq_fds[self.queues[qid]["vector"]]], [], [], 0)
        return bool(r)

    def admin(self, opcode: int, timeout: float = HANG_GUARD_S, **kw) -> dict:
        cid = self.submit(0, opcode, **kw)
        cpl = self.wait_cqe(0, timeout)
        assert cpl is not None, f"admin opcode {opcode:#x} timed out"
        assert cpl["cid"] == cid
        return cpl

    def io(self, qid: int, opcode: int, timeout: float = HANG_GUARD_S, **kw) -> dict:
        cid = self.submit(qid, opcode, **kw)
        cpl = self.wait_cqe(qid, timeout)
        assert cpl is not None, f"io opcode {opcode:#x} timed out"
        assert cpl["cid"] == cid, (cpl, cid)
        return cpl

    def close(self) -> None:
        self.sock.close()
        for fd in list(self.irq_fds.values()) + list(self.kick_fds.values()):
            os.close(fd)
        self.irq_fds.clear()
        self.kick_fds.clear()
        self.queues.clear()
        if self.db is not None:
            self.db.release()
            self._db_mm.close()
            self.db = None
        for b in self.buffers:
            b.close()
        self.buffers.clear()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def admin_socket(endpoint_socket: str) -> str:
    """The daemon's admin socket, beside its endpoint sockets."""
    return os.path.join(os.path.dirname(endpoint_socket), "admin.sock")


def admin_json(endpoint_socket: str, cmd: int, obj: dict) -> dict:
    """One request on the admin socket of ``endpoint_socket``'s daemon, about that endpoint
    (named by the socket file, ``<bdf>.sock``)."""
    bdf = os.path.basename(endpoint_socket).removesuffix(".sock")
    admin = RawClient(admin_socket(endpoint_socket))
    try:
        return admin.json(cmd, {"bdf": bdf, **obj})
    finally:
        admin.close()


def write_cmd(dev_addr: int, length: int, iova: int) -> dict:
    lo, hi = abi.split_u64(dev_addr)
    return {"dptr": iova, "dlen": length, "cdw10": lo, "cdw11": hi, "cdw12": length}
