"""Typed builders for admin and IO commands.

A :class:`Command` is an immutable description (the packed 64-byte SQE with cid 0, plus the DMA
buffers it touches); submitting it creates a fresh :class:`~accelctl.driver.tracker.Request`, so
one Command can be sent many times. Packing once here makes submission a 64-byte copy plus a
16-bit cid store instead of a 15-field ``struct.pack_into`` per send. Data pointers are (IOVA, length) ranges of registered DMA buffers, or an
SGL descriptor list kept in a registered buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accelctl.protocol import abi
from accelctl.driver.dma import DmaBuffer

Segment = tuple[DmaBuffer, int, int]  # (buffer, offset, length)


@dataclass(frozen=True, slots=True)
class Command:
    opcode: int
    #: The SQE, packed, with cid 0 (abi.SQE layout).
    sqe: bytes
    #: Buffers the device may touch while the command runs: pinned (refcounted) until it ends.
    buffers: tuple = ()
    admin: bool = False

    @property
    def fields(self) -> tuple:
        """The unpacked SQE (abi.SQE field order), for inspection."""
        return abi.SQE.unpack(self.sqe)

    @property
    def name(self) -> str:
        table = abi.AdminOpcode if self.admin else abi.IoOpcode
        try:
            return table(self.opcode).name.lower()
        except ValueError:
            return f"opcode {self.opcode:#x}"


def _sqe(opcode: int, *, flags: int = 0, nsid: int = 0, dptr: tuple[int, int] = (0, 0), cdw10: int = 0,
         cdw11: int = 0, cdw12: int = 0, cdw13: int = 0, cdw14: int = 0, cdw15: int = 0) -> bytes:
    return abi.SQE.pack(opcode, flags, 0, nsid, 0, 0, 0, dptr[0], dptr[1], cdw10, cdw11, cdw12, cdw13, cdw14, cdw15)


def _admin(opcode: int, buffers: tuple = (), **kw: int | tuple[int, int]) -> Command:
    return Command(opcode, _sqe(opcode, **kw), buffers, admin=True)  # type: ignore[arg-type]


# --- admin ---------------------------------------------------------------------------------


def identify(buf: DmaBuffer, cns: int = abi.IdentifyCns.CONTROLLER) -> Command:
    return _admin(abi.AdminOpcode.IDENTIFY, (buf,), dptr=buf.device_address(0, abi.IDENTIFY_SIZE), cdw10=cns)


def get_log_page(buf: DmaBuffer, log_id: int, length: int, offset: int = 0) -> Command:
    return _admin(abi.AdminOpcode.GET_LOG_PAGE, (buf,), dptr=buf.device_address(0, length),
                  cdw10=log_id, cdw12=length, cdw13=offset)


def get_features(feature: int) -> Command:
    return _admin(abi.AdminOpcode.GET_FEATURES, cdw10=feature)


def set_features(feature: int, value: int) -> Command:
    return _admin(abi.AdminOpcode.SET_FEATURES, cdw10=feature, cdw11=value & 0xFFFFFFFF)


def create_io_cq(qid: int, entries: int, ring_iova: int, vector: int, *, interrupts: bool = True) -> Command:
    return _admin(abi.AdminOpcode.CREATE_IO_CQ, dptr=(ring_iova, entries * abi.CQE_SIZE),
                  cdw10=abi.queue_cdw10(qid, entries), cdw11=abi.create_cq_cdw11(vector, interrupts=interrupts))


def create_io_sq(qid: int, entries: int, ring_iova: int, cqid: int) -> Command:
    return _admin(abi.AdminOpcode.CREATE_IO_SQ, dptr=(ring_iova, entries * abi.SQE_SIZE),
                  cdw10=abi.queue_cdw10(qid, entries), cdw11=abi.create_sq_cdw11(cqid))


def delete_io_sq(qid: int) -> Command:
    return _admin(abi.AdminOpcode.DELETE_IO_SQ, cdw10=qid)


def delete_io_cq(qid: int) -> Command:
    return _admin(abi.AdminOpcode.DELETE_IO_CQ, cdw10=qid)


def abort(sqid: int, cid: int) -> Command:
    return _admin(abi.AdminOpcode.ABORT, cdw10=abi.abort_cdw10(sqid, cid))


def async_event_request() -> Command:
    return _admin(abi.AdminOpcode.ASYNC_EVENT_REQUEST)


def keep_alive() -> Command:
    return _admin(abi.AdminOpcode.KEEP_ALIVE)


# --- IO ------------------------------------------------------------------------------------


def _io(opcode: int, dev_addr: int, length: int, buffers: tuple = (), *, flags: int = 0,
        dptr: tuple[int, int] = (0, 0), cdw13: int = 0, src: int = 0) -> Command:
    lo, hi = abi.split_u64(dev_addr)
    slo, shi = abi.split_u64(src)
    return Command(opcode, _sqe(opcode, flags=flags, dptr=dptr, cdw10=lo, cdw11=hi, cdw12=length,
                                cdw13=cdw13, cdw14=slo, cdw15=shi), buffers)


def _data(opcode: int, dev_addr: int, buf: DmaBuffer, offset: int, length: int | None) -> Command:
    iova, n = buf.device_address(offset, length)
    return _io(opcode, dev_addr, n, (buf,), dptr=(iova, n))


def write(dev_addr: int, buf: DmaBuffer, offset: int = 0, length: int | None = None) -> Command:
    """Host buffer range -> device memory at ``dev_addr``."""
    return _data(abi.IoOpcode.WRITE, dev_addr, buf, offset, length)


def read(dev_addr: int, buf: DmaBuffer, offset: int = 0, length: int | None = None) -> Command:
    """Device memory at ``dev_addr`` -> host buffer range."""
    return _data(abi.IoOpcode.READ, dev_addr, buf, offset, length)


def compare(dev_addr: int, buf: DmaBuffer, offset: int = 0, length: int | None = None) -> Command:
    """Device memory vs host range; a mismatch completes with MEDIA/COMPARE_FAILURE."""
    return _data(abi.IoOpcode.COMPARE, dev_addr, buf, offset, length)


def fill(dev_addr: int, length: int, pattern: int = 0) -> Command:
    """Device memory range <- a repeated little-endian u32 pattern (no host data)."""
    return _io(abi.IoOpcode.FILL, dev_addr, length, cdw13=pattern & 0xFFFFFFFF)


def copy(dst_addr: int, src_addr: int, length: int) -> Command:
    """Device memory -> device memory."""
    return _io(abi.IoOpcode.COPY, dst_addr, length, src=src_addr)


def flush() -> Command:
    return _io(abi.IoOpcode.FLUSH, 0, 0)


def fence() -> Command:
    return _io(abi.IoOpcode.FENCE, 0, 0)


def write_sgl(dev_addr: int, segments: Sequence[Segment], descriptors: DmaBuffer) -> Command:
    """Gather several host ranges into one contiguous device range (SGL in ``descriptors``)."""
    return _sgl(abi.IoOpcode.WRITE, dev_addr, segments, descriptors)


def read_sgl(dev_addr: int, segments: Sequence[Segment], descriptors: DmaBuffer) -> Command:
    """Scatter one contiguous device range into several host ranges."""
    return _sgl(abi.IoOpcode.READ, dev_addr, segments, descriptors)


def _sgl(opcode: int, dev_addr: int, segments: Sequence[Segment], descriptors: DmaBuffer) -> Command:
    total = 0
    table = descriptors.view
    for i, (buf, offset, length) in enumerate(segments):
        iova, n = buf.device_address(offset, length)
        abi.SGL_DESC.pack_into(table, i * abi.SGL_DESC_SIZE, iova, n, abi.SGL_TYPE_DATA_BLOCK)
        total += n
    list_iova, _ = descriptors.device_address(0, len(segments) * abi.SGL_DESC_SIZE)
    buffers = (descriptors, *dict.fromkeys(seg[0] for seg in segments))
    return _io(opcode, dev_addr, total, buffers, flags=abi.FLAGS_SGL, dptr=(list_iova, len(segments)))


# --- payload decoding ----------------------------------------------------------------------


def decode_identify_controller(raw: bytes | memoryview) -> dict:
    (vid, did, serial, model, fw, abi_version, max_queues, max_entries, acl, aerl, sgl_max, mdts,
     memory_size, optional_io, reset_gen) = abi.IDENTIFY_CONTROLLER.unpack_from(raw)
    return {
        "vendor_id": f"{vid:04x}", "device_id": f"{did:04x}", "serial": abi.c_string(serial),
        "model": abi.c_string(model), "firmware_rev": abi.c_string(fw),
        "abi_version": f"{abi_version >> 16}.{abi_version & 0xFFFF}", "max_queues": max_queues,
        "max_queue_entries": max_entries, "abort_limit": acl + 1, "async_event_limit": aerl + 1,
        "sgl_max_descriptors": sgl_max, "max_transfer_bytes": mdts, "memory_size": memory_size,
        "optional_io_opcodes": optional_io, "reset_generation": reset_gen,
    }


def decode_identify_endpoint(raw: bytes | memoryview) -> dict:
    bdf, logical, numa, bar0, serial, model = abi.IDENTIFY_ENDPOINT.unpack_from(raw)
    addr = abi.unpack_logical_address(logical)
    return {
        "bdf": abi.c_string(bdf), "serial": abi.c_string(serial), "model": abi.c_string(model),
        "numa_node": numa, "bar0_size": bar0,
        "logical_address": None if addr is None else {"card": addr[0], "endpoint": addr[1], "global_id": addr[2]},
    }


def decode_health_log(raw: bytes | memoryview) -> dict:
    warning, _, temp_k, threshold_k, power_state, *counters = abi.HEALTH_LOG.unpack_from(raw)
    out: dict = {"critical_warning": warning, "temperature_k": temp_k,
                 "temperature_threshold_k": threshold_k, "power_state": power_state}
    out.update(zip(abi.HEALTH_COUNTERS, counters))
    return out


def decode_error_log(raw: bytes | memoryview) -> list[dict]:
    entries = []
    for i in range(len(raw) // abi.ERROR_LOG_ENTRY_SIZE):
        count, sqid, cid, status, opcode, dev_addr, length = abi.ERROR_LOG_ENTRY.unpack_from(
            raw, i * abi.ERROR_LOG_ENTRY_SIZE)
        if count == 0:
            continue
        entries.append({"error_count": count, "sqid": sqid, "cid": f"{cid:04x}", "status": abi.status_name(status),
                        "opcode": f"{opcode:02x}", "device_address": f"{dev_addr:x}", "length": length})
    return entries


def decode_firmware_log(raw: bytes | memoryview) -> dict:
    active, *slots = abi.FIRMWARE_LOG.unpack_from(raw)
    return {"active_slot": active, "slots": {str(i + 1): abi.c_string(s) or None for i, s in enumerate(slots)}}


LOG_PAGES = {
    "health": (abi.LogPage.HEALTH, abi.HEALTH_LOG_SIZE, decode_health_log),
    "error": (abi.LogPage.ERROR, abi.ERROR_LOG_ENTRY_SIZE * abi.ERROR_LOG_ENTRIES, decode_error_log),
    "firmware": (abi.LogPage.FIRMWARE, abi.FIRMWARE_LOG_SIZE, decode_firmware_log),
}
