"""Logical addresses: the default physical order, the slot/serial orders, and determinism."""

from __future__ import annotations

import os

import pytest

from accelctl.addressing import AddressOrder, AddressOrderError, compute_addresses
from accelctl.topology import build_topology
from tests.addressing.conftest import build_tree, copy_in_other_order
from tests.addressing.specs import sn

#: (name, bdf, global id, serial) for the base spec, worked out by hand from tests/addressing/specs.py
EXPECTED_BASE = [
    ("card0.ep0", "0000:03:00.0", 0, sn(0x1000)),
    ("card0.ep1", "0000:04:00.0", 1, sn(0x1001)),
    ("card0.ep2", "0000:05:00.0", 2, sn(0x1002)),
    ("card0.ep3", "0000:06:00.0", 3, sn(0x1003)),
    ("card1.ep0", "0000:09:00.0", 4, sn(0x2000)),
    ("card2.ep0", "0000:0a:00.0", 5, sn(0x2100)),
    ("card3.ep0", "0000:0c:00.0", 6, sn(0x3000)),
    ("card3.ep1", "0000:0c:00.1", 7, sn(0x3001)),
    ("card4.ep0", "0000:81:00.0", 8, sn(0x500)),
    ("card5.ep0", "0001:01:00.0", 9, sn(0x6000)),
]


def rows(root) -> list[tuple[str, str, int, str | None]]:
    amap = compute_addresses(build_topology(root, names=False))
    return [(e.name, e.bdf, e.global_id, e.serial) for e in amap.endpoints]


def test_default_order_is_physical_position(trees):
    assert rows(trees["base"]) == EXPECTED_BASE


def test_card_rows_carry_identity_and_position(trees):
    amap = compute_addresses(build_topology(trees["base"], names=False))
    card0 = amap.cards[0]
    assert (card0.top, card0.slot, card0.position) == ("0000:01:00.0", "1", "0000:00/01.1/00.0")
    assert card0.endpoints == ("0000:03:00.0", "0000:04:00.0", "0000:05:00.0", "0000:06:00.0")
    assert card0.identity == f"serial:{sn(0x1000)}"
    assert [c.position for c in amap.cards] == [
        "0000:00/01.1/00.0",
        "0000:00/02.1/00.0/00.0/00.0",
        "0000:00/02.1/00.0/01.0/00.0",
        "0000:00/04.1/00.0",
        "0000:80/01.1/00.0",
        "0001:00/01.1/00.0",
    ]


def test_directory_listing_order_does_not_change_addresses(trees, tmpfs_dir):
    original, shuffled = tmpfs_dir / "sorted", tmpfs_dir / "shuffled"
    copy_in_other_order(trees["base"], original, seed=None)
    copy_in_other_order(trees["base"], shuffled, seed=7)
    # the two copies really are listed differently (else this test would prove nothing)
    for d in ("bus/pci/devices", "devices/pci0000:00", "devices/pci0000:00/0000:00:01.1/0000:01:00.0"):
        assert os.listdir(shuffled / d) != os.listdir(original / d), d
    assert rows(original) == EXPECTED_BASE
    assert rows(shuffled) == EXPECTED_BASE


def test_bus_renumbering_keeps_card_indices(trees):
    # A NIC behind a switch on 00:03.1 shifts mf's bus from 0c to 0f; no card index moves.
    expected = [
        (name, bdf.replace("0000:0c:", "0000:0f:"), gid, serial) for name, bdf, gid, serial in EXPECTED_BASE
    ]
    assert rows(trees["switched_nic"]) == expected


def test_inserted_card_takes_its_physical_place(trees):
    got = rows(trees["new_card"])
    # cards before 00:03.1 keep their addresses; the new card is card3; the later ones move up one
    assert got[:6] == EXPECTED_BASE[:6]
    assert got[6] == ("card3.ep0", "0000:0b:00.0", 6, sn(0x5000))
    assert got[7:] == [
        ("card4.ep0", "0000:0c:00.0", 7, sn(0x3000)),
        ("card4.ep1", "0000:0c:00.1", 8, sn(0x3001)),
        ("card5.ep0", "0000:81:00.0", 9, sn(0x500)),
        ("card6.ep0", "0001:01:00.0", 10, sn(0x6000)),
    ]


def test_order_by_slot(tmp_path):
    from tests.addressing import specs

    # drop the domain-1 card (it has no slot) so every card has one
    text = specs.spec().split('[[card]]\nname = "d1card"')[0]
    root = build_tree(text, tmp_path / "t")
    amap = compute_addresses(build_topology(root, names=False), AddressOrder.SLOT)
    # slots: big 1, mf 4, s1card 11, g0 21, g1 22
    assert [(c.name, c.slot, c.top) for c in amap.cards] == [
        ("card0", "1", "0000:01:00.0"),
        ("card1", "4", "0000:0c:00.0"),
        ("card2", "11", "0000:81:00.0"),
        ("card3", "21", "0000:09:00.0"),
        ("card4", "22", "0000:0a:00.0"),
    ]
    assert [(e.name, e.bdf, e.global_id) for e in amap.endpoints][4:7] == [
        ("card1.ep0", "0000:0c:00.0", 4),
        ("card1.ep1", "0000:0c:00.1", 5),
        ("card2.ep0", "0000:81:00.0", 6),
    ]


def test_order_by_slot_without_slots_is_an_error(trees):
    with pytest.raises(AddressOrderError) as err:
        compute_addresses(build_topology(trees["base"], names=False), "slot")
    assert err.value.missing == ["card5"]
    assert "slot" in str(err.value)


def test_order_by_serial(trees):
    amap = compute_addresses(build_topology(trees["base"], names=False), AddressOrder.SERIAL)
    assert [c.top for c in amap.cards] == [
        "0000:81:00.0",  # 0x500
        "0000:01:00.0",  # 0x1000 (its first endpoint's serial)
        "0000:09:00.0",  # 0x2000
        "0000:0a:00.0",  # 0x2100
        "0000:0c:00.0",  # 0x3000
        "0001:01:00.0",  # 0x6000
    ]
    assert [e.name for e in amap.endpoints][:2] == ["card0.ep0", "card1.ep0"]
    assert amap.endpoints[0].bdf == "0000:81:00.0"


def test_order_by_serial_without_serials_is_an_error(tmp_path):
    text = """
[[host_bridge]]
name = "s0"
[[root_port]]
name = "rp{i}"
parent = "s0"
at = "01.1"
count = 2
[[card]]
name = "a"
parent = "rp0"
id = "1002:74a1"
[[card]]
name = "b"
parent = "rp1"
id = "1002:74a1"
serial = 0x10
"""
    topo = build_topology(build_tree(text, tmp_path / "t"), names=False)
    with pytest.raises(AddressOrderError) as err:
        compute_addresses(topo, "serial")
    assert err.value.missing == ["card0"]
