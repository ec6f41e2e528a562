"""MMIO windows and BARs the way firmware with Above-4G decoding assigns them.

* every BAR is naturally aligned (aligned to its size);
* a bridge's windows are the packed sum of what is below it, rounded up to 1 MiB and aligned to
  the largest alignment inside (at least 1 MiB);
* requests are packed largest alignment first, so no request waits behind a gap;
* 64-bit prefetchable BARs (accelerator memory) go to the prefetchable window above 4 GiB;
  everything else (32-bit BARs, non-prefetchable 64-bit BARs) to the window below 4 GiB;
* each root bus gets its 32-bit range from one cursor starting at 2 GiB (16 MiB aligned), and its
  64-bit range from another starting at 1 TiB, in root-bus order.

Without Above-4G decoding (``above_4g=False``) the prefetchable BARs must fit below 4 GiB too,
which is the usual reason a big BAR stays unassigned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from accelctl.addressing.plan_model import MIB, PlanFunction, PlanIssue, PlanRoot, align_up

MEM32_START = 0x8000_0000
#: the top 64 MiB below 4 GiB hold APICs, flash and friends
MEM32_END = 0xFC00_0000
PREF64_START = 0x100_0000_0000  # 1 TiB
#: end of the 64-bit aperture: 64 TiB, a 46-bit physical address space
PREF64_END = 1 << 46
ROOT_ALIGN = 16 * MIB

Place = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Apertures:
    mem32_start: int = MEM32_START
    mem32_end: int = MEM32_END
    pref64_start: int = PREF64_START
    pref64_end: int = PREF64_END
    above_4g: bool = True


class Region:
    """Requests packed into one window."""

    __slots__ = ("reqs",)

    def __init__(self) -> None:
        self.reqs: list[tuple[int, int, Place]] = []

    def add(self, size: int, align: int, place: Place) -> None:
        self.reqs.append((size, align, place))

    def pack(self) -> tuple[int, int, Place]:
        """(size rounded to 1 MiB, alignment, place(base)). Stable sort: equal alignments keep
        device/function order."""
        cur, align, offsets = 0, MIB, []
        for size, a, place in sorted(self.reqs, key=lambda r: -r[1]):
            cur = align_up(cur, a)
            offsets.append((cur, place))
            cur += size
            align = max(align, a)

        def place_all(base: int) -> None:
            for off, p in offsets:
                p(base + off)

        return align_up(cur, MIB), align, place_all


def assign_mmio(roots: list[PlanRoot], apertures: Apertures) -> list[PlanIssue]:
    """Fill windows and BAR addresses; return where space ran out (resource mem32 / pref64)."""
    issues: list[PlanIssue] = []
    mem_cursor, pref_cursor = apertures.mem32_start, apertures.pref64_start
    for root in roots:
        mem, pref = _layout(root.functions)
        if not apertures.above_4g:
            # no 64-bit decoding: prefetchable BARs compete for the same space below 4 GiB
            for req in pref.reqs:
                mem.add(*req)
            pref = Region()
        if mem.reqs:
            size, align, place = mem.pack()
            base = align_up(mem_cursor, max(align, ROOT_ALIGN))
            if base + size > apertures.mem32_end:
                # firmware leaves what does not fit unassigned and goes on with the next root
                issues.append(_no_space(root, "mem32", size, apertures.mem32_end - base, apertures))
            else:
                place(base)
                root.mem_window = (base, size)
                mem_cursor = base + size
        if pref.reqs:
            size, align, place = pref.pack()
            base = align_up(pref_cursor, align)
            if base + size > apertures.pref64_end:
                issues.append(_no_space(root, "pref64", size, apertures.pref64_end - base, apertures))
            else:
                place(base)
                root.pref_window = (base, size)
                pref_cursor = base + size
    return issues


def _no_space(root: PlanRoot, resource: str, needed: int, available: int, ap: Apertures) -> PlanIssue:
    what = "32-bit MMIO below 4 GiB" if resource == "mem32" else "64-bit prefetchable MMIO"
    hint = (
        " (enable Above-4G decoding so 64-bit BARs can live above 4 GiB)"
        if resource == "mem32" and not ap.above_4g
        else ""
    )
    return PlanIssue(
        resource,
        root.id,
        f"{what} runs out at {root.id}: it needs {format_size(needed)}, {format_size(max(available, 0))} is left{hint}",
        needed=needed,
        available=max(available, 0),
    )


def _layout(funcs: list[PlanFunction]) -> tuple[Region, Region]:
    mem, pref = Region(), Region()
    for f in sorted(funcs, key=lambda x: x.devfn):
        for bar in f.bars:
            region = pref if bar.prefetchable_64 else mem
            region.add(bar.size, bar.align, _set_bar(f, bar.index))
        if f.is_bridge:
            cmem, cpref = _layout(f.children)
            if cmem.reqs:
                size, align, place = cmem.pack()
                mem.add(size, align, _set_window(f, "mem_window", size, place))
            if cpref.reqs:
                size, align, place = cpref.pack()
                pref.add(size, align, _set_window(f, "pref_window", size, place))
    return mem, pref


def window_need(f: PlanFunction) -> tuple[int, int]:
    """(32-bit window size, 64-bit prefetchable window size) a bridge's subtree needs."""
    mem, pref = _layout(f.children)
    return (mem.pack()[0] if mem.reqs else 0, pref.pack()[0] if pref.reqs else 0)


def _set_bar(f: PlanFunction, index: int) -> Place:
    def place(addr: int) -> None:
        f.bar_addr[index] = addr

    return place


def _set_window(f: PlanFunction, attr: str, size: int, inner: Place) -> Place:
    def place(addr: int) -> None:
        setattr(f, attr, (addr, size))
        inner(addr)

    return place


def format_size(n: int) -> str:
    if n == 0:
        return "0 bytes"
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n:#x} bytes"
