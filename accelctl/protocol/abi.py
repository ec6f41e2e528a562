"""The wire ABI between the driver core (client) and a device (simulator daemon or kernel driver).

Everything that crosses the boundary is defined here and nowhere else: ring entry formats, command
ids, opcodes, status codes, register offsets and bits, the doorbell page layout, control-message
framing and command numbers, and the layouts of identify / log page / feature payloads.
docs/driver-abi.md is the prose version of this file.

Rules of this module: pure constants, precompiled ``struct.Struct``s and tiny pure helpers; no I/O,
no imports beyond the standard library. All integers are little-endian. The ABI only grows: a field
or number once published keeps its meaning (bump ``ABI_VERSION`` minor for additions).
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag

#: (major, minor): major changes break, minor changes only add.
ABI_VERSION = (1, 2)  # 1.1: SQ flags (NEED_WAKEUP) in the status area; 1.2: MEM_ALLOC / MEM_FREE
ABI_VERSION_WORD = (ABI_VERSION[0] << 16) | ABI_VERSION[1]

# =============================================================================================
# Ring entries (fast path, shared memory)
# =============================================================================================

#: Submission queue entry, 64 bytes:
#: opc u8 | flags u8 (fuse:2 bits 0-1, psdt:2 bits 6-7) | cid u16 | nsid u32 | cdw2 u32 | cdw3 u32 |
#: mptr u64 | dptr_addr u64 | dptr_len u64 | cdw10 .. cdw15 (6 x u32)
SQE = struct.Struct("<BBHIIIQQQIIIIII")
SQE_SIZE = 64
#: Field indexes into ``SQE.unpack_from(...)`` tuples.
SQE_OPC, SQE_FLAGS, SQE_CID, SQE_NSID, SQE_CDW2, SQE_CDW3, SQE_MPTR = 0, 1, 2, 3, 4, 5, 6
SQE_DPTR_ADDR, SQE_DPTR_LEN = 7, 8
SQE_CDW10, SQE_CDW11, SQE_CDW12, SQE_CDW13, SQE_CDW14, SQE_CDW15 = 9, 10, 11, 12, 13, 14
#: Byte offset of the CID inside an SQE.
SQE_CID_OFFSET = 2

#: Completion queue entry, 16 bytes: cdw0 (result) u32 | cdw1 (result_hi) u32 | sqhd u16 | sqid u16 |
#: cid u16 | status u16. The status word (bit 0 = phase) is at byte 14 and is written LAST, as its
#: own 2-byte store; a reader loads the status word first and only then the other 14 bytes.
CQE = struct.Struct("<IIHHHH")
CQE_SIZE = 16
#: The first 14 bytes (everything but the status word): what the device writes first.
CQE_BODY = struct.Struct("<IIHHH")
CQE_STATUS = struct.Struct("<H")
CQE_STATUS_OFFSET = 14
#: Index of the status word when a CQ is viewed as ``memoryview.cast("H")``: entry i -> i*8 + 7.
CQE_STATUS_HWORD = 7
CQE_CID_OFFSET = 12

#: SGL data-block descriptor (psdt = PSDT_SGL), 16 bytes: addr u64 | length u32 | rsvd 3 bytes | type u8.
SGL_DESC = struct.Struct("<QI3xB")
SGL_DESC_SIZE = 16
SGL_TYPE_DATA_BLOCK = 0x00

# SQE flags byte.
SQE_FLAG_FUSE_MASK = 0x03
SQE_FLAG_PSDT_SHIFT = 6
#: dptr_addr is one IOVA, dptr_len the byte length of one contiguous range.
PSDT_CONTIG = 0
#: dptr_addr is the IOVA of an array of SGL_DESC entries, dptr_len the number of entries.
PSDT_SGL = 1
FLAGS_SGL = PSDT_SGL << SQE_FLAG_PSDT_SHIFT


def sqe_psdt(flags: int) -> int:
    return (flags >> SQE_FLAG_PSDT_SHIFT) & 0x3


# --- command id: gen:4 | tag:12 (Linux e7006de6c238) ------------------------------------------

CID_TAG_BITS = 12
CID_TAG_MASK = 0x0FFF
CID_GEN_MASK = 0xF
#: Largest usable queue depth: tags run 0 .. MAX_TAGS-1.
MAX_TAGS = 4095


def make_cid(gen: int, tag: int) -> int:
    return ((gen & CID_GEN_MASK) << CID_TAG_BITS) | (tag & CID_TAG_MASK)


def cid_tag(cid: int) -> int:
    return cid & CID_TAG_MASK


def cid_gen(cid: int) -> int:
    return (cid >> CID_TAG_BITS) & CID_GEN_MASK


# =============================================================================================
# Status word (CQE bytes 14-15): P bit0 | SC bits1-8 | SCT bits9-11 | CRD bits12-13 | M bit14 | DNR bit15
# =============================================================================================

STATUS_PHASE = 0x0001
STATUS_SC_SHIFT, STATUS_SC_MASK = 1, 0xFF
STATUS_SCT_SHIFT, STATUS_SCT_MASK = 9, 0x7
STATUS_CRD_SHIFT, STATUS_CRD_MASK = 12, 0x3
STATUS_MORE = 0x4000
STATUS_DNR = 0x8000


class StatusCodeType(IntEnum):
    GENERIC = 0
    COMMAND_SPECIFIC = 1
    MEDIA = 2  # data integrity errors (compare failure, access denied)
    PATH = 3
    VENDOR = 7


class GenericStatus(IntEnum):
    """sct = GENERIC."""

    SUCCESS = 0x00
    INVALID_OPCODE = 0x01
    INVALID_FIELD = 0x02
    COMMAND_ID_CONFLICT = 0x03
    DATA_TRANSFER_ERROR = 0x04  # a DMA address outside the sender's map, or a bad SGL
    ABORTED_POWER_LOSS = 0x05
    INTERNAL_ERROR = 0x06
    ABORTED_BY_REQUEST = 0x07  # ABORT admin command hit it
    ABORTED_SQ_DELETION = 0x08  # queue deleted / controller disabled / reset; retryable
    ABORTED_FAILED_FUSED = 0x09
    ABORTED_MISSING_FUSED = 0x0A
    INVALID_SGL_DESCRIPTOR = 0x0D
    INVALID_SGL_COUNT = 0x0E
    DATA_SGL_LENGTH_INVALID = 0x0F
    SGL_TYPE_INVALID = 0x11
    DEVICE_ADDRESS_OUT_OF_RANGE = 0x80  # NVMe LBA_OUT_OF_RANGE: beyond device memory
    CAPACITY_EXCEEDED = 0x81
    NOT_READY = 0x82  # NVMe NAMESPACE_NOT_READY; retryable unless DNR


class CommandSpecificStatus(IntEnum):
    """sct = COMMAND_SPECIFIC."""

    INVALID_COMPLETION_QUEUE = 0x00
    INVALID_QUEUE_IDENTIFIER = 0x01
    INVALID_QUEUE_SIZE = 0x02
    ABORT_COMMAND_LIMIT_EXCEEDED = 0x03
    ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED = 0x05
    INVALID_FIRMWARE_SLOT = 0x06
    INVALID_INTERRUPT_VECTOR = 0x08
    INVALID_LOG_PAGE = 0x09
    INVALID_QUEUE_DELETION = 0x0C  # deleting a CQ that still has SQs
    FEATURE_NOT_SAVEABLE = 0x0D
    FEATURE_NOT_CHANGEABLE = 0x0E


class MediaStatus(IntEnum):
    """sct = MEDIA."""

    COMPARE_FAILURE = 0x85
    ACCESS_DENIED = 0x86


class PathStatus(IntEnum):
    """sct = PATH."""

    INTERNAL_PATH_ERROR = 0x00
    CONTROLLER_PATHING_ERROR = 0x60


def make_status(sct: int, sc: int, *, dnr: bool = False, crd: int = 0, more: bool = False) -> int:
    """The status word without its phase bit (bit 0 is 0): OR in the phase when posting."""
    word = ((sc & STATUS_SC_MASK) << STATUS_SC_SHIFT) | ((sct & STATUS_SCT_MASK) << STATUS_SCT_SHIFT)
    word |= (crd & STATUS_CRD_MASK) << STATUS_CRD_SHIFT
    if more:
        word |= STATUS_MORE
    if dnr:
        word |= STATUS_DNR
    return word


def status_sc(word: int) -> int:
    return (word >> STATUS_SC_SHIFT) & STATUS_SC_MASK


def status_sct(word: int) -> int:
    return (word >> STATUS_SCT_SHIFT) & STATUS_SCT_MASK


def status_crd(word: int) -> int:
    return (word >> STATUS_CRD_SHIFT) & STATUS_CRD_MASK


def status_dnr(word: int) -> bool:
    return bool(word & STATUS_DNR)


def status_ok(word: int) -> bool:
    """True when sct and sc are both 0 (phase, crd, more, dnr ignored)."""
    return (word & 0x0FFE) == 0


#: Status words (without phase) that commonly occur; precomputed for the device's hot path.
STATUS_SUCCESS = 0
STATUS_INVALID_OPCODE = make_status(StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, dnr=True)
STATUS_INVALID_FIELD = make_status(StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, dnr=True)
STATUS_DATA_TRANSFER_ERROR = make_status(
    StatusCodeType.GENERIC, GenericStatus.DATA_TRANSFER_ERROR, dnr=True
)
STATUS_OUT_OF_RANGE = make_status(
    StatusCodeType.GENERIC, GenericStatus.DEVICE_ADDRESS_OUT_OF_RANGE, dnr=True
)
STATUS_ABORTED_BY_REQUEST = make_status(StatusCodeType.GENERIC, GenericStatus.ABORTED_BY_REQUEST)
#: Retryable (dnr=0): what in-flight commands get on queue deletion, controller disable or reset.
STATUS_ABORTED_SQ_DELETION = make_status(StatusCodeType.GENERIC, GenericStatus.ABORTED_SQ_DELETION)
STATUS_INTERNAL_ERROR = make_status(StatusCodeType.GENERIC, GenericStatus.INTERNAL_ERROR)
STATUS_COMPARE_FAILURE = make_status(StatusCodeType.MEDIA, MediaStatus.COMPARE_FAILURE, dnr=True)
#: (1.2) The command names device memory another session allocated (MEM_ALLOC): nothing touched.
STATUS_ACCESS_DENIED = make_status(StatusCodeType.MEDIA, MediaStatus.ACCESS_DENIED, dnr=True)

_RETRYABLE = frozenset(
    {
        (StatusCodeType.GENERIC, GenericStatus.ABORTED_SQ_DELETION),
        (StatusCodeType.GENERIC, GenericStatus.NOT_READY),
        (StatusCodeType.GENERIC, GenericStatus.INTERNAL_ERROR),
        (StatusCodeType.GENERIC, GenericStatus.ABORTED_POWER_LOSS),
        (StatusCodeType.PATH, PathStatus.INTERNAL_PATH_ERROR),
        (StatusCodeType.PATH, PathStatus.CONTROLLER_PATHING_ERROR),
    }
)


def status_retryable(word: int) -> bool:
    """Whether a failed command may be resubmitted: never with DNR, never ABORTED_BY_REQUEST;
    yes for queue deletion / reset aborts, not-ready, internal and path errors."""
    if word & STATUS_DNR or status_ok(word):
        return False
    return (status_sct(word), status_sc(word)) in _RETRYABLE


def status_name(word: int) -> str:
    """A readable name for a status word, e.g. ``GENERIC/DATA_TRANSFER_ERROR``."""
    sct, sc = status_sct(word), status_sc(word)
    table: type[IntEnum] | None = {
        StatusCodeType.GENERIC: GenericStatus,
        StatusCodeType.COMMAND_SPECIFIC: CommandSpecificStatus,
        StatusCodeType.MEDIA: MediaStatus,
        StatusCodeType.PATH: PathStatus,
    }.get(sct)  # type: ignore[call-overload]
    try:
        sct_name = StatusCodeType(sct).name
    except ValueError:
        sct_name = f"SCT{sct}"
    if table is not None:
        try:
            return f"{sct_name}/{table(sc).name}"
        except ValueError:
            pass
    return f"{sct_name}/0x{sc:02x}"


# =============================================================================================
# Opcodes
# =============================================================================================


class AdminOpcode(IntEnum):
    DELETE_IO_SQ = 0x00  # cdw10[15:0] qid
    CREATE_IO_SQ = 0x01  # dptr_addr = ring IOVA; cdw10 = qid | (entries-1)<<16; cdw11 = PC | cqid<<16
    GET_LOG_PAGE = 0x02  # cdw10[7:0] LogPage; cdw12 bytes; cdw13 byte offset; data -> host
    DELETE_IO_CQ = 0x04  # cdw10[15:0] qid
    CREATE_IO_CQ = 0x05  # dptr_addr = ring IOVA; cdw10 = qid | (entries-1)<<16; cdw11 = PC|IEN<<1|iv<<16
    IDENTIFY = 0x06  # cdw10[7:0] IdentifyCns; 4096 bytes -> host
    ABORT = 0x08  # cdw10 = sqid | cid<<16; result bit0: 0 aborted, 1 NOT aborted
    SET_FEATURES = 0x09  # cdw10[7:0] Feature; cdw11 value (some features: data from host)
    GET_FEATURES = 0x0A  # cdw10[7:0] Feature; result cdw0 value
    ASYNC_EVENT_REQUEST = 0x0C  # stays outstanding until an event; result = event word
    KEEP_ALIVE = 0x18


class IoOpcode(IntEnum):
    """IO commands on device memory. Common fields:
    dev_addr = cdw10 | cdw11<<32 (byte offset into device memory); length = cdw12 (bytes);
    the host side is the data pointer (PSDT_CONTIG or PSDT_SGL) over the session's DMA map."""

    FLUSH = 0x00  # completes after every earlier command of this SQ has completed
    WRITE = 0x01  # host (dptr) -> device [dev_addr, +length)
    READ = 0x02  # device [dev_addr, +length) -> host (dptr)
    COMPARE = 0x05  # device vs host; mismatch: MEDIA/COMPARE_FAILURE, result = first differing offset
    FILL = 0x08  # device [dev_addr, +length) <- pattern cdw13 (u32, little-endian, repeated)
    COPY = 0x19  # device [src = cdw14 | cdw15<<32, +length) -> device [dev_addr, +length)
    FENCE = 0x80  # completes after every earlier command of the whole session has completed


