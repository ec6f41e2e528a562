"""The resolver: every name form, ambiguity, not found, malformed; and ACCELCTL_VISIBLE_DEVICES."""

from __future__ import annotations

import pytest

from accelctl.addressing import (
    Resolver,
    ResolvedKind,
    compute_addresses,
    parse_visible_devices,
    resolve,
    resolve_endpoint,
)
from accelctl.errors import AmbiguousAddressError, DeviceNotFoundError, InvalidAddressError
from accelctl.topology import build_topology
from tests.addressing.specs import sn


@pytest.fixture(scope="module")
def topo(trees):
    return build_topology(trees["base"], names=False)


@pytest.mark.parametrize(
    ("name", "kind", "bdfs"),
    [
        ("0000:05:00.0", ResolvedKind.ENDPOINT, ["0000:05:00.0"]),
        ("0000:05:00.0 ", ResolvedKind.ENDPOINT, ["0000:05:00.0"]),
        ("05:00.0", ResolvedKind.ENDPOINT, ["0000:05:00.0"]),
        ("81:00.0", ResolvedKind.ENDPOINT, ["0000:81:00.0"]),
        ("0000:0C:00.1", ResolvedKind.ENDPOINT, ["0000:0c:00.1"]),
        ("card0", ResolvedKind.CARD, ["0000:03:00.0", "0000:04:00.0", "0000:05:00.0", "0000:06:00.0"]),
        ("CARD3", ResolvedKind.CARD, ["0000:0c:00.0", "0000:0c:00.1"]),
        ("card3.ep1", ResolvedKind.ENDPOINT, ["0000:0c:00.1"]),
        ("card0.ep2", ResolvedKind.ENDPOINT, ["0000:05:00.0"]),
        ("0", ResolvedKind.ENDPOINT, ["0000:03:00.0"]),
        ("8", ResolvedKind.ENDPOINT, ["0000:81:00.0"]),
        ("gid9", ResolvedKind.ENDPOINT, ["0001:01:00.0"]),
        (sn(0x2100), ResolvedKind.ENDPOINT, ["0000:0a:00.0"]),
        (sn(0x1003).upper(), ResolvedKind.ENDPOINT, ["0000:06:00.0"]),
        ("0000:02:01.0", ResolvedKind.FUNCTION, ["0000:02:01.0"]),  # a switch port of card0
        ("0000:82:00.1", ResolvedKind.FUNCTION, ["0000:82:00.1"]),  # the NIC
    ],
)
def test_every_form_resolves(topo, name, kind, bdfs):
    r = resolve(topo, name)
    assert r.kind is kind
    assert r.bdfs == bdfs


def test_card_resolution_names_the_card(topo):
    r = resolve(topo, "card0.ep2")
    assert r.card is not None and r.card.top == "0000:01:00.0"
    assert r.endpoints[0].name == "card0.ep2" and r.endpoints[0].global_id == 2
    port = resolve(topo, "0000:02:01.0")
    assert port.card is not None and port.card.index == 0 and port.endpoints == []


def test_short_bdf_in_two_domains_is_ambiguous(topo):
    with pytest.raises(AmbiguousAddressError) as err:
        resolve(topo, "01:00.0")
    assert err.value.candidates == ["0000:01:00.0", "0001:01:00.0"]


def test_shared_serial_is_ambiguous(topo):
    with pytest.raises(AmbiguousAddressError) as err:
        resolve(topo, sn(0x7000))
    assert err.value.candidates == ["0000:82:00.0", "0000:82:00.1"]


def test_endpoint_needs_one_endpoint(topo):
    assert resolve_endpoint(topo, "card4").id == "0000:81:00.0"  # a one-endpoint card is fine
    with pytest.raises(AmbiguousAddressError) as err:
        resolve_endpoint(topo, "card3")
    assert err.value.candidates == ["card3.ep0 (0000:0c:00.0)", "card3.ep1 (0000:0c:00.1)"]
    with pytest.raises(DeviceNotFoundError, match="switch_downstream, not an accelerator endpoint"):
        resolve_endpoint(topo, "0000:02:01.0")


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("card6", "there are 6 cards"),
        ("card0.ep4", "card0 has 4 endpoints"),
        ("10", "global ids run 0..9"),
        ("0000:0d:00.0", "no PCI function 0000:0d:00.0"),
        ("0002:03:00.0", "no PCI function"),
        ("7f:00.0", "in any domain"),
        (sn(0x9999), "no device reports that serial"),
    ],
)
def test_not_found(topo, name, detail):
    with pytest.raises(DeviceNotFoundError, match=detail):
        resolve(topo, name)


