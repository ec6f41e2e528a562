"""Config-space decoding on crafted bytes: good, truncated, looping, all ones, garbage."""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from accelctl.sysfs.config import decode_config


def _endpoint(size=4096, *, loop=False, ext_loop=False):
    """A PCIe endpoint: PM at 0x40 -> PCIe v2 at 0x50; DSN at 0x100 -> ACS at 0x140."""
    b = bytearray(size)
    struct.pack_into("<HH", b, 0, 0x1E52, 0x401E)
    struct.pack_into("<H", b, 0x06, 0x0010)  # status: capability list
    struct.pack_into("<I", b, 0x08, (0x120000 << 8) | 0x02)
    b[0x0E] = 0x80  # multifunction, type 0
    b[0x34] = 0x40
    b[0x40], b[0x41] = 0x01, 0x50  # PM -> PCIe
    b[0x50], b[0x51] = 0x10, 0x40 if loop else 0x00
    struct.pack_into("<H", b, 0x52, 0x0002)  # v2, endpoint
    struct.pack_into("<I", b, 0x54, 1 << 28)  # FLR
    struct.pack_into("<I", b, 0x5C, (16 << 4) | 4)  # LNKCAP: x16, 16 GT/s
    struct.pack_into("<H", b, 0x62, (8 << 4) | 3)  # LNKSTA: x8, 8 GT/s
    struct.pack_into("<I", b, 0x7C, 0b11110)  # LNKCAP2: 2.5..16 GT/s
    if size > 0x100:
        struct.pack_into("<I", b, 0x100, 0x0003 | (1 << 16) | (0x140 << 20))
        struct.pack_into("<II", b, 0x104, 0x44556677, 0x00112233)
        nxt = 0x100 if ext_loop else 0
        struct.pack_into("<I", b, 0x140, 0x000D | (1 << 16) | (nxt << 20))
        struct.pack_into("<HH", b, 0x144, 0x7F, 0x1D)
    return bytes(b)


def test_full_endpoint():
    cfg = decode_config(_endpoint())
    assert (cfg.vendor_id, cfg.device_id, cfg.class_code) == (0x1E52, 0x401E, 0x120000)
    assert cfg.multifunction and cfg.header_type == 0
    assert cfg.pcie.port_type == 0 and cfg.pcie.flr
    assert (cfg.pcie.max_speed_gts, cfg.pcie.max_width) == (16.0, 16)
    assert (cfg.pcie.speed_gts, cfg.pcie.width) == (8.0, 8)
    assert cfg.dsn == "00-11-22-33-44-55-66-77"
    assert cfg.acs_ctrl == 0x1D
    assert cfg.caps_complete and cfg.ext_caps_complete and not cfg.notes


def test_64_byte_read_keeps_header_loses_caps():
    cfg = decode_config(_endpoint()[:64])
    assert cfg.vendor_id == 0x1E52 and cfg.class_code == 0x120000
    assert cfg.pcie is None and cfg.dsn is None and not cfg.caps_complete
    assert any("64 bytes" in n for n in cfg.notes)


def test_all_ones_is_a_dead_device():
    cfg = decode_config(b"\xff" * 4096)
    assert cfg.all_ones and cfg.vendor_id is None and cfg.pcie is None


def test_looping_capability_lists_terminate_with_a_note():
    cfg = decode_config(_endpoint(loop=True))
    assert any("loops" in n for n in cfg.notes)
    cfg = decode_config(_endpoint(ext_loop=True))
    assert cfg.dsn == "00-11-22-33-44-55-66-77"
    assert any("loops" in n for n in cfg.notes)


def test_256_byte_config_has_no_extended_space():
    cfg = decode_config(_endpoint(256))
    assert cfg.pcie is not None and cfg.dsn is None and cfg.ext_caps_complete


def test_bridge_bus_numbers_and_windows():
    b = bytearray(256)
    struct.pack_into("<HH", b, 0, 0x1000, 0xC010)
    struct.pack_into("<I", b, 0x08, 0x060400 << 8)
    b[0x0E] = 0x01
    b[0x18:0x1B] = bytes([0x40, 0x41, 0x4F])
    struct.pack_into("<HH", b, 0x20, 0xFA00, 0xFBF0)
    struct.pack_into("<HH", b, 0x24, 0x0001, 0xFFF1)
    struct.pack_into("<II", b, 0x28, 0x3800, 0x3FFF)
    cfg = decode_config(bytes(b))
    assert (cfg.primary_bus, cfg.secondary_bus, cfg.subordinate_bus) == (0x40, 0x41, 0x4F)
    assert cfg.mem_window == (0xFA000000, 0xFBFFFFFF)
    assert cfg.pref_window == (0x380000000000, 0x3FFFFFFFFFFF)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=4096))
def test_garbage_never_raises(data):
    decode_config(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=256, max_size=4096), st.integers(0x40, 0xFF))
def test_garbage_with_cap_list_never_raises(data, ptr):
    b = bytearray(data)
    b[0:4] = b"\x34\x12\x78\x56"
    b[6] |= 0x10
    b[0x34] = ptr
    cfg = decode_config(bytes(b))
    assert len(cfg.cap_ids) <= 48


def test_find_capability_and_ext_capability():
    from accelctl.sysfs.config import find_capability, find_ext_capability

    data = _endpoint()
    assert find_capability(data, 0x01) == 0x40 and find_capability(data, 0x10) == 0x50
    assert find_capability(data, 0x11) is None
    assert find_ext_capability(data, 0x0003) == 0x100 and find_ext_capability(data, 0x000D) == 0x140
    assert find_ext_capability(data, 0x0001) is None
    assert find_capability(data[:64], 0x10) is None  # privilege-limited read
    # looping lists end (bounded), they do not hang
    assert find_capability(_endpoint(loop=True), 0x11) is None
    assert find_ext_capability(_endpoint(ext_loop=True), 0x0001) is None