#: IO opcodes that move data between the host and the device (they use dptr).
IO_DATA_OPCODES = frozenset({IoOpcode.WRITE, IoOpcode.READ, IoOpcode.COMPARE})
ADMIN_QID = 0


def io_dev_addr(cdw10: int, cdw11: int) -> int:
    return cdw10 | (cdw11 << 32)


def split_u64(value: int) -> tuple[int, int]:
    """(low u32, high u32) of a u64, for cdw pairs."""
    return value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF


def queue_cdw10(qid: int, entries: int) -> int:
    """cdw10 of CREATE_IO_SQ / CREATE_IO_CQ: qid | (entries-1) << 16."""
    return (qid & 0xFFFF) | (((entries - 1) & 0xFFFF) << 16)


def create_cq_cdw11(vector: int, *, interrupts: bool = True, contiguous: bool = True) -> int:
    return (1 if contiguous else 0) | (2 if interrupts else 0) | ((vector & 0xFFFF) << 16)


def create_sq_cdw11(cqid: int, *, contiguous: bool = True, priority: int = 0) -> int:
    return (1 if contiguous else 0) | ((priority & 0x3) << 1) | ((cqid & 0xFFFF) << 16)


def abort_cdw10(sqid: int, cid: int) -> int:
    return (sqid & 0xFFFF) | ((cid & 0xFFFF) << 16)


