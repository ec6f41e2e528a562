"""Links, judged in one place: which function is at the other end, what the link should train
to, and whether it trained below that ("downtrained").

Everything that says a link is downtrained asks here: the red marks of `list` and `topology`,
`diag` (LINK_DOWNTRAINED, LINK_BELOW_MANIFEST) and the metrics. A link is judged once, from its
downstream-facing end (a root or switch downstream port), so its two ends never disagree.

The rule, per dimension (speed and width, each on its own):

- trained now: the device's own view of the link when it answers config reads, else the port's
  (a dead device's link registers read garbage);
- expected: the lower of the two ends' capabilities, known only when both ends' capability is
  known. One end alone says nothing: a port at x8 of x16 whose device's capability is unknown may
  simply hold an x8 card, and calling that downtrained would be a false alarm;
- ``downtrained`` is True when a judged dimension trained below what both ends can do; False when
  every dimension is judged and none is below (and for a link that is down: no link is LINK_DOWN's
  business, not this one's); None (unknown) otherwise, and `diag` then says it could not check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from accelctl.topology.model import NodeKind, PciFunction

if TYPE_CHECKING:
    from accelctl.topology.graph import Topology


@dataclass(frozen=True, slots=True)
class LinkJudgement:
    """One link, judged from its downstream-facing port."""

    port: PciFunction
    device: PciFunction
    #: trained now; width None when no link state is known, 0 never (see `is_down`)
    speed_gts: float | None
    width: int | None
    #: no link trained (width 0)
    is_down: bool
    #: the lower capability of both ends; None when either end's is unknown
    cap_speed_gts: float | None
    cap_width: int | None

    @property
    def text(self) -> str:
        return f"{self.port.id} -> {self.device.id}"

    @property
    def width_short(self) -> bool:
        return self.width is not None and self.cap_width is not None and self.width < self.cap_width

    @property
    def speed_short(self) -> bool:
        return (self.speed_gts is not None and self.cap_speed_gts is not None
                and self.speed_gts < self.cap_speed_gts)

    @property
    def has_state(self) -> bool:
        """Something is known about how the link trained."""
        return self.is_down or self.width is not None or self.speed_gts is not None

    @property
    def downtrained(self) -> bool | None:
        """True / False / None (unknown), by the rule in the module docstring."""
        if self.is_down:
            return False
        if self.width_short or self.speed_short:
            return True
        judged_width = self.width is not None and self.cap_width is not None
        judged_speed = self.speed_gts is not None and self.cap_speed_gts is not None
        return False if judged_width and judged_speed else None

    @property
    def unjudged_reason(self) -> str | None:
        """Why `downtrained` is None, in words for `diag`'s not_checked; None when judged."""
        if self.downtrained is not None:
            return None
        if not self.has_state:
            return "no link state: no link attributes and no readable PCIe capability"
        return "the capability of one end of the link is unknown"


def _lower(a: float | int | None, b: float | int | None):  # type: ignore[no-untyped-def]
    return None if a is None or b is None else min(a, b)


def link_partner(topo: Topology, fn_id: str) -> PciFunction | None:
    """The function at the other end of `fn_id`'s link, or None (no link, or nothing there).

    A root or downstream port's link goes down to its child device (the device's lowest function
    that is not a VF: all functions of a device share the one link); every other Express
    function's link goes up to its parent port. VFs have no link of their own.
    """
    fns = topo.functions
    fn = fns[fn_id]
    if fn.kind.is_downstream_facing:
        for child_id in topo.children.get(fn_id, ()):
            child = fns.get(child_id)
            if child is not None and child.kind is not NodeKind.VIRTUAL_FUNCTION:
                return child
        return None
    if fn.kind is NodeKind.VIRTUAL_FUNCTION:
        return None
    parent = fns.get(fn.parent or "")
    if parent is not None and parent.kind.is_downstream_facing:
        return parent
    return None


def judge(port: PciFunction, device: PciFunction) -> LinkJudgement | None:
    """The link between a downstream-facing `port` and the `device` below it; None when the port
    has no link state or does not answer (then nothing about the link can be judged)."""
    port_link = port.link
    if port_link is None or not port.accessible:
        return None
    dev_link = device.link
    src = dev_link if dev_link is not None and device.accessible and dev_link.width else port_link
    return LinkJudgement(
        port=port,
        device=device,
        speed_gts=None if src.is_down else src.speed_gts,
        width=src.width or None,
        is_down=src.is_down,
        cap_speed_gts=_lower(port_link.max_speed_gts, dev_link.max_speed_gts if dev_link else None),
        cap_width=_lower(port_link.max_width, dev_link.max_width if dev_link else None),
    )


def link_of(topo: Topology, fn_id: str) -> LinkJudgement | None:
    """The judged link `fn_id` is an end of (either end), or None when it has none."""
    fn = topo.functions[fn_id]
    partner = link_partner(topo, fn_id)
    if partner is None:
        return None
    return judge(fn, partner) if fn.kind.is_downstream_facing else judge(partner, fn)


def all_links(topo: Topology) -> dict[str, LinkJudgement]:
    """Port id -> its judged link, for every downstream-facing port with a device below it."""
    out: dict[str, LinkJudgement] = {}
    for fn in topo.functions.values():
        if fn.kind.is_downstream_facing:
            device = link_partner(topo, fn.id)
            if device is not None:
                link = judge(fn, device)
                if link is not None:
                    out[fn.id] = link
    return out


def is_downtrained(topo: Topology, fn_id: str) -> bool | None:
    """Whether the link `fn_id` is an end of trained below what both ends can do (None: unknown
    or no link)."""
    link = link_of(topo, fn_id)
    return None if link is None else link.downtrained
