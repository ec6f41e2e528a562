"""Tree walks, in one place: depth-first in child order (address order for the topology)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


def depth_first(roots: Iterable[T], children_of: Callable[[T], Sequence[T]]) -> Iterator[T]:
    """Every node of the trees below `roots` (roots included), depth-first, children in order.
    Iterative: a deep tree never meets the recursion limit."""
    stack = list(reversed(list(roots)))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children_of(node)))


def descendants(children: Mapping[str, Sequence[str]], node_id: str) -> list[str]:
    """Every node below `node_id` (not itself) in a parent -> child ids map, depth-first."""
    return list(depth_first(children.get(node_id, ()), lambda n: children.get(n, ())))