#: ABORT result cdw0 bit 0: set = the command was NOT aborted (it had completed or was not found).
ABORT_RESULT_NOT_ABORTED = 0x1


class IdentifyCns(IntEnum):
    CONTROLLER = 0x01
    ENDPOINT = 0x02


class LogPage(IntEnum):
    ERROR = 0x01  # array of ERROR_LOG_ENTRY, newest first
    HEALTH = 0x02  # HEALTH_LOG
    FIRMWARE = 0x03  # FIRMWARE_LOG


class Feature(IntEnum):
    """Feature ids (cdw10[7:0] of GET/SET_FEATURES); value in cdw11 (set) / result cdw0 (get)."""

    TEMPERATURE_THRESHOLD = 0x04  # Kelvin, u16
    NUMBER_OF_QUEUES = 0x07  # (nsq-1) | (ncq-1)<<16 of IO queues
    INTERRUPT_COALESCING = 0x08  # thr:8 (entries-1) | time:8 (100 us units)
    ASYNC_EVENT_CONFIG = 0x0B  # bitmap of AsyncEventType enabled
    KEEP_ALIVE_TIMER = 0x0F  # milliseconds, 0 = off
    POWER_STATE = 0xC0  # PowerState
    LOGICAL_ADDRESS = 0xC1  # pack_logical_address(); persisted by the device across power cycles
    DEVICE_POLL_US = 0xC2  # device-side spin before sleeping on the kick eventfd, microseconds


