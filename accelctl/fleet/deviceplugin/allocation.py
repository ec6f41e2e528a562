"""GetPreferredAllocation by the pairwise matrix: the closest set of endpoints.

Closeness is the matrix's level between two endpoints (X, CARD, PIX, PXB, PHB, NODE, SYS,
nearest first). A set's cost is its worst pair, then the sum over its pairs: four endpoints of
one card beat four below one switch, which beat four on one host bridge. The levels nest like a
tree (two endpoints of one card are below one switch, ...), so growing a set greedily from the
best seed finds a set whose worst pair is the best possible; every seed is tried, so the sum is
minimised among those greedy sets. Ties go to lower global ids (physical order).

Unknown ids (a device that vanished since the kubelet last listed it) are skipped rather than
failing the whole request: one bad device must not block allocation on the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from accelctl.diagnostics.matrix import LEVELS

if TYPE_CHECKING:
    from accelctl.fleet.inventory import Inventory

_RANK = {code: i for i, code in enumerate(LEVELS)}


class Closeness:
    """Pairwise ranks of the endpoints of one inventory (0 = X ... 6 = SYS)."""

    def __init__(self, inv: Inventory) -> None:
        self.index = {bdf: i for i, bdf in enumerate(inv.matrix.endpoints)}
        self.rank = [[_RANK[c] for c in row] for row in inv.matrix.matrix]
        order = {d.bdf: d.global_id for d in inv.devices}
        self.order = {bdf: order.get(bdf, len(order) + i) for bdf, i in self.index.items()}

    def between(self, a: str, b: str) -> int:
        return self.rank[self.index[a]][self.index[b]]

    def cost(self, group: Sequence[str]) -> tuple[int, int]:
        pairs = [self.between(a, b) for i, a in enumerate(group) for b in group[i + 1:]]
        return (max(pairs, default=0), sum(pairs))


def preferred_allocation(inv: Inventory, available: Sequence[str], must_include: Sequence[str],
                         size: int, closeness: Closeness | None = None) -> list[str]:
    """`size` device ids from `available` (ids are BDFs) including every one of `must_include`,
    closest by the matrix, in global-id order. Fewer when fewer known devices are available."""
    near = closeness or Closeness(inv)
    known = near.index
    must = [d for d in dict.fromkeys(must_include) if d in known]
    pool = [d for d in dict.fromkeys(available) if d in known and d not in must]
    pool.sort(key=near.order.__getitem__)
    if size <= len(must) or not pool:
        return sorted(must, key=near.order.__getitem__)
    seeds = [must] if must else [[d] for d in pool]
    best: tuple[tuple[int, int], list[int], list[str]] | None = None
    for seed in seeds:
        group = list(seed)
        # each candidate's worst and summed level to the group so far, updated as it grows
        reach = {c: [max(near.between(c, g) for g in group), sum(near.between(c, g) for g in group)]
                 for c in pool if c not in group}
        while len(group) < size and reach:
            pick = min(reach, key=lambda c: (reach[c][0], reach[c][1], near.order[c]))
            group.append(pick)
            del reach[pick]
            for c, r in reach.items():
                level = near.between(c, pick)
                r[0] = max(r[0], level)
                r[1] += level
        group.sort(key=near.order.__getitem__)
        key = (near.cost(group), [near.order[d] for d in group], group)
        if best is None or key[:2] < best[:2]:
            best = key
    assert best is not None
    return best[2]