@pytest.mark.parametrize(
    "name", ["", "  ", "card", "card1.", "card1.ep", "cardx", "ep1", "0000:00:20.0", "00:1.0", "12-34", "-1", "gid", "1e3"]
)
def test_malformed(topo, name):
    with pytest.raises(InvalidAddressError):
        resolve(topo, name)


# --- ACCELCTL_VISIBLE_DEVICES ---------------------------------------------------------------


def visible(topo, value):
    return parse_visible_devices(topo, value, compute_addresses(topo))


def test_visible_mixed_entries_in_global_order_without_renumbering(topo):
    v = visible(topo, f"card3.ep1, 8,0000:05:00.0,{sn(0x2000)},card5")
    assert [(e.name, e.global_id) for e in v.endpoints] == [
        ("card0.ep2", 2),
        ("card1.ep0", 4),
        ("card3.ep1", 7),
        ("card4.ep0", 8),
        ("card5.ep0", 9),
    ]


def test_visible_empty_means_none(topo):
    assert visible(topo, "").endpoints == ()


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        ("0,,1", InvalidAddressError, "entry 2 of ACCELCTL_VISIBLE_DEVICES is empty"),
        ("0,card9", DeviceNotFoundError, "ACCELCTL_VISIBLE_DEVICES: no device matches 'card9'"),
        ("bogus", InvalidAddressError, "bogus"),
        ("01:00.0", AmbiguousAddressError, "ACCELCTL_VISIBLE_DEVICES"),
        ("0000:82:00.0", InvalidAddressError, "not an accelerator endpoint or card"),
    ],
)
def test_visible_bad_entries_are_errors(topo, value, error, text):
    with pytest.raises(error, match=text):
        visible(topo, value)


def test_resolver_honours_visible_env(topo):
    env = {"ACCELCTL_VISIBLE_DEVICES": "card3.ep1,4"}
    r = Resolver(topo, env=env)
    assert r.resolve("card3.ep1").bdfs == ["0000:0c:00.1"]
    assert r.resolve("4").bdfs == ["0000:09:00.0"]  # machine-wide ids, not renumbered
    assert r.resolve("card3").bdfs == ["0000:0c:00.1"]  # a partly visible card shows its visible part
    with pytest.raises(DeviceNotFoundError, match="not visible"):
        r.resolve("card3.ep0")
    with pytest.raises(DeviceNotFoundError, match="not visible"):
        r.resolve("0")
    # non-accelerator functions are not restricted by the variable
    assert r.resolve("0000:82:00.0").kind is ResolvedKind.FUNCTION


def test_resolver_reads_os_environ(topo, monkeypatch):
    monkeypatch.setenv("ACCELCTL_VISIBLE_DEVICES", "0000:81:00.0")
    with pytest.raises(DeviceNotFoundError, match="not visible"):
        resolve(topo, "card0.ep0")
    assert resolve(topo, "card4.ep0").bdfs == ["0000:81:00.0"]
    assert resolve(topo, "card0.ep0", visible=None).bdfs == ["0000:03:00.0"]


def test_resolver_in_serial_order_reads_visible_in_position_order(topo):
    # serial order puts 0000:81:00.0 (serial 0x500) first: card0 there is position's card4
    amap = compute_addresses(topo, "serial")
    r = Resolver(topo, addresses=amap, env={"ACCELCTL_VISIBLE_DEVICES": "card4"})
    assert r.resolve("card0").bdfs == ["0000:81:00.0"]
    with pytest.raises(DeviceNotFoundError, match="not visible"):
        r.resolve("card1")  # serial order's card1 is 0000:01:00.0's card (position card0)
