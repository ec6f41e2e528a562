"""Control path ("ioctls") and admin commands against a real daemon."""

from __future__ import annotations

import errno
import json

import pytest
from conftest import BDF_A, MEM, make_daemon
from rawclient import CtrlError, RawClient

from accelctl.protocol import abi


def test_version_and_info(sock_a):
    with RawClient(sock_a) as c:
        caps = c.json(abi.CtrlCmd.VERSION, {"abi": [1, 0]})
        assert caps["abi"][0] == 1 and caps["doorbell_stride"] == abi.DOORBELL_STRIDE
        assert caps["memory_size"] == MEM
        info = c.json(abi.CtrlCmd.GET_INFO)
        assert info["bdf"] == BDF_A and info["serial"] == "aa-bb-cc-dd-ee-ff-00-01"
        assert info["logical_address"] is None and info["stale"] is False
        with pytest.raises(CtrlError) as e:
            c.json(abi.CtrlCmd.VERSION, {"abi": [2, 0]})
        assert e.value.errno == errno.EPROTO


def test_registers_and_enable(sock_a):
    with RawClient(sock_a) as c:
        cap = c.reg_read(abi.Reg.CAP)
        assert abi.cap_doorbell_stride(cap) == abi.DOORBELL_STRIDE and abi.cap_max_entries(cap) == 4096
        assert c.reg_read(abi.Reg.VS) == abi.VS_1_0
        assert c.reg_read(abi.Reg.CSTS) == 0
        with pytest.raises(CtrlError) as e:
            c.reg_write(abi.Reg.CSTS, 1)
        assert e.value.errno == errno.EPERM
        with pytest.raises(CtrlError) as e:  # enable without mapped admin queues
            c.reg_write(abi.Reg.AQA, abi.make_aqa(8, 8))
            c.reg_write(abi.Reg.CC, abi.CC_EN)
        assert e.value.errno == errno.EFAULT
        c.enable()
        assert c.db[abi.STATUS_CSTS_INDEX] & abi.CSTS_RDY  # the mirror in the doorbell page
        c.reg_write(abi.Reg.CC, 0)
        assert c.reg_read(abi.Reg.CSTS) & abi.CSTS_RDY == 0


def test_unknown_command_gets_enotty_and_connection_survives(sock_a):
    with RawClient(sock_a) as c:
        with pytest.raises(CtrlError) as e:
            c.request(999)
        assert e.value.errno == errno.ENOTTY
        assert c.json(abi.CtrlCmd.GET_INFO)["bdf"] == BDF_A


def test_identify_logs_features(sock_a):
    with RawClient(sock_a) as c:
        c.enable()
        buf, iova = c.alloc(8192)
        assert abi.status_ok(c.admin(abi.AdminOpcode.IDENTIFY, dptr=iova, cdw10=abi.IdentifyCns.CONTROLLER)["status"])
        ident = abi.IDENTIFY_CONTROLLER.unpack_from(buf.view)
        assert abi.c_string(ident[2]) == "aa-bb-cc-dd-ee-ff-00-01" and abi.c_string(ident[3]) == "sim-x1"
        assert ident[12] == MEM
        assert abi.status_ok(c.admin(abi.AdminOpcode.IDENTIFY, dptr=iova, cdw10=abi.IdentifyCns.ENDPOINT)["status"])
        assert abi.c_string(abi.IDENTIFY_ENDPOINT.unpack_from(buf.view)[0]) == BDF_A
        bad = c.admin(abi.AdminOpcode.IDENTIFY, dptr=iova, cdw10=0x77)
        assert abi.status_sc(bad["status"]) == abi.GenericStatus.INVALID_FIELD and abi.status_dnr(bad["status"])

        cpl = c.admin(abi.AdminOpcode.GET_LOG_PAGE, dptr=iova, cdw10=abi.LogPage.HEALTH, cdw12=abi.HEALTH_LOG_SIZE)
        assert abi.status_ok(cpl["status"])
        health = abi.HEALTH_LOG.unpack_from(buf.view)
        assert 273 < health[2] < 400  # Kelvin
        # an invalid command lands in the error log
        c.admin(0x7E)
        cpl = c.admin(abi.AdminOpcode.GET_LOG_PAGE, dptr=iova, cdw10=abi.LogPage.ERROR, cdw12=64)
        entry = abi.ERROR_LOG_ENTRY.unpack_from(buf.view)
        assert entry[0] == 2 and entry[4] == 0x7E  # newest first: count, sqid, cid, status, opcode
        cpl = c.admin(abi.AdminOpcode.GET_LOG_PAGE, dptr=iova, cdw10=abi.LogPage.FIRMWARE, cdw12=512)
        assert abi.c_string(abi.FIRMWARE_LOG.unpack_from(buf.view)[1]) == "SIM1.0"
        assert abi.status_sct(c.admin(abi.AdminOpcode.GET_LOG_PAGE, dptr=iova, cdw10=0x55)["status"]) == 1

        la = abi.pack_logical_address(2, 1, 17)
        assert c.admin(abi.AdminOpcode.GET_FEATURES, cdw10=abi.Feature.LOGICAL_ADDRESS)["result"] == 0
        assert abi.status_ok(c.admin(abi.AdminOpcode.SET_FEATURES, cdw10=abi.Feature.LOGICAL_ADDRESS, cdw11=la)["status"])
        got = c.admin(abi.AdminOpcode.GET_FEATURES, cdw10=abi.Feature.LOGICAL_ADDRESS)["result"]
        assert abi.unpack_logical_address(got) == (2, 1, 17)
        assert c.json(abi.CtrlCmd.GET_INFO)["logical_address"] == {"card": 2, "endpoint": 1, "global_id": 17}
        ka = c.admin(abi.AdminOpcode.KEEP_ALIVE)
        assert abi.status_ok(ka["status"])


