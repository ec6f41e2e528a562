"""Whether PCIe peer-to-peer between two functions works: True, False or None (unknown), with
the route it takes and the reason, in words.

The one judge of P2P (the matrix and everything built on it ask here). The rules, in order:

1. **Paths that meet below a host bridge** (one switch, several switches, or the functions of one
   device): peer requests are routed where the paths meet, unless ACS redirects them at the
   ingress port just below the meeting point on either side (the switch downstream ports, or the
   functions themselves for one multi-function device; ACS on ports further down never sees the
   traffic as peer-to-peer). ACS request redirect, completion redirect or egress control
   (RR/CR/EC) sends them up to the root complex instead, and then rule 2 decides. With no such
   bit the traffic stays in the fabric: True, route ``fabric``. Where ACS cannot be read
   (config space readable only to 64 bytes, as for a non-root user) and no readable port
   redirects, it is True when rule 2 allows the root-complex route too (route unknown), else None.

2. **Through the root complex** (paths that meet only at or above a host bridge, or redirected
   by ACS): what Linux's p2pdma decides (drivers/pci/p2pdma.c): allowed on every AMD CPU of
   family 0x17 (Zen) or newer; otherwise only when the root complex is on p2pdma's allow-list
   (identified by the first function on its root bus: device 00.0 or a root port), some entries
   only between root ports of one host bridge. Not allowed otherwise: False. When the CPU is
   unknown (the tree has neither ``devices/system/cpu/modalias`` nor ``proc/cpuinfo``) and the
   root complex is not on the list, None; a root complex that only exists in Zen-or-newer AMD
   parts says the CPU is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from accelctl.pci.regs import ACS_P2P_BLOCKING, AcsBit
from accelctl.topology.model import NodeKind, PciFunction

if TYPE_CHECKING:
    from accelctl.sysfs.cpu import CpuIdentity
    from accelctl.topology.graph import Topology

#: The routes peer traffic can take.
FABRIC = "fabric"
HOST_BRIDGE = "host_bridge"

_INTEL, _GOOGLE, _NVIDIA, _ZHAOXIN, _AMD = 0x8086, 0x1AE0, 0x10DE, 0x1D17, 0x1022
#: Linux p2pdma's allow-list of root complexes: (vendor, device or None for any) -> allowed only
#: between root ports of one host bridge. Kept in step with drivers/pci/p2pdma.c.
P2PDMA_ROOT_COMPLEXES: dict[tuple[int, int | None], bool] = {
    (_INTEL, 0x3C00): True, (_INTEL, 0x3C01): True,  # Xeon E5 / Core i7 (Sandy Bridge-EP)
    (_INTEL, 0x2F00): True, (_INTEL, 0x2F01): True,  # Xeon E5 v3 / E7 v3 (Haswell-EP)
    # Skylake-SP root ports and DMI, Ice Lake-SP, and the RCiEPs first on Sapphire Rapids and
    # later root buses (DSA, IAX, QAT)
    (_INTEL, 0x2030): False, (_INTEL, 0x2031): False, (_INTEL, 0x2032): False,
    (_INTEL, 0x2033): False, (_INTEL, 0x2020): False, (_INTEL, 0x09A2): False,
    (_INTEL, 0x0B25): False, (_INTEL, 0x0CFE): False, (_INTEL, 0x11FB): False,
    (_INTEL, 0x1212): False, (_INTEL, 0x1216): False, (_INTEL, 0x4940): False,
    (_INTEL, 0x4942): False, (_INTEL, 0x4944): False, (_INTEL, 0x4946): False,
    (_INTEL, 0x4948): False,
    (_GOOGLE, None): False,
    (_NVIDIA, 0x2F95): False, (_NVIDIA, 0x2F96): False, (_NVIDIA, 0x2F97): False,
    (_NVIDIA, 0x2F98): False,
    (_ZHAOXIN, 0x1003): True, (_ZHAOXIN, 0x1005): True, (_ZHAOXIN, 0x1006): True,
    (_ZHAOXIN, 0x1007): True, (_ZHAOXIN, 0x1008): False,
}
#: AMD root complexes found only in Zen (family 0x17) or newer parts: when the CPU itself is
#: unknown, one of these on the root bus says it is a Zen CPU.
ZEN_ROOT_COMPLEXES = frozenset({
    0x1450,  # family 17h models 00h-0fh (Naples, Summit Ridge)
    0x15D0,  # Raven / Raven2
    0x1480,  # Starship / Matisse (Rome, Milan, Matisse, Vermeer)
    0x14B5,  # family 17h-19h
    0x1630,  # Renoir / Cezanne
    0x1645,  # Van Gogh
    0x14A4,  # Genoa / Bergamo
    0x14D8,  # Raphael
    0x14E8,  # Phoenix
})
_ZEN_FAMILY = 0x17


@dataclass(frozen=True, slots=True)
class P2PVerdict:
    #: True / False / None (unknown)
    possible: bool | None
    #: FABRIC, HOST_BRIDGE, or None (no P2P, or which way is unknown)
    route: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class _RootComplexRule:
    allowed: bool | None
    reason: str


def _ids(fn: PciFunction) -> str:
    v, d = fn.vendor_id, fn.device_id
    return f"{'????' if v is None else f'{v:04x}'}:{'????' if d is None else f'{d:04x}'}"


class P2PJudge:
    """Judges pairs of functions of one topology; per-function facts are computed once, so a
    matrix of n endpoints costs n walks up plus one short walk per pair."""

    def __init__(self, topo: Topology, cpu: CpuIdentity | None = None, *, read_cpu: bool = True) -> None:
        """`cpu`: the machine's CPU when the caller knows it; else it is read from the tree
        (accelctl.sysfs.cpu) the first time a pair's verdict depends on it, unless `read_cpu`
        is False (then it stays unknown)."""
        self.topo = topo
        self._cpu = cpu
        self._cpu_read = cpu is not None or not read_cpu
        self._chains: dict[str, tuple[list[str], dict[str, int], str | None]] = {}

    # --- facts --------------------------------------------------------------------------------

    @property
    def cpu(self) -> CpuIdentity | None:
        if not self._cpu_read:
            self._cpu_read = True
            root = self.topo.root
            if root is not None:
                from accelctl.sysfs.cpu import read_cpu_identity

                self._cpu = read_cpu_identity(root)
        return self._cpu

    def _chain(self, fn_id: str) -> tuple[list[str], dict[str, int], str | None]:
        """(function ids from `fn_id`'s parent up to the nearest host bridge, their positions,
        that host bridge)."""
        got = self._chains.get(fn_id)
        if got is None:
            fns, chain = self.topo.functions, []
            node = fns[fn_id].parent
            while node is not None and node in fns:
                chain.append(node)
                node = fns[node].parent
            host = node if node is not None and node in self.topo.host_bridges else None
            got = self._chains[fn_id] = (chain, {n: i for i, n in enumerate(chain)}, host)
        return got

    def host_bridge_device(self, host_id: str) -> PciFunction | None:
        """The function Linux's p2pdma identifies a root complex by: the first function on the
        root bus, when it is device 00.0 or a root port."""
        fns = self.topo.functions
        kids = [fns[c] for c in self.topo.children.get(host_id, ()) if c in fns]
        if not kids:
            return None
        first = kids[0]  # children are in address order
        if first.bdf.devfn == 0 or first.kind is NodeKind.ROOT_PORT:
            return first
        return None

    def _acs(self, fn_id: str) -> tuple[str, int]:
        """("bits", mask) for RR/CR/EC set, ("none", 0) when readable and clear or absent,
        ("unknown", 0) when ACS cannot be read."""
        fn = self.topo.functions.get(fn_id)
        if fn is None:
            return "unknown", 0
        if fn.acs is not None:
            bits = fn.acs.control & ACS_P2P_BLOCKING
            return ("bits", bits) if bits else ("none", 0)
        if not fn.accessible or fn.config_bytes is None or "capabilities" in fn.unknown:
            return "unknown", 0
        return "none", 0

    # --- rules --------------------------------------------------------------------------------

    def judge(self, a_id: str, b_id: str) -> P2PVerdict:
        if a_id == b_id:
            return P2PVerdict(True, FABRIC, "the same function")
        a_chain, a_index, a_host = self._chain(a_id)
        b_chain, _, b_host = self._chain(b_id)
        meet_b = next((i for i, n in enumerate(b_chain) if n in a_index), None)
        if meet_b is None:
            rc = self.root_complex_rule(a_host, b_host)
            where = (f"the paths meet only at host bridge {a_host}" if a_host is not None and a_host == b_host
                     else "the paths meet only above their host bridges")
            return P2PVerdict(rc.allowed, HOST_BRIDGE if rc.allowed else None, f"{where}: {rc.reason}")
        meet = b_chain[meet_b]
        meet_a = a_index[meet]
        ingress = (a_chain[meet_a - 1] if meet_a > 0 else a_id, b_chain[meet_b - 1] if meet_b > 0 else b_id)
        states = [(n, *self._acs(n)) for n in dict.fromkeys(ingress)]
        redirecting = [(n, bits) for n, state, bits in states if state == "bits"]
        unreadable = [n for n, state, _ in states if state == "unknown"]
        if not redirecting and not unreadable:
            return P2PVerdict(True, FABRIC, f"the paths meet at {meet}, below the host bridge; no ACS "
                                            f"redirect on {' or '.join(dict.fromkeys(ingress))}")
        rc = self.root_complex_rule(a_host, b_host)
        if redirecting:
            acs = "; ".join(f"ACS {'/'.join(b.name or '?' for b in AcsBit if bits & b)} on {n}"
                            for n, bits in redirecting)
            verb = "redirects" if len(redirecting) == 1 else "redirect"
            return P2PVerdict(rc.allowed, HOST_BRIDGE if rc.allowed else None,
                              f"{acs} {verb} peer requests to the root complex: {rc.reason}")
        acs = (f"ACS unreadable on {' and '.join(unreadable)} (config space readable only to "
               "64 bytes: run as root)")
        if rc.allowed:
            return P2PVerdict(True, None, f"{acs}: the traffic stays below {meet} or is redirected "
                                          f"to the root complex, where {rc.reason}")
        return P2PVerdict(None, None, f"{acs}: without ACS redirect the traffic stays below {meet}; "
                                      f"with it, {rc.reason}")

    def root_complex_rule(self, a_host: str | None, b_host: str | None) -> _RootComplexRule:
        """Linux p2pdma's decision for traffic through the root complex between functions below
        host bridges `a_host` and `b_host`."""
        cpu = self.cpu
        if cpu is not None and cpu.vendor == "amd" and (cpu.family or 0) >= _ZEN_FAMILY:
            return _RootComplexRule(True, f"Linux p2pdma allows it on this AMD CPU (family {cpu.family:#x}, "
                                          "Zen or newer)")
        if a_host is None or b_host is None:
            return _RootComplexRule(None, "a host bridge above the pair is unknown")
        listed = self._allow_list(a_host, b_host)
        if listed.allowed:
            return listed
        if cpu is None:
            zen = [h for h in dict.fromkeys((a_host, b_host)) if self._zen_root_complex(h)]
            if len(zen) == len({a_host, b_host}):
                return _RootComplexRule(True, f"{listed.reason}, but {' and '.join(zen)} is an AMD Zen "
                                              "root complex, on which Linux p2pdma allows it")
            return _RootComplexRule(None, f"{listed.reason}; Linux p2pdma allows it anyway on AMD Zen "
                                          "or newer CPUs, and the CPU is unknown (the tree has neither "
                                          "devices/system/cpu/modalias nor proc/cpuinfo)")
        return _RootComplexRule(False, f"{listed.reason}, and the CPU ({cpu}) is not AMD Zen or newer")

    def _allow_list(self, a_host: str, b_host: str) -> _RootComplexRule:
        same = a_host == b_host
        entries = []
        for host in dict.fromkeys((a_host, b_host)):
            dev = self.host_bridge_device(host)
            if dev is None:
                return _RootComplexRule(False, f"host bridge {host} has no function 00.0 or root port "
                                               "first on its bus to identify its root complex by")
            key = (dev.vendor_id or 0, dev.device_id)
            same_only = P2PDMA_ROOT_COMPLEXES.get(key, P2PDMA_ROOT_COMPLEXES.get((key[0], None)))
            entries.append((host, dev, same_only))
        unlisted = [f"{h} ({_ids(d)})" for h, d, s in entries if s is None]
        if unlisted:
            return _RootComplexRule(False, f"root complex {' and '.join(unlisted)} is not on Linux "
                                           "p2pdma's allow-list")
        named = " and ".join(f"{h} ({_ids(d)})" for h, d, _ in entries)
        if same:
            return _RootComplexRule(True, f"root complex {named} is on Linux p2pdma's allow-list")
        if any(s for _, _, s in entries):
            return _RootComplexRule(False, f"Linux p2pdma allows root complex {named} only between "
                                           "root ports of one host bridge")
        return _RootComplexRule(True, f"root complexes {named} are on Linux p2pdma's allow-list")

    def _zen_root_complex(self, host: str) -> bool:
        dev = self.host_bridge_device(host)
        return dev is not None and dev.vendor_id == _AMD and dev.device_id in ZEN_ROOT_COMPLEXES

