"""IO commands on device memory, SGLs, and isolation between connections."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import struct

import pytest
from conftest import BDF_A, MEM
from rawclient import CtrlError, RawClient

from accelctl.protocol import abi
from tests._wait import wait_until


def _io(c, op, dev, length, iova, **kw):
    lo, hi = abi.split_u64(dev)
    return c.io(1, op, dptr=iova, cdw10=lo, cdw11=hi, cdw12=length, **kw)


@pytest.fixture
def client(sock_a):
    with RawClient(sock_a) as c:
        c.enable()
        c.create_io_queue(1, 64)
        yield c


def test_write_read_fill_copy_compare(client):
    c = client
    buf, iova = c.alloc(64 << 10)
    pattern = bytes(range(256)) * 256
    buf.view[:] = pattern
    assert abi.status_ok(_io(c, abi.IoOpcode.WRITE, 0x10000, 65536, iova)["status"])
    buf.view[:] = b"\0" * 65536
    assert abi.status_ok(_io(c, abi.IoOpcode.READ, 0x10000, 65536, iova)["status"])
    assert bytes(buf.view) == pattern
    # fill then copy inside device memory
    assert abi.status_ok(_io(c, abi.IoOpcode.FILL, 0x40000, 4096, 0, cdw13=0xA5A5A5A5)["status"])
    cpl = c.io(1, abi.IoOpcode.COPY, cdw10=0x50000, cdw12=4096, cdw14=0x40000)
    assert abi.status_ok(cpl["status"])
    assert abi.status_ok(_io(c, abi.IoOpcode.READ, 0x50000, 4096, iova)["status"])
    assert bytes(buf.view[:4096]) == b"\xa5" * 4096
    # compare: equal, then one byte off at offset 100
    assert abi.status_ok(_io(c, abi.IoOpcode.COMPARE, 0x50000, 4096, iova)["status"])
    buf.view[100] = 0
    cpl = _io(c, abi.IoOpcode.COMPARE, 0x50000, 4096, iova)
    assert cpl["status"] == abi.STATUS_COMPARE_FAILURE and cpl["result"] == 100
    assert abi.status_ok(c.io(1, abi.IoOpcode.FLUSH)["status"])
    assert abi.status_ok(c.io(1, abi.IoOpcode.FENCE)["status"])


def test_scatter_gather(client):
    c = client
    data, data_iova = c.alloc(3 * 4096)
    table, table_iova = c.alloc(4096)
    # three 1000-byte pieces out of order in host memory -> one contiguous device range
    pieces = [(data_iova + 8192, b"C" * 1000), (data_iova, b"A" * 1000), (data_iova + 4096, b"B" * 1000)]
    for i, (addr, payload) in enumerate(pieces):
        off = addr - data_iova
        data.view[off : off + 1000] = payload
        abi.SGL_DESC.pack_into(table.view, i * 16, addr, 1000, abi.SGL_TYPE_DATA_BLOCK)
    cpl = c.io(1, abi.IoOpcode.WRITE, flags=abi.FLAGS_SGL, dptr=table_iova, dlen=3, cdw10=0x8000, cdw12=3000)
    assert abi.status_ok(cpl["status"])
    out, out_iova = c.alloc(4096)
    assert abi.status_ok(_io(c, abi.IoOpcode.READ, 0x8000, 3000, out_iova)["status"])
    assert bytes(out.view[:3000]) == b"C" * 1000 + b"A" * 1000 + b"B" * 1000
    # total length disagreeing with the descriptors
    bad = c.io(1, abi.IoOpcode.WRITE, flags=abi.FLAGS_SGL, dptr=table_iova, dlen=3, cdw10=0x8000, cdw12=2999)
    assert abi.status_sc(bad["status"]) == abi.GenericStatus.DATA_SGL_LENGTH_INVALID
    # a descriptor pointing outside the map
    abi.SGL_DESC.pack_into(table.view, 0, 0xDEAD0000, 1000, 0)
    bad = c.io(1, abi.IoOpcode.WRITE, flags=abi.FLAGS_SGL, dptr=table_iova, dlen=3, cdw10=0x8000, cdw12=3000)
    assert abi.status_sc(bad["status"]) == abi.GenericStatus.DATA_TRANSFER_ERROR


def test_device_address_out_of_range(client):
    buf, iova = client.alloc(4096)
    cpl = _io(client, abi.IoOpcode.WRITE, MEM - 100, 4096, iova)
    assert abi.status_sc(cpl["status"]) == abi.GenericStatus.DEVICE_ADDRESS_OUT_OF_RANGE and abi.status_dnr(cpl["status"])


def test_isolation_between_connections(sock_a):
    """B names A's IOVA: DATA_TRANSFER_ERROR, and neither A's host memory nor the device changes."""
    with RawClient(sock_a) as a, RawClient(sock_a) as b:
        a.enable()
        a.create_io_queue(1)
        b.enable()
        b.create_io_queue(1)
        a_buf, a_iova = a.alloc(4096)
        a_buf.view[:] = b"A" * 4096
        assert abi.status_ok(_io(a, abi.IoOpcode.WRITE, 0x1000, 4096, a_iova)["status"])
        # b maps nothing at a_iova: its own buffers start elsewhere only if we make them
        b.next_iova = 0x4000000
        b_buf, b_iova = b.alloc(4096)
        b_buf.view[:] = b"B" * 4096
        for op in (abi.IoOpcode.READ, abi.IoOpcode.WRITE, abi.IoOpcode.COMPARE):
            cpl = _io(b, op, 0x1000, 4096, a_iova)
            assert abi.status_sc(cpl["status"]) == abi.GenericStatus.DATA_TRANSFER_ERROR
            assert abi.status_dnr(cpl["status"])
        # a range starting inside b's map but running past its end is refused too
        cpl = _io(b, abi.IoOpcode.READ, 0x1000, 8192, b_iova)
        assert abi.status_sc(cpl["status"]) == abi.GenericStatus.DATA_TRANSFER_ERROR
        assert bytes(a_buf.view) == b"A" * 4096
        assert bytes(b_buf.view) == b"B" * 4096
        a_buf.view[:] = b"\0" * 4096
        assert abi.status_ok(_io(a, abi.IoOpcode.READ, 0x1000, 4096, a_iova)["status"])
        assert bytes(a_buf.view) == b"A" * 4096


def test_read_only_mapping_cannot_be_written_by_device(client):
    buf, iova = client.alloc(4096, flags=abi.DmaFlags.READ)
    buf.view[:4] = b"keep"
    cpl = _io(client, abi.IoOpcode.READ, 0, 4096, iova)
    assert abi.status_sc(cpl["status"]) == abi.GenericStatus.DATA_TRANSFER_ERROR
    assert bytes(buf.view[:4]) == b"keep"


def test_dma_map_checks(client):
    c = client
    # unsealed memfd: a truncate could SIGBUS the daemon, so it is refused
    fd = os.memfd_create("unsealed", os.MFD_CLOEXEC)
    os.ftruncate(fd, 4096)
    with pytest.raises(CtrlError) as e:
        c.request(abi.CtrlCmd.DMA_MAP, abi.CTRL_DMA_MAP.pack(0x900000, 4096, 0, 3), [fd])
    assert e.value.errno == errno.EPERM
    # misaligned, overlapping, beyond the file
    sealed = os.memfd_create("sealed", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(sealed, 8192)
    fcntl.fcntl(sealed, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    buf, iova = c.alloc(4096)
    for args, err in (((0x900100, 4096, 0, 3), errno.EINVAL), ((iova, 4096, 0, 3), errno.EEXIST),
                      ((0x900000, 16384, 0, 3), errno.EINVAL), ((0x900000, 4096, 0, 0), errno.EINVAL)):
        with pytest.raises(CtrlError) as e:
            c.request(abi.CtrlCmd.DMA_MAP, abi.CTRL_DMA_MAP.pack(*args), [sealed])
        assert e.value.errno == err, args
    os.close(fd)
    os.close(sealed)
    # a mapping holding a live queue ring cannot be unmapped; a plain one can, once
    ring_map = [m for m in c.introspect()["endpoints"][BDF_A]["sessions"][0]["dma_maps"] if m["queue_refs"]][0]
    with pytest.raises(CtrlError) as e:
        c.request(abi.CtrlCmd.DMA_UNMAP, abi.CTRL_DMA_UNMAP.pack(ring_map["iova"], ring_map["size"]))
    assert e.value.errno == errno.EBUSY
    c.request(abi.CtrlCmd.DMA_UNMAP, abi.CTRL_DMA_UNMAP.pack(iova, 4096))
    with pytest.raises(CtrlError) as e:
        c.request(abi.CtrlCmd.DMA_UNMAP, abi.CTRL_DMA_UNMAP.pack(iova, 4096))
    assert e.value.errno == errno.ENOENT
    cpl = _io(c, abi.IoOpcode.READ, 0, 4096, iova)  # unmapped now
    assert abi.status_sc(cpl["status"]) == abi.GenericStatus.DATA_TRANSFER_ERROR


def test_queue_errors(client):
    c = client
    cpl = c.admin(abi.AdminOpcode.CREATE_IO_SQ, dptr=0x10000, cdw10=abi.queue_cdw10(2, 16), cdw11=abi.create_sq_cdw11(9))
    assert abi.status_sct(cpl["status"]) == 1 and abi.status_sc(cpl["status"]) == abi.CommandSpecificStatus.INVALID_COMPLETION_QUEUE
    cpl = c.admin(abi.AdminOpcode.DELETE_IO_CQ, cdw10=1)  # SQ 1 still uses it
    assert abi.status_sc(cpl["status"]) == abi.CommandSpecificStatus.INVALID_QUEUE_DELETION
    assert abi.status_ok(c.admin(abi.AdminOpcode.DELETE_IO_SQ, cdw10=1)["status"])
    assert abi.status_ok(c.admin(abi.AdminOpcode.DELETE_IO_CQ, cdw10=1)["status"])
    s = c.introspect()["endpoints"][BDF_A]["sessions"][0]
    assert [q["qid"] for q in s["queues"]] == [0, 0]


def test_cq_flow_control_never_overflows(client):
    """A host that never reaps: the device stops fetching when the CQ is full."""
    c = client
    q = c.queues[1]
    for _ in range(40):
        c.submit(1, abi.IoOpcode.FLUSH, ring=False)
    c.ring(1)

    def ring_heads() -> tuple[int, int]:
        s = c.introspect()["endpoints"][BDF_A]["sessions"][0]
        cq = [x for x in s["queues"] if x["kind"] == "cq" and x["qid"] == 1][0]
        sq = [x for x in s["queues"] if x["kind"] == "sq" and x["qid"] == 1][0]
        return cq["tail"], sq["head"]

    # the device took the first 40 (so the SQ has room), then: 64-entry CQ, host head stays 0
    # -> at most 63 entries; submit 30 more to exceed
    assert wait_until(lambda: ring_heads() == (40, 40)), ring_heads()
    for _ in range(30):
        c.submit(1, abi.IoOpcode.FLUSH, ring=False)
    c.ring(1)
    # the device fills the CQ up to one short of the host's head, and stops fetching there
    assert wait_until(lambda: ring_heads() == (63, 63)), ring_heads()
    seen = [c.wait_cqe(1) for _ in range(63)]
    assert all(x is not None for x in seen)
    rest = [c.wait_cqe(1) for _ in range(7)]  # the device resumes once the head moves
    assert all(x is not None for x in rest)
    assert [x["cid"] for x in seen + rest] == list(range(64)) + list(range(6))