class PowerState(IntEnum):
    ACTIVE = 0
    IDLE = 1
    OFF = 3


#: LOGICAL_ADDRESS value: global_id bits 0-15 | endpoint bits 16-23 | card bits 24-30 | valid bit 31.
LOGICAL_ADDRESS_VALID = 1 << 31


def pack_logical_address(card: int, endpoint: int, global_id: int) -> int:
    if not (0 <= card < 128 and 0 <= endpoint < 256 and 0 <= global_id < 65536):
        raise ValueError(f"logical address out of range: card {card} ep {endpoint} gid {global_id}")
    return LOGICAL_ADDRESS_VALID | (card << 24) | (endpoint << 16) | global_id


def unpack_logical_address(value: int) -> tuple[int, int, int] | None:
    """(card, endpoint, global_id), or None when no address has been programmed."""
    if not value & LOGICAL_ADDRESS_VALID:
        return None
    return (value >> 24) & 0x7F, (value >> 16) & 0xFF, value & 0xFFFF


class AsyncEventType(IntEnum):
    ERROR = 0
    HEALTH = 1
    NOTICE = 2
    VENDOR = 7


class AsyncEventInfo(IntEnum):
    # ERROR
    FATAL_CONTROLLER = 0x00  # CSTS.CFS set
    # HEALTH
    TEMPERATURE_THRESHOLD = 0x01
    # NOTICE
    FIRMWARE_ACTIVATED = 0x01
    LOGICAL_ADDRESS_CHANGED = 0x80
    # VENDOR
    DEVICE_RESET = 0x00


