"""Switches as units, and accelerator endpoints grouped into physical cards.

A card is, in order of preference:
1. an **on-card switch** with the endpoints below it (the topmost on-card switch when they nest);
2. a **multi-function** accelerator device with no on-card switch (its functions share bus:device);
3. a lone accelerator endpoint.

A switch counts as on-card when everything below it belongs to accelerators of one vendor, none
of its downstream ports leads to a physical slot (external switches feed slots and cables), and
the switch carries the accelerator vendor's id as its vendor or subsystem vendor (cards with a
third-party switch on them, such as PLX bridges on dual-GPU boards, are branded that way). An
external switch that happens to have only accelerators below it (DGX-1 style) stays external:
each accelerator below it is its own card.

Card indices follow physical position: domain, then the device/function numbers on the path from
the root bus down; never directory order or bus numbers (which shift when cards are added).
"""

from __future__ import annotations

from accelctl.topology.model import Card, CardLayout, NodeKind, PciFunction, Switch
from accelctl.topology.walk import descendants

_SWITCH_PORTS = (NodeKind.SWITCH_UPSTREAM, NodeKind.SWITCH_DOWNSTREAM)


def position_key(fn_id: str, functions: dict[str, PciFunction]) -> tuple[int, ...]:
    """(domain, root bus, devfn, devfn, ...) from the root bus down to `fn_id`."""
    chain: list[int] = []
    node = functions.get(fn_id)
    root_bus = 0
    while node is not None:
        chain.append(node.bdf.devfn)
        root_bus = node.bdf.bus
        parent = functions.get(node.parent or "")
        if parent is None:
            break
        node = parent
    first = functions[fn_id]
    return (first.bdf.domain, root_bus, *reversed(chain))


def _switches(functions: dict[str, PciFunction], children: dict[str, list[str]]) -> dict[str, Switch]:
    out: dict[str, Switch] = {}
    for fn in functions.values():
        if fn.kind is NodeKind.SWITCH_UPSTREAM:
            downstream = [
                c for c in children.get(fn.id, []) if functions[c].kind is NodeKind.SWITCH_DOWNSTREAM
            ]
            out[fn.id] = Switch(upstream=fn.id, downstream=downstream, on_card=False)
    return out


def _is_on_card(
    switch: Switch, functions: dict[str, PciFunction], children: dict[str, list[str]]
) -> bool:
    up = functions[switch.upstream]
    below = [functions[c] for c in descendants(children, up.id) if c in functions]
    accel = [f for f in below if f.is_accelerator]
    if not accel:
        return False
    vendors = {f.vendor_id for f in accel}
    if len(vendors) != 1:
        return False
    vendor = vendors.pop()
    accel_devices = {(f.bdf.domain, f.bdf.bus, f.bdf.device) for f in accel}
    for f in below:
        if f.kind in _SWITCH_PORTS or f.is_accelerator:
            continue
        # Non-accelerator functions of an accelerator device (audio, management) are on the card.
        if (f.bdf.domain, f.bdf.bus, f.bdf.device) not in accel_devices:
            return False
    for dp_id in switch.downstream:
        dp = functions[dp_id]
        if dp.slot is not None or dp.hotplug_capable:
            return False
        if any(functions[c].slot is not None for c in children.get(dp_id, []) if c in functions):
            return False
    return vendor in (up.vendor_id, up.subsystem_vendor_id)


def group_cards(
    functions: dict[str, PciFunction], children: dict[str, list[str]]
) -> tuple[list[Switch], list[Card]]:
    """Find switches and cards; sets `card` on every function of a card. Deterministic."""
    switches = _switches(functions, children)
    for sw in switches.values():
        sw.on_card = _is_on_card(sw, functions, children)

    def card_top(fn: PciFunction) -> str | None:
        """The topmost upstream port of an unbroken chain of on-card switches above `fn`."""
        top = None
        node = functions.get(fn.parent or "")
        while node is not None and node.kind in _SWITCH_PORTS:
            up = node if node.kind is NodeKind.SWITCH_UPSTREAM else functions.get(node.parent or "")
            if up is None or up.id not in switches or not switches[up.id].on_card:
                break
            top = up.id
            node = functions.get(up.parent or "")
        return top

    groups: dict[tuple[str, str], list[PciFunction]] = {}
    for fn in sorted(functions.values(), key=lambda f: f.bdf):
        if not fn.is_accelerator or fn.kind is NodeKind.VIRTUAL_FUNCTION:
            continue
        top = card_top(fn)
        if top is not None:
            groups.setdefault(("switch", top), []).append(fn)
        else:
            key = f"{fn.bdf.domain:04x}:{fn.bdf.bus:02x}:{fn.bdf.device:02x}"
            groups.setdefault(("device", key), []).append(fn)

    # Indexes built once, so grouping stays linear in the number of functions.
    by_device: dict[tuple[int, int, int], list[str]] = {}
    vfs_of: dict[str, list[str]] = {}
    for f in functions.values():
        by_device.setdefault((f.bdf.domain, f.bdf.bus, f.bdf.device), []).append(f.id)
        if f.physfn is not None:
            vfs_of.setdefault(f.physfn, []).append(f.id)

    drafts = []
    for (how, key), endpoints in groups.items():
        endpoints.sort(key=lambda f: position_key(f.id, functions))
        if how == "switch":
            layout, top_id = CardLayout.SWITCH, key
            members = [key, *descendants(children, key)]
        else:
            layout = CardLayout.MULTIFUNCTION if len(endpoints) > 1 else CardLayout.SINGLE
            top_id = endpoints[0].id
            first = endpoints[0].bdf
            # A multi-function card owns every function of its device (audio, management) and
            # their VFs; a lone endpoint owns itself and its VFs.
            own = by_device[(first.domain, first.bus, first.device)] if layout is CardLayout.MULTIFUNCTION else [top_id]
            members = [*own, *(vf for e in endpoints for vf in vfs_of.get(e.id, ()))]
        drafts.append((position_key(top_id, functions), layout, top_id, endpoints, members))

    cards: list[Card] = []
    for index, (pos, layout, top_id, endpoints, members) in enumerate(sorted(drafts, key=lambda d: d[0])):
        top = functions[top_id]
        first = endpoints[0]
        port = functions.get(top.parent or "")
        serial = top.serial or first.serial
        card = Card(
            index=index,
            layout=layout,
            endpoints=[e.id for e in endpoints],
            functions=sorted(set(members), key=lambda i: functions[i].bdf),
            top=top_id,
            port=port.id if port else None,
            switch=top_id if layout is CardLayout.SWITCH else None,
            slot=top.slot or (port.slot if port else None),
            serial=serial,
            vendor_id=first.vendor_id,
            device_id=first.device_id,
            model=first.model,
            numa_node=first.numa_node,
            position=pos,
        )
        cards.append(card)
        for member in card.functions:
            functions[member].card = index
    for sw in switches.values():
        sw.card = functions[sw.upstream].card if sw.on_card else None
    ordered = sorted(switches.values(), key=lambda s: functions[s.upstream].bdf)
    return ordered, cards