def test_logical_address_and_memory_survive_daemon_restart(short_dir):
    d = make_daemon(short_dir)
    try:
        with RawClient(str(d.endpoints[BDF_A].socket_path)) as c:
            c.enable()
            c.create_io_queue(1)
            buf, iova = c.alloc(4096)
            buf.view[:11] = b"persistent!"
            assert abi.status_ok(c.io(1, abi.IoOpcode.WRITE, dptr=iova, cdw10=0x2000, cdw12=4096)["status"])
            c.admin(abi.AdminOpcode.SET_FEATURES, cdw10=abi.Feature.LOGICAL_ADDRESS, cdw11=abi.pack_logical_address(0, 0, 5))
    finally:
        d.stop()
    d = make_daemon(short_dir)
    try:
        with RawClient(str(d.endpoints[BDF_A].socket_path)) as c:
            c.enable()
            c.create_io_queue(1)
            buf, iova = c.alloc(4096)
            assert abi.status_ok(c.io(1, abi.IoOpcode.READ, dptr=iova, cdw10=0x2000, cdw12=4096)["status"])
            assert bytes(buf.view[:11]) == b"persistent!"
            la = c.admin(abi.AdminOpcode.GET_FEATURES, cdw10=abi.Feature.LOGICAL_ADDRESS)["result"]
            assert abi.unpack_logical_address(la) == (0, 0, 5)
    finally:
        d.stop()


def test_passthru_executes_without_rings(sock_a):
    with RawClient(sock_a) as c:
        buf, iova = c.alloc(4096)
        buf.view[:4] = b"ioct"
        sqe = abi.SQE.pack(abi.IoOpcode.WRITE, 0, 0x1234, 0, 0, 0, 0, iova, 4096, 0x3000, 0, 4096, 0, 0, 0)
        body, _ = c.request(abi.CtrlCmd.PASSTHRU, abi.CTRL_PASSTHRU.pack(1) + sqe)
        r0, r1, sqhd, sqid, cid, status = abi.CQE.unpack(body)
        assert cid == 0x1234 and abi.status_ok(status) and status & 1
        buf.view[:4] = b"...."
        sqe = abi.SQE.pack(abi.IoOpcode.READ, 0, 7, 0, 0, 0, 0, iova, 4096, 0x3000, 0, 4096, 0, 0, 0)
        body, _ = c.request(abi.CtrlCmd.PASSTHRU, abi.CTRL_PASSTHRU.pack(1) + sqe)
        assert abi.status_ok(abi.CQE.unpack(body)[5]) and bytes(buf.view[:4]) == b"ioct"


def test_introspect_and_stats(sock_a, daemon):
    with RawClient(sock_a) as c:
        c.enable()
        c.create_io_queue(1)
        view = c.introspect()["endpoints"][BDF_A]["sessions"]
        assert len(view) == 1
        s = view[0]
        assert {q["qid"] for q in s["queues"]} == {0, 1} and len(s["dma_maps"]) == 2
        assert s["kicks"] == [0, 1] and s["irqs"] == [0, 1]
        stats = json.loads(c.request(abi.CtrlCmd.STATS)[0])
        assert stats["bdf"] == BDF_A and stats["sessions"] == 1