def make_event(kind: int, info: int, log_page: int = 0) -> int:
    """ASYNC_EVENT_REQUEST result cdw0: type bits 0-2 | info bits 8-15 | log page bits 16-23."""
    return (kind & 0x7) | ((info & 0xFF) << 8) | ((log_page & 0xFF) << 16)


# =============================================================================================
# Registers (REG_READ / REG_WRITE control messages; per session = per controller instance)
# =============================================================================================


class Reg(IntEnum):
    CAP = 0x00  # u64, read-only
    VS = 0x08  # u32, read-only
    INTMS = 0x0C  # u32, write 1 to mask vectors
    INTMC = 0x10  # u32, write 1 to unmask vectors
    CC = 0x14  # u32
    CSTS = 0x1C  # u32, read-only (also mirrored in the doorbell page)
    AQA = 0x24  # u32: ASQS (entries-1) bits 0-11 | ACQS (entries-1) bits 16-27
    ASQ = 0x28  # u64: IOVA of the admin SQ ring
    ACQ = 0x30  # u64: IOVA of the admin CQ ring


#: Width in bytes of each register.
REG_WIDTH = {Reg.CAP: 8, Reg.VS: 4, Reg.INTMS: 4, Reg.INTMC: 4, Reg.CC: 4, Reg.CSTS: 4,
             Reg.AQA: 4, Reg.ASQ: 8, Reg.ACQ: 8}

# CAP fields.
CAP_MQES_MASK = 0xFFFF  # max queue entries - 1
CAP_CQR = 1 << 16  # contiguous queues required (always set)
CAP_TO_SHIFT = 24  # ready timeout in 500 ms units, bits 24-31
CAP_DSTRD_SHIFT = 32  # doorbell stride = 2 ** (2 + DSTRD) bytes, bits 32-35


