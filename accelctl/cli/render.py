"""Rich renderings for people: device tables and the annotated tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from accelctl.cli._layout import Column, Layout, fit_table
from accelctl.cli._output import esc
from accelctl.topology.model import HostBridge, Link, NodeKind, PciFunction

if TYPE_CHECKING:
    from rich.tree import Tree

    from accelctl.topology import Topology
    from accelctl.topology.listing import DeviceListing


def link_text(link: Link | None, *, downtrained: bool = False) -> str:
    """``16GT/s x16``; ``16GT/s x16 (of 32GT/s x16)`` below its own capability because the other
    end is slower; in red when `downtrained` (below what both ends can do)."""
    if link is None:
        return "-"

    def speed(v: float | None) -> str:
        return "?" if v is None else f"{v:g}GT/s"

    def width(v: int | None) -> str:
        return "x?" if v is None else f"x{v}"

    now = f"{speed(link.speed_gts)} {width(link.width)}"
    cap = f"{speed(link.max_speed_gts)} {width(link.max_width)}"
    if link.max_speed_gts is None and link.max_width is None:
        cap = "unknown capability"
    if link.is_down:
        return f"[dim]no link[/] (of {cap})"
    if link.speed_gts is None and link.width is None:
        return f"[red]unknown[/] (of {cap})"
    if downtrained:
        return f"[bold red]{now} DOWNTRAINED[/] (of {cap})"
    return now if now == cap else f"{now} (of {cap})"


def _opt(value: object) -> str:
    return "-" if value is None else str(value)


#: `list` columns: identifiers are never cut; MODEL and LINK wrap at spaces; when even that does
#: not fit the terminal, SERIAL goes first, then NUMA, DRIVER, KIND (docs: cli/_layout.py).
DEVICE_COLUMNS = {
    "NAME": Column("NAME"),
    "BDF": Column("BDF"),
    "KIND": Column("KIND", keep=3),
    "MODEL": Column("MODEL", identifier=False, keep=5),
    "LINK": Column("LINK", identifier=False),
    "NUMA": Column("NUMA", keep=1),
    "DRIVER": Column("DRIVER", keep=2),
    "SERIAL": Column("SERIAL", keep=0),
}


def device_table(topo: Topology, listing: DeviceListing, width: int | None) -> Layout:
    names = ["NAME", "BDF", "MODEL", "LINK", "NUMA", "DRIVER", "SERIAL"]
    if listing.include_all:
        names.insert(2, "KIND")
    rows = []
    for row in listing.rows:
        fn = row.function
        model = esc(fn.model) if fn.accessible else f"[red]{esc(fn.model)} (not responding)[/]"
        cells = [
            esc(row.name or ""),
            esc(fn.id),
            model,
            link_text(fn.link, downtrained=topo.link_downtrained(fn.id)),
            _opt(fn.numa_node),
            esc(fn.driver) if fn.driver else ("[yellow]unbound[/]" if fn.is_accelerator else "-"),
            esc(fn.serial or "-"),
        ]
        if listing.include_all:
            cells.insert(2, fn.kind.value)
        rows.append(cells)
    return fit_table([DEVICE_COLUMNS[n] for n in names], rows, width)


def _label(topo: Topology, node: HostBridge | PciFunction) -> str:
    if isinstance(node, HostBridge):
        numa = f" NUMA {node.numa_node}" if node.numa_node is not None else ""
        return f"[bold]{esc(node.id)}[/] host bridge{numa}"
    parts = [f"[bold]{esc(node.id)}[/]", f"[cyan]{node.kind.value}[/]", esc(node.model)]
    if node.kind is not NodeKind.VIRTUAL_FUNCTION and node.link is not None:
        parts.append(link_text(node.link, downtrained=topo.link_downtrained(node.id)))
    if node.secondary_bus is not None:
        sub = node.subordinate_bus if node.subordinate_bus is not None else node.secondary_bus
        parts.append(f"[dim]{esc(f'[{node.secondary_bus:02x}-{sub:02x}]')}[/]")
    if node.card is not None:
        card = topo.cards[node.card]
        if card.top == node.id:
            parts.insert(0, f"[bold magenta]{card.name}[/]")
    if node.acs is not None and node.acs.p2p_blocked:
        parts.append("[yellow]ACS:p2p-redirect[/]")
    if node.driver:
        parts.append(f"[dim]({esc(node.driver)})[/]")
    if not node.accessible:
        parts.append("[bold red]NOT RESPONDING[/]")
    return " ".join(parts)


def topology_tree(topo: Topology) -> Tree:
    """The annotated tree; its header counts the functions it draws (never more or fewer)."""
    from rich.tree import Tree

    tree = Tree("")
    drawn = 0

    def add(branch: Tree, node_id: str) -> None:
        nonlocal drawn
        node = topo.node(node_id)
        drawn += isinstance(node, PciFunction)
        sub = branch.add(_label(topo, node))
        for child in topo.children.get(node_id, []):
            add(sub, child)

    for hb in topo.roots():
        add(tree, hb.id)
    tree.label = f"[bold]PCI topology[/] ({drawn} functions, {len(topo.cards)} cards)"
    return tree
