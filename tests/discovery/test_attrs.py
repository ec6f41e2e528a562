"""sysfs attribute parsers, on the exact texts kernels of both eras write."""

import pytest

from accelctl.sysfs import attrs as A


@pytest.mark.parametrize(
    ("text", "gts"),
    [
        ("2.5 GT/s PCIe\n", 2.5),
        ("8.0 GT/s PCIe", 8.0),
        ("16.0 GT/s PCIe", 16.0),
        ("64.0 GT/s PCIe", 64.0),
        ("8 GT/s", 8.0),  # kernels up to ~5.6
        ("5 GT/s\n", 5.0),
        ("2.5 GT/s", 2.5),
        ("Unknown", None),
        ("Unknown speed", None),
        ("", None),
        ("\xff\xff", None),
    ],
)
def test_link_speed_dialects(text, gts):
    assert A.parse_link_speed(text) == gts


@pytest.mark.parametrize(
    ("text", "width"),
    [("16\n", 16), ("8", 8), ("1", 1), ("0", 0), ("63", None), ("255", None), ("x", None), ("3", None)],
)
def test_link_width(text, width):
    assert A.parse_link_width(text) == width


ENDPOINT_RESOURCE = "\n".join(
    ["0x00000000fb000000 0x00000000fbffffff 0x0000000000040200",
     "0x0000382000000000 0x000038201fffffff 0x000000000014220c",
     "0x0000000000000000 0x0000000000000000 0x0000000000000000",
     "0x0000000000003000 0x000000000000307f 0x0000000000040101"]
    + ["0x0000000000000000 0x0000000000000000 0x0000000000000000"] * 9
) + "\n"


def test_resource_endpoint_13_lines():
    table = A.parse_resource(ENDPOINT_RESOURCE)
    assert len(table) == 13
    bar0, bar1, bar2, bar3 = table[:4]
    assert bar0.size == 16 << 20 and not bar0.prefetchable and not bar0.is_64bit
    assert bar1.size == 512 << 20 and bar1.prefetchable and bar1.is_64bit
    assert bar2.size == 0
    assert bar3.is_io and bar3.size == 0x80
    # The JSON form (docs/json-schema.md), written out by hand from the table above.
    assert bar1.to_dict() == {"index": 1, "start": "0x382000000000", "size": 512 << 20,
                              "prefetchable": True, "is_64bit": True}
    assert bar2.to_dict()["size"] == 0 and bar0.to_dict()["prefetchable"] is False


def test_resource_bridge_17_lines_and_garbage():
    lines = ["0x0000000000000000 0x0000000000000000 0x0000000000000000"] * 13 + [
        "0x0000000000002000 0x0000000000002fff 0x0000000000000101",
        "0x00000000fa000000 0x00000000fbffffff 0x0000000000000200",
        "0x0000380000000000 0x00003fffffffffff 0x0000000000102201",
        "garbage line here",
    ]
    table = A.parse_resource("\n".join(lines))
    assert len(table) == 16  # the garbled line is skipped, not fatal
    assert table[14].size == 32 << 20
    assert table[15].index == 15 and table[15].prefetchable


NEW_AER = """RxErr 12
BadTLP 0
BadDLLP 3
Rollover 0
Timeout 0
NonFatalErr 0
CorrIntErr 0
HeaderOF 0
dev_cor_errs_bit[9] 4
TOTAL_ERR_COR 19
"""
OLD_AER = """Receiver Error 7
Bad TLP 0
Bad DLLP 0
RELAY_NUM Rollover 0
Replay Timer Timeout 2
Advisory Non-Fatal 0
Corrected Internal Error 0
Header Log Overflow 0
TOTAL_ERR_COR 9
"""


def test_aer_both_naming_eras():
    new = A.parse_aer_counters(NEW_AER)
    assert new["RxErr"] == 12 and new["dev_cor_errs_bit[9]"] == 4
    assert A.aer_total(new) == 19
    old = A.parse_aer_counters(OLD_AER)
    assert old["Receiver Error"] == 7 and old["Replay Timer Timeout"] == 2
    assert A.aer_total(old) == 9


def test_serial():
    assert A.parse_serial("00-11-22-33-44-55-66-77\n") == "00-11-22-33-44-55-66-77"
    assert A.parse_serial("AB-11-22-33-44-55-66-77") == "ab-11-22-33-44-55-66-77"
    assert A.parse_serial("0011223344556677") is None
    assert A.format_serial(0x0011223344556677) == "00-11-22-33-44-55-66-77"


def test_slot_address():
    assert A.parse_slot_address("0000:41:00\n") == (0, 0x41, 0)
    assert A.parse_slot_address("10000:e1") == (0x10000, 0xE1, None)
    assert A.parse_slot_address("zz") is None