def make_cap(max_entries: int, ready_timeout_ms: int, doorbell_stride: int) -> int:
    dstrd = doorbell_stride.bit_length() - 3  # stride 4 -> 0, 32 -> 3
    to = max(1, (ready_timeout_ms + 499) // 500) & 0xFF
    return ((max_entries - 1) & CAP_MQES_MASK) | CAP_CQR | (to << CAP_TO_SHIFT) | (dstrd << CAP_DSTRD_SHIFT)


def cap_max_entries(cap: int) -> int:
    return (cap & CAP_MQES_MASK) + 1


def cap_doorbell_stride(cap: int) -> int:
    return 1 << (2 + ((cap >> CAP_DSTRD_SHIFT) & 0xF))


VS_1_0 = 0x00010000

# CC fields.
CC_EN = 1 << 0
CC_SHN_SHIFT = 14
CC_SHN_MASK = 0x3 << CC_SHN_SHIFT
CC_SHN_NORMAL = 1 << CC_SHN_SHIFT
CC_SHN_ABRUPT = 2 << CC_SHN_SHIFT

# CSTS fields.
CSTS_RDY = 1 << 0
CSTS_CFS = 1 << 1  # controller fatal status: only a reset clears it
CSTS_SHST_SHIFT = 2
CSTS_SHST_MASK = 0x3 << CSTS_SHST_SHIFT
CSTS_SHST_COMPLETE = 2 << CSTS_SHST_SHIFT
#: What CSTS reads as once the device is gone (PCIe master abort).
CSTS_GONE = 0xFFFFFFFF

AQA_ENTRIES_MASK = 0xFFF


def make_aqa(sq_entries: int, cq_entries: int) -> int:
    return ((sq_entries - 1) & AQA_ENTRIES_MASK) | (((cq_entries - 1) & AQA_ENTRIES_MASK) << 16)


def aqa_sq_entries(aqa: int) -> int:
    return (aqa & AQA_ENTRIES_MASK) + 1


def aqa_cq_entries(aqa: int) -> int:
    return ((aqa >> 16) & AQA_ENTRIES_MASK) + 1


# =============================================================================================
# Doorbell page (memfd from GET_DOORBELLS, shared by host and device, one per session)
# =============================================================================================

#: Bytes between consecutive doorbells. SQ tail of qid at (2*qid)*STRIDE, CQ head at (2*qid+1)*STRIDE,
#: so each queue pair's doorbells share one 64-byte line and no other queue's.
DOORBELL_STRIDE = 32
DOORBELL_PAGE_SIZE = 8192
#: Queue ids 0 .. MAX_QUEUES-1 have doorbells (qid 0 = admin).
MAX_QUEUES = 64
#: The second 4 KiB of the page is written only by the device (host reads): a status mirror.
STATUS_AREA_OFFSET = 4096
#: u32: mirror of CSTS (CSTS_GONE once the device is removed); poll it without a control message.
STATUS_CSTS_OFFSET = STATUS_AREA_OFFSET + 0
#: u32: the device reset generation; differs from the session's own once the session is stale.
STATUS_RESET_GEN_OFFSET = STATUS_AREA_OFFSET + 4
#: u32: the session's reset generation (the value it opened with or adopted with its own reset).
STATUS_SESSION_GEN_OFFSET = STATUS_AREA_OFFSET + 8
#: (ABI 1.1) u32 per SQ, qid 0..MAX_QUEUES-1, device-written: the SQ flags of qid at
#: ``STATUS_SQ_FLAGS_OFFSET + 4*qid``. Offered as the "need_wakeup" feature in VERSION caps.
STATUS_SQ_FLAGS_OFFSET = STATUS_AREA_OFFSET + 64
#: SQ flag: the engine may be asleep. A host that stored this SQ's tail, then ran a full fence,
#: and still sees the flag clear may skip the kick (the engine is busy-polling the doorbells and
#: re-checks them, after its own fence, before it sleeps). Set unless the engine is awake.
SQ_FLAG_NEED_WAKEUP = 0x1
FEATURE_NEED_WAKEUP = "need_wakeup"


def sq_doorbell_offset(qid: int) -> int:
    return (2 * qid) * DOORBELL_STRIDE


def cq_doorbell_offset(qid: int) -> int:
    return (2 * qid + 1) * DOORBELL_STRIDE


def sq_doorbell_index(qid: int) -> int:
    """Index of the SQ tail doorbell when the page is viewed as ``memoryview.cast("I")``."""
    return (2 * qid) * DOORBELL_STRIDE // 4


def cq_doorbell_index(qid: int) -> int:
    return (2 * qid + 1) * DOORBELL_STRIDE // 4


STATUS_CSTS_INDEX = STATUS_CSTS_OFFSET // 4
STATUS_RESET_GEN_INDEX = STATUS_RESET_GEN_OFFSET // 4
STATUS_SESSION_GEN_INDEX = STATUS_SESSION_GEN_OFFSET // 4


def sq_flags_index(qid: int) -> int:
    """(ABI 1.1) Index of qid's SQ flags word when the page is viewed as ``memoryview.cast("I")``."""
    return (STATUS_SQ_FLAGS_OFFSET + 4 * qid) // 4

# =============================================================================================
# Control messages (slow path, AF_UNIX SOCK_SEQPACKET, one message per datagram)
# =============================================================================================

#: msg_id u16 | cmd u16 | size u32 (whole message incl. header) | flags u32 | errno u32.
CTRL_HEADER = struct.Struct("<HHIII")
CTRL_HEADER_SIZE = 16
#: Largest control message either side sends; anything bigger is a protocol error (connection dropped).
CTRL_MAX_MSG_SIZE = 65536
#: Most fds that may ride on one message (SCM_RIGHTS); more is a protocol error.
CTRL_MAX_MSG_FDS = 8


class CtrlFlags(IntFlag):
    REPLY = 0x01
    NO_REPLY = 0x10
    ERROR = 0x20  # errno field set; payload is a UTF-8 message


class CtrlCmd(IntEnum):
    """Control commands ("ioctls"). Payload layouts are the CTRL_* structs below; JSON payloads
    are UTF-8 JSON objects (slow-path, extensible)."""

    VERSION = 1  # req JSON {"abi": [maj, min], ...}; reply JSON caps (see docs/driver-abi.md)
    GET_INFO = 2  # reply JSON: bdf, serial, model, memory_size, reset_gen, session ...
    REG_READ = 3  # req CTRL_REG; reply CTRL_REG_VALUE
    REG_WRITE = 4  # req CTRL_REG_WRITE; reply empty
    DMA_MAP = 5  # req CTRL_DMA_MAP + 1 fd (memfd); reply empty
    DMA_UNMAP = 6  # req CTRL_DMA_UNMAP; reply empty (EBUSY while a live queue ring lies in it)
    SET_IRQS = 7  # req CTRL_FD_RANGE (first vector, count) + count eventfds
    SET_KICKS = 8  # req CTRL_FD_RANGE (first qid, count) + count eventfds (SQ kick = ioeventfd)
    GET_DOORBELLS = 9  # reply CTRL_U32 (page size) + 1 fd (the doorbell page memfd)
    RESET = 10  # req CTRL_RESET; reply CTRL_U32 (reset generation afterwards)
    SET_EVENT_NOTIFIER = 11  # req 1 eventfd: written on reset / fatal status / removal
    PASSTHRU = 12  # req CTRL_PASSTHRU + SQE (64 B); reply one CQE (16 B): command without rings
    FAULT = 13  # admin socket only (JSON {"bdf", "add": [...], "clear"}); EPERM on a device socket
    INTROSPECT = 14  # reply JSON: every connection's queues, DMA maps, eventfds (tests, debugging)
    STATS = 15  # reply JSON: per-endpoint counters
    MEM_ALLOC = 16  # (1.2) req CTRL_MEM_ALLOC; reply CTRL_MEM_ADDR: device memory private to this session
    MEM_FREE = 17  # (1.2) req CTRL_MEM_ADDR (an allocation's start); reply empty; the range is zeroed


CTRL_REG = struct.Struct("<II")  # offset u32 | width u32 (4 or 8)
CTRL_REG_VALUE = struct.Struct("<Q")
CTRL_REG_WRITE = struct.Struct("<IIQ")  # offset | width | value
CTRL_DMA_MAP = struct.Struct("<QQQI4x")  # iova | size | fd offset | DmaFlags
CTRL_DMA_UNMAP = struct.Struct("<QQ")  # iova | size
CTRL_FD_RANGE = struct.Struct("<II")  # first | count (count fds follow in SCM_RIGHTS)
CTRL_U32 = struct.Struct("<I")
CTRL_RESET = struct.Struct("<I")  # ResetScope
CTRL_PASSTHRU = struct.Struct("<H6x")  # qid (0 admin, >0 IO command set) then SQE
CTRL_MEM_ALLOC = struct.Struct("<QQI4x")  # device address (MEM_ANY: the device chooses) | size | flags (0)
CTRL_MEM_ADDR = struct.Struct("<Q")  # device address of an allocation
#: MEM_ALLOC at no particular address.
MEM_ANY = 0xFFFF_FFFF_FFFF_FFFF
#: IOVAs and DMA_MAP sizes must be multiples of this.
DMA_PAGE_SIZE = 4096


class DmaFlags(IntFlag):
    READ = 0x1  # device may read the range (host -> device)
    WRITE = 0x2  # device may write the range (device -> host)


class ResetScope(IntEnum):
    #: This session's controller only: queues deleted, in-flight commands aborted with a retryable
    #: status, CC.EN=0; the session stays valid (re-enable and recreate queues).
    CONTROLLER = 1
    #: The whole endpoint: every session's work aborted, every OTHER session made stale (ENODEV from
    #: then on), firmware back to power-on state; the caller adopts the new reset generation.
    DEVICE = 2


# =============================================================================================
# Admin payloads
# =============================================================================================

IDENTIFY_SIZE = 4096

#: Identify controller (CNS 1), first 128 bytes of a 4096-byte page (rest zero):
#: vid u16 | did u16 | serial char[32] | model char[40] | firmware_rev char[8] | abi_version u32 |
#: max_queues u16 | max_queue_entries u16 (MQES+1) | acl u8 | aerl u8 | sgl_max_descriptors u16 |
#: mdts u32 (max bytes per command) | memory_size u64 | optional_io_opcodes u32 (bitmap by opcode&31,
#: FENCE as bit 31) | reset_gen u32 | rsvd to 128.
IDENTIFY_CONTROLLER = struct.Struct("<HH32s40s8sIHHBBHIQII12x")

#: Identify endpoint (CNS 2), first 128 bytes of 4096: bdf char[16] | logical_address u32
#: (LOGICAL_ADDRESS feature value) | numa_node i32 | bar0_size u64 | serial char[32] |
#: model char[40] | rsvd to 128.
IDENTIFY_ENDPOINT = struct.Struct("<16sIiQ32s40s24x")

#: Health log (LID 2), 512 bytes: critical_warning u8 | rsvd u8 | temperature_k u16 |
#: temperature_threshold_k u16 | power_state u16 | then u64 counters: bytes_read, bytes_written,
#: read_commands, write_commands, power_cycles, power_on_seconds, unsafe_shutdowns, media_errors,
#: error_log_entries, controller_resets, device_resets, dma_errors, invalid_commands | rsvd.
HEALTH_LOG = struct.Struct("<BBHHH13Q" + "400x")
HEALTH_LOG_SIZE = 512
HEALTH_COUNTERS = (
    "bytes_read", "bytes_written", "read_commands", "write_commands", "power_cycles",
    "power_on_seconds", "unsafe_shutdowns", "media_errors", "error_log_entries",
    "controller_resets", "device_resets", "dma_errors", "invalid_commands",
)
CRITICAL_WARNING_TEMPERATURE = 0x02
CRITICAL_WARNING_DEGRADED = 0x04
CRITICAL_WARNING_FATAL = 0x08

#: Error log entry (LID 1), 64 bytes each, newest first: error_count u64 | sqid u16 | cid u16 |
#: status u16 (no phase) | opcode u8 | rsvd u8 | device_addr u64 | length u32 | rsvd to 64.
ERROR_LOG_ENTRY = struct.Struct("<QHHHBxQI36x")
ERROR_LOG_ENTRY_SIZE = 64
ERROR_LOG_ENTRIES = 64

#: Firmware log (LID 3), 512 bytes: active_slot u8 | rsvd 7 | slot 1..7 revision char[8] each | rsvd.
FIRMWARE_LOG = struct.Struct("<B7x8s8s8s8s8s8s8s" + "448x")
FIRMWARE_LOG_SIZE = 512


def c_string(raw: bytes) -> str:
    """Decode a NUL-padded ASCII field."""
    return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()


# Sanity: the formats are the sizes the docs promise (checked once at import, costs nothing later).
assert SQE.size == SQE_SIZE and CQE.size == CQE_SIZE and SGL_DESC.size == SGL_DESC_SIZE
assert CQE_BODY.size == CQE_STATUS_OFFSET and CTRL_HEADER.size == CTRL_HEADER_SIZE
assert IDENTIFY_CONTROLLER.size == 128 and IDENTIFY_ENDPOINT.size == 128
assert HEALTH_LOG.size == HEALTH_LOG_SIZE and ERROR_LOG_ENTRY.size == ERROR_LOG_ENTRY_SIZE
assert FIRMWARE_LOG.size == FIRMWARE_LOG_SIZE
