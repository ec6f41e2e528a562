"""The bus/MMIO planner: allocate bus numbers and BAR windows the way firmware does, for the
machine as it is or with cards added, say whether it fits and where it runs out, and explain
``BUS_NUMBERS_EXHAUSTED`` / ``BAR_UNASSIGNED`` findings.

    result = plan(topo, additions=[parse_addition("port=0000:40:01.1,endpoints=4,bar=64G")])
    result.fits, result.issues              # where it runs out: which root/bridge, which resource
    check_against_topology(topo)            # [] when the machine was numbered the firmware way
    explain_bus_exhaustion(topo, "0000:02:01.0")
    explain_bar_unassigned(topo, "0000:41:00.0")

The rules are in plan_buses (bus numbers) and plan_mmio (windows, BARs); docs/addressing.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelctl.addressing.plan_buses import buses_needed, number_buses
from accelctl.addressing.plan_mmio import Apertures, assign_mmio, format_size, window_need
from accelctl.addressing.plan_model import BarNeed, PlanFunction, PlanIssue, PlanRoot
from accelctl.errors import AccelError
from accelctl.topology.model import NodeKind
from accelctl.topology.walk import depth_first

if TYPE_CHECKING:
    from accelctl.topology import PciFunction, Topology

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class PlanInputError(AccelError, ValueError):
    """An --add specification cannot be planned (bad syntax, unknown or occupied port)."""

    def __init__(self, spec: str, problem: str) -> None:
        self.spec = spec
        super().__init__(
            f"cannot plan {spec!r}: {problem}",
            hint="write --add \"port=<BDF of an empty root/downstream port>,endpoints=N,bar=64G[,bar32=512K]"
            "[,layout=switch|single|multifunction]\"",
        )


# --- additions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Addition:
    """A card to add below an empty downstream-facing port."""

    text: str
    port: str
    endpoints: int = 1
    bar: int = 16 << 30
    bar32: int = 512 << 10
    layout: str = "single"


def parse_addition(text: str) -> Addition:
    """``port=0000:40:01.1,endpoints=4,bar=64G[,bar32=512K][,layout=switch]``.

    ``layout`` defaults to ``switch`` (an on-card switch, one downstream port per endpoint) when
    there are several endpoints, ``single`` otherwise. Every endpoint gets ``bar`` as a 64-bit
    prefetchable BAR 0 and ``bar32`` as a 32-bit BAR 5 (0 for none).

    Raises:
        PlanInputError: unknown key, bad number or size, missing port.
    """
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key or not value:
            raise PlanInputError(text, f"{part.strip()!r} is not key=value")
        if key not in ("port", "endpoints", "bar", "bar32", "layout"):
            raise PlanInputError(text, f"unknown key {key!r} (port, endpoints, bar, bar32, layout)")
        fields[key] = value
    if "port" not in fields:
        raise PlanInputError(text, "port= is required")
    try:
        endpoints = int(fields.get("endpoints", "1"))
    except ValueError:
        raise PlanInputError(text, f"endpoints={fields['endpoints']!r} is not a number") from None
    if not 1 <= endpoints <= 32:
        raise PlanInputError(text, "endpoints must be 1..32")
    layout = fields.get("layout", "switch" if endpoints > 1 else "single")
    if layout not in ("switch", "single", "multifunction"):
        raise PlanInputError(text, f"layout={layout!r} is not switch, single or multifunction")
    if layout == "single" and endpoints != 1:
        raise PlanInputError(text, "layout=single has one endpoint")
    if layout == "multifunction" and endpoints > 8:
        raise PlanInputError(text, "a multi-function device has at most 8 functions")
    bar = _parse_size(text, fields.get("bar", "16G"), allow_zero=False)
    bar32 = _parse_size(text, fields.get("bar32", "512K"), allow_zero=True)
    if bar32 > 1 << 31:
        raise PlanInputError(text, "bar32 above 2 GiB cannot be a 32-bit BAR")
    return Addition(text, fields["port"], endpoints, bar, bar32, layout)


def _parse_size(text: str, value: str, *, allow_zero: bool) -> int:
    v = value.strip().upper().removesuffix("IB").removesuffix("B")
    unit = v[-1] if v and v[-1] in _SIZE_UNITS else ""
    digits = v[: len(v) - len(unit)]
    if not digits.isdigit():
        raise PlanInputError(text, f"size {value!r} is not like 64G, 2M or 512K")
    n = int(digits) * _SIZE_UNITS[unit]
    if n == 0 and allow_zero:
        return 0
    if n < 16 or n & (n - 1):
        raise PlanInputError(text, f"BAR size {value!r} must be a power of two of at least 16 bytes")
    return n


def _addition_tree(add: Addition, tag: str) -> PlanFunction:
    def endpoint(fid: str, devfn: int) -> PlanFunction:
        bars = [BarNeed(fid, 0, add.bar, add.bar, True)]
        if add.bar32:
            bars.append(BarNeed(fid, 5, add.bar32, add.bar32, False))
        return PlanFunction(fid, devfn, False, bars, added=True)

    if add.layout == "switch":
        top = PlanFunction(f"{tag}.usp", 0, True, added=True)
        for i in range(add.endpoints):
            dsp = PlanFunction(f"{tag}.dp{i}", i << 3, True, added=True)
            dsp.children.append(endpoint(f"{tag}.ep{i}", 0))
            top.children.append(dsp)
        return top
    if add.layout == "multifunction":
        # a multi-function device has no single top: wrap in a marker holding the functions
        return PlanFunction(tag, 0, False, children=[endpoint(f"{tag}.ep{i}", i) for i in range(add.endpoints)],
                            added=True)
    return endpoint(f"{tag}.ep0", 0)


# --- topology -> plan tree ---------------------------------------------------------------------


@dataclass(slots=True)
class _Tree:
    roots: list[PlanRoot]
    by_id: dict[str, PlanFunction]
    #: function id -> why its memory needs are not fully known (VF BAR sizes of disabled VFs)
    unknown: dict[str, str] = field(default_factory=dict)
    #: PF id -> its VFs, built once (a per-function scan of siblings is quadratic on SR-IOV buses)
    vfs_of: dict[str, list[PciFunction]] = field(default_factory=dict)


def _tree_from_topology(topo: Topology) -> _Tree:
    hosts = sorted(topo.host_bridges.values(), key=lambda h: (h.domain, h.bus))
    tree = _Tree([], {})
    for f in topo.functions.values():
        if f.physfn is not None:
            tree.vfs_of.setdefault(f.physfn, []).append(f)
    for i, hb in enumerate(hosts):
        later = [h.bus for h in hosts[i + 1:] if h.domain == hb.domain]
        limit = (min(later) - 1) if later else 0xFF
        root = PlanRoot(hb.id, hb.domain, hb.bus, limit)
        root.functions = [
            _plan_function(topo, topo.functions[c], tree)
            for c in topo.children.get(hb.id, [])
            if c in topo.functions and topo.functions[c].kind is not NodeKind.VIRTUAL_FUNCTION
        ]
        tree.roots.append(root)
    return tree


def _plan_function(topo: Topology, fn: PciFunction, tree: _Tree) -> PlanFunction:
    pf = PlanFunction(fn.id, fn.bdf.devfn, fn.is_bridge, hotplug_capable=bool(fn.hotplug_capable))
    # I/O BARs live in I/O space: they never take room in a memory window.
    pf.bars = [BarNeed(fn.id, b.index, b.size, b.size, b.prefetchable and b.is_64bit)
               for b in fn.bars if b.size and not b.is_io]
    vfs = tree.vfs_of.get(fn.id, [])
    total = fn.sriov_total_vfs or 0
    if total and vfs:
        for b in vfs[0].bars:
            if b.size and not b.is_io:
                pf.bars.append(BarNeed(fn.id, 7 + b.index, b.size * total, b.size, b.prefetchable and b.is_64bit))
    elif total:
        tree.unknown[fn.id] = f"{total} VFs possible but none enabled: VF BAR sizes unknown"
    for c in topo.children.get(fn.id, []):
        child = topo.functions.get(c)
        if child is not None and child.kind is not NodeKind.VIRTUAL_FUNCTION:
            pf.children.append(_plan_function(topo, child, tree))
    if fn.is_bridge:
        sec, sub = fn.secondary_bus, fn.subordinate_bus
        pf.hot_added = sec == 0 and not sub
        if sec and sub is not None:
            below = max((b.subordinate_bus or 0 for b in _bridges_below(topo, fn.id)), default=sec)
            # a subordinate beyond the last bus used below is a hot-plug reserve: keep it
            pf.bus_reserve = sub - sec if sub > below else 0
    tree.by_id[fn.id] = pf
    return pf


def _bridges_below(topo: Topology, fn_id: str) -> list[PciFunction]:
    out = []
    for c in topo.children.get(fn_id, []):
        f = topo.functions.get(c)
        if f is not None and f.is_bridge:
            out.append(f)
    return out


# --- planning ----------------------------------------------------------------------------------


@dataclass(slots=True)
class AdditionResult:
    addition: Addition
    port: str
    #: buses the card gets when firmware renumbers at boot: (first, last)
    boot_buses: tuple[int, int] | None
    #: can it be hot-added now, inside the port's current bus range and windows?
    hot_add_fits: bool
    hot_add_issues: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.addition.text,
            "port": self.port,
            "endpoints": self.addition.endpoints,
            "layout": self.addition.layout,
            "boot_buses": None if self.boot_buses is None else [f"{b:02x}" for b in self.boot_buses],
            "hot_add_fits": self.hot_add_fits,
            "hot_add_issues": list(self.hot_add_issues),
        }


@dataclass(slots=True)
class PlanResult:
    roots: list[PlanRoot]
    issues: list[PlanIssue]
    additions: list[AdditionResult]
    unknown: dict[str, str]
    apertures: Apertures

    @property
    def fits(self) -> bool:
        """True when bus numbers and MMIO suffice at boot."""
        return not self.issues

    def bridges(self) -> list[PlanFunction]:
        out: list[PlanFunction] = []
        for root in self.roots:
            for f in root.functions:
                out.extend(f.bridges())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "above_4g": self.apertures.above_4g,
            "issues": [i.to_dict() for i in self.issues],
            "additions": [a.to_dict() for a in self.additions],
            "roots": [
                {
                    "id": r.id,
                    "bus": f"{r.bus:02x}",
                    "bus_limit": f"{r.bus_limit:02x}",
                    "last_bus": None if r.last_bus is None else f"{r.last_bus:02x}",
                    "mem_window": _window(r.mem_window),
                    "pref_window": _window(r.pref_window),
                }
                for r in self.roots
            ],
            "bridges": [
                {
                    "id": b.id,
                    "added": b.added,
                    "bus": None if b.bus is None else f"{b.bus:02x}",
                    "secondary": None if b.secondary is None else f"{b.secondary:02x}",
                    "subordinate": None if b.subordinate is None else f"{b.subordinate:02x}",
                    "bus_reserve": b.bus_reserve,
                    "mem_window": _window(b.mem_window),
                    "pref_window": _window(b.pref_window),
                }
                for b in self.bridges()
            ],
            "unknown": dict(sorted(self.unknown.items())),
        }


def _window(w: tuple[int, int] | None) -> dict[str, Any] | None:
    return None if w is None else {"start": hex(w[0]), "size": w[1]}


def plan(
    topo: Topology,
    additions: list[Addition] | None = None,
    *,
    apertures: Apertures | None = None,
    hotplug_bus_reserve: int | None = None,
) -> PlanResult:
    """Plan bus numbers and MMIO for `topo` plus `additions`, as firmware would at the next boot.

    ``hotplug_bus_reserve`` gives every hot-plug-capable port at least that many spare buses
    (default: keep each port's current reserve).

    Raises:
        PlanInputError: an addition names a port that does not exist, is not a downstream-facing
            port, or already holds a device.
    """
    from accelctl.addressing.resolver import Resolver

    apertures = apertures or Apertures()
    tree = _tree_from_topology(topo)
    if hotplug_bus_reserve is not None:
        for f in tree.by_id.values():
            if f.hotplug_capable:
                f.bus_reserve = max(f.bus_reserve, hotplug_bus_reserve)
    placed: list[tuple[Addition, PciFunction, PlanFunction]] = []
    resolver = Resolver(topo, visible=None) if additions else None
    for n, add in enumerate(additions or []):
        assert resolver is not None
        try:
            port = resolver.resolve(add.port).function
        except AccelError as err:
            raise PlanInputError(add.text, str(err)) from None
        if not port.kind.is_downstream_facing:
            raise PlanInputError(add.text, f"{port.id} is a {port.kind.value}; cards go below a root or downstream port")
        holder = tree.by_id[port.id]
        if holder.children or any(a[1].id == port.id for a in placed):
            raise PlanInputError(add.text, f"{port.id} already holds a device")
        card = _addition_tree(add, f"new{n}")
        # a multi-function marker contributes its functions directly to the port's bus
        holder.children.extend(card.children if _is_marker(card) else [card])
        placed.append((add, port, card))
    issues = _run(tree, apertures)
    results = [_addition_result(add, port, card, topo) for add, port, card in placed]
    return PlanResult(tree.roots, issues, results, tree.unknown, apertures)


def _run(tree: _Tree, apertures: Apertures) -> list[PlanIssue]:
    return number_buses(tree.roots) + assign_mmio(tree.roots, apertures)


def _is_marker(f: PlanFunction) -> bool:
    return f.added and not f.is_bridge and not f.bars and bool(f.children)


def _addition_result(add: Addition, port: PciFunction, card: PlanFunction, topo: Topology) -> AdditionResult:
    top = card.children[0] if _is_marker(card) else card
    last = max((b.subordinate or 0 for b in card.bridges()), default=top.bus or 0)
    boot = (top.bus, max(last, top.bus)) if top.bus is not None else None
    problems: list[str] = []
    # hot-add: the port's bus range and windows stay as they are now
    sec, sub = port.secondary_bus, port.subordinate_bus
    extra = buses_needed(card)
    if not sec:
        problems.append(f"{port.id} has no bus numbers of its own (secondary 0)")
    elif sub is not None and sub - sec < extra:
        problems.append(
            f"bus: {port.id} spans buses {sec:02x}-{sub:02x}; the card needs {extra + 1} "
            f"({sec:02x} for its top plus {extra} for its bridges)"
        )
    holder = PlanFunction(port.id, port.bdf.devfn, True, children=card.children if _is_marker(card) else [card])
    mem_need, pref_need = window_need(holder)
    for name, need, label in (("mem_window", mem_need, "32-bit"), ("pref_window", pref_need, "64-bit prefetchable")):
        have = port.windows.get(name, (0, 0))[1]
        if need > have:
            problems.append(f"{label} window of {port.id} is {format_size(have) if have else 'unassigned'}, the card needs {format_size(need)}")
    return AdditionResult(add, port.id, boot, not problems, problems)


# --- agreement with a machine ------------------------------------------------------------------


def check_against_topology(topo: Topology) -> list[str]:
    """Differences between what firmware-style planning gives and what `topo` has: bridge bus
    ranges, bridge windows and BAR addresses. [] when the machine was numbered the firmware way.
    Roots whose memory needs are not fully known (see PlanResult.unknown) and everything after
    them are compared for bus numbers only."""
    result = plan(topo)
    out: list[str] = []
    memory_comparable = True
    for root in result.roots:
        if any(fid in result.unknown for fid in _ids_below(root)):
            memory_comparable = False
        for f in _walk(root.functions):
            fn = topo.functions[f.id]
            if f.is_bridge and not f.hot_added:
                if (f.secondary, f.subordinate) != (fn.secondary_bus, fn.subordinate_bus):
                    out.append(
                        f"{f.id}: buses planned {_hex(f.secondary)}-{_hex(f.subordinate)}, "
                        f"found {_hex(fn.secondary_bus)}-{_hex(fn.subordinate_bus)}"
                    )
            if not memory_comparable:
                continue
            if f.is_bridge:
                for name in ("mem_window", "pref_window"):
                    planned = getattr(f, name) or (0, 0)
                    found = fn.windows.get(name, (0, 0))
                    if planned[1] == 0 and found[1] == 0:
                        continue
                    if planned != found:
                        out.append(f"{f.id}: {name} planned {_win(planned)}, found {_win(found)}")
            for bar in fn.bars:
                if bar.size and f.bar_addr.get(bar.index) != bar.start:
                    out.append(f"{f.id}: BAR{bar.index} planned {_hex(f.bar_addr.get(bar.index))}, found {bar.start:#x}")
    return out


def _walk(funcs: list[PlanFunction]) -> list[PlanFunction]:
    return list(depth_first(funcs, lambda f: f.children))


def _ids_below(root: PlanRoot) -> list[str]:
    return [f.id for f in _walk(root.functions)]


def _hex(v: int | None) -> str:
    return "??" if v is None else f"{v:#x}" if v > 0xFF else f"{v:02x}"


def _win(w: tuple[int, int]) -> str:
    return "unassigned" if not w[1] else f"[{w[0]:#x}, {format_size(w[1])}]"


# --- explanations for diagnostics --------------------------------------------------------------


def _peers(topo: Topology, fn: PciFunction) -> list[PciFunction]:
    """Functions of the same model (vendor:device) that firmware did set up, best evidence first."""
    return sorted(
        (f for f in topo.functions.values()
         if f.id != fn.id and (f.vendor_id, f.device_id) == (fn.vendor_id, fn.device_id) and f.accessible),
        key=lambda f: f.bdf,
    )


def explain_bus_exhaustion(topo: Topology, bridge_id: str) -> str:
    """Why `bridge_id` has no bus numbers (``BUS_NUMBERS_EXHAUSTED``), what it needs, whether
    firmware would number it at boot, and what to do. One paragraph for a finding's hint.

    Raises:
        DeviceNotFoundError: no such function.
    """
    bridge = topo.node(bridge_id)
    from accelctl.topology.model import PciFunction as _Fn

    if not isinstance(bridge, _Fn) or not bridge.is_bridge:
        return f"{bridge_id} is not a bridge; only bridges need bus numbers."
    if bridge.secondary_bus:
        return (f"{bridge_id} has buses {bridge.secondary_bus:02x}-{(bridge.subordinate_bus or 0):02x}; "
                "its bus numbers are not exhausted.")
    port = topo.functions.get(bridge.parent or "")
    # What the bridge needs: its own secondary bus, plus one per downstream port behind it. Those
    # ports were never enumerated, so count them on a numbered bridge of the same model.
    peer = next((p for p in _peers(topo, bridge) if p.secondary_bus), None)
    ports_behind = sum(1 for c in topo.children.get(peer.id, []) if topo.functions[c].is_bridge) if peer else 0
    needed = 1 + ports_behind
    need_text = (f"{needed} buses (its secondary bus and {ports_behind} for the downstream ports a "
                 f"{peer.id}-like bridge has)" if peer else "at least 1 bus (its secondary), more for any ports behind it")
    # Say only what the tree shows: no bus numbers, not how it came to that (hot-add, firmware).
    parts = [f"{bridge_id} has no bus numbers: it needs {need_text}."]
    if port is not None and port.secondary_bus is not None:
        sec, sub = port.secondary_bus, port.subordinate_bus or port.secondary_bus
        spare = sub - sec
        parts.append(
            f"Its port {port.id} spans buses {sec:02x}-{sub:02x}: bus {sec:02x} is the one {bridge_id} sits on"
            + (f", leaving {spare} spare" if spare else ", leaving none")
            + (" (the port is hot-plug capable but firmware reserved no extra buses for it)." if port.hotplug_capable
               and not spare else ".")
        )
    # At boot, firmware numbers everything depth-first: would it fit then?
    tree = _tree_from_topology(topo)
    node = tree.by_id[bridge_id]
    node.hot_added = False
    if not node.children:
        node.children = [PlanFunction(f"{bridge_id}.port{i}", i << 3, True) for i in range(ports_behind)]
    issues = [i for i in number_buses(tree.roots) if i.resource == "bus"]
    if issues:
        parts.append(f"Even renumbered at boot it would not fit: {issues[0].message}.")
    else:
        root = next(r for r in tree.roots if _contains(r, bridge_id))
        parts.append(
            f"Renumbered at boot it fits: {root.id} would use buses {root.bus:02x}-{(root.last_bus or 0):02x} "
            f"of {root.bus:02x}-{root.bus_limit:02x}."
        )
    parts.append(
        "Fix: reboot (firmware renumbers), rescan with pci=assign-busses, or reserve buses for hot-plug "
        "(pci=hpbussize=N, or the firmware's hot-plug bus padding for that port)."
    )
    return " ".join(parts)


def explain_bar_unassigned(topo: Topology, fn_id: str) -> str:
    """Why a BAR of `fn_id` (or a window of a bridge) is unassigned (``BAR_UNASSIGNED``): what it
    needs, which bridge window is missing or too small, whether firmware-style allocation would
    fit it with and without Above-4G decoding, and what to do.

    Raises:
        DeviceNotFoundError: no such function.
    """
    fn = topo.node(fn_id)
    from accelctl.topology.model import PciFunction as _Fn

    if not isinstance(fn, _Fn):
        return f"{fn_id} is a host bridge; it has no BARs."
    if fn.is_bridge:
        return _explain_window(topo, fn)
    # The kernel prints an unassigned BAR as zeros, so its size is gone; take it from a function
    # of the same model that did get it.
    peer = next((p for p in _peers(topo, fn) if any(b.size for b in p.bars)), None)
    have = {b.index for b in fn.bars if b.size}
    missing = [b for b in (peer.bars if peer else ()) if b.size and b.index not in have]
    if not missing:
        return (f"{fn_id}: no BAR is known to be missing (no assigned function of the same model to compare "
                "with); check 'lspci -vv' for 'BAR n: [disabled]' or unassigned regions.")
    needs = ", ".join(f"BAR{b.index} {format_size(b.size)} {'64-bit prefetchable' if b.prefetchable and b.is_64bit else '32-bit'}"
                      for b in missing)
    parts = [f"{fn_id} is missing {needs} (sizes from {peer.id}, the same model)."]  # type: ignore[union-attr]
    pref_missing = any(b.prefetchable and b.is_64bit for b in missing)
    window = "pref_window" if pref_missing else "mem_window"
    label = "64-bit prefetchable" if pref_missing else "32-bit"
    for anc in topo.ancestors(fn_id):
        if isinstance(anc, _Fn) and anc.is_bridge:
            start, size = anc.windows.get(window, (0, 0))
            if not size:
                parts.append(f"Its bridge {anc.id} has no {label} window, so nothing below it can get such a BAR.")
                break
    tree = _tree_from_topology(topo)
    node = tree.by_id[fn_id]
    for b in missing:
        node.bars.append(BarNeed(fn_id, b.index, b.size, b.size, b.prefetchable and b.is_64bit))
    issues = _run(tree, Apertures())
    if issues:
        parts.append(f"Even firmware-style allocation at boot does not fit it: {issues[0].message}.")
    else:
        tree32 = _tree_from_topology(topo)
        for b in missing:
            tree32.by_id[fn_id].bars.append(BarNeed(fn_id, b.index, b.size, b.size, b.prefetchable and b.is_64bit))
        issues32 = _run(tree32, Apertures(above_4g=False))
        parts.append(
            "Allocated at boot with Above-4G decoding it fits"
            + (f"; without it, it does not ({issues32[0].message})." if issues32 else ".")
        )
    parts.append("Fix: enable Above 4G Decoding (and Re-Size BAR) in the firmware setup, or boot with pci=realloc "
                 "so the kernel resizes the bridge windows.")
    return " ".join(parts)


def _explain_window(topo: Topology, bridge: PciFunction) -> str:
    outside: list[str] = []
    for c in topo.subtree(bridge.id):
        f = topo.functions.get(c)
        if f is None:
            continue
        for b in f.bars:
            if not b.size or b.is_io:
                continue
            name = "pref_window" if b.prefetchable and b.is_64bit else "mem_window"
            # a prefetchable BAR may sit in either memory window
            allowed = ("pref_window", "mem_window") if b.prefetchable else ("mem_window",)
            if not any(ws <= b.start and b.start + b.size <= ws + wsize
                       for ws, wsize in (bridge.windows.get(n, (0, 0)) for n in allowed)):
                outside.append(f"{f.id} BAR{b.index} [{b.start:#x}, {format_size(b.size)}] is outside its {name.replace('_', ' ')}")
    node = _tree_from_topology(topo).by_id[bridge.id]
    mem, pref = window_need(node)
    need = f"Below {bridge.id} firmware-style allocation needs a 32-bit window of {format_size(mem) if mem else 'nothing'} and a 64-bit prefetchable window of {format_size(pref) if pref else 'nothing'}"
    have = ", ".join(f"{k.replace('_', ' ')} {format_size(v[1]) if v[1] else 'unassigned'}" for k, v in sorted(bridge.windows.items()) if k != "io_window")
    if outside:
        return f"{bridge.id}: {'; '.join(outside[:4])}. {need}; it has {have}. Fix: boot with pci=realloc or enable Above 4G Decoding."
    return f"{need}; it has {have}."


def _contains(root: PlanRoot, fn_id: str) -> bool:
    return any(f.id == fn_id for f in _walk(root.functions))


def plan_spec(
    spec: Path,
    additions: list[Addition] | None = None,
    *,
    accel_ids: Iterable[str] = (),
    apertures: Apertures | None = None,
    hotplug_bus_reserve: int | None = None,
) -> PlanResult:
    """`plan` for a machine that exists only as a topology spec (fixtures/*.toml): the spec is
    built into a private temporary tree, read like any machine, and the tree is removed.

    Raises:
        SpecError: the spec is malformed or too large. Otherwise as `plan`.
    """
    import tempfile

    from accelctl.sim.fixture import build_fixture
    from accelctl.topology import build_topology

    with tempfile.TemporaryDirectory(prefix="accelctl-plan-") as tmp:
        topo = build_topology(build_fixture(spec, Path(tmp) / "tree"), accel_ids=list(accel_ids))
    return plan(topo, additions, apertures=apertures, hotplug_bus_reserve=hotplug_bus_reserve)
