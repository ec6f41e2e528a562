"""Which rules run at which level, and the codes each may emit.

Levels nest (a higher level runs everything below it):
  1  presence and links: cards and endpoints there, devices answering, links up and trained
  2  + health and configuration: AER counters, ACS, drivers, bus-number exhaustion, BARs vs peers
  3  + deep consistency: bus ranges of every bridge, bridge windows against the BARs below them
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from accelctl.diagnostics.context import RuleContext
from accelctl.diagnostics.findings import Finding
from accelctl.diagnostics.rules import acs, bars, buses, health, links, presence, visibility

MIN_LEVEL, MAX_LEVEL, DEFAULT_LEVEL = 1, 3, 3


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    level: int
    codes: tuple[str, ...]
    check: Callable[[RuleContext], Iterable[Finding]]


RULES: tuple[Rule, ...] = (
    Rule("no_accelerators", 1, ("NO_ACCELERATORS",), presence.no_accelerators),
    Rule("card_counts", 1, ("CARD_COUNT_MISMATCH",), presence.card_counts),
    Rule("card_entries", 1, ("CARD_MISSING", "CARD_MISMATCH"), presence.card_entries),
    Rule("endpoints_missing", 1, ("ENDPOINT_MISSING",), presence.endpoints_missing),
    Rule("inaccessible", 1, ("DEVICE_INACCESSIBLE",), health.inaccessible),
    Rule("link_down", 1, ("LINK_DOWN",), links.link_down),
    Rule("link_downtrained", 1, ("LINK_DOWNTRAINED",), links.link_downtrained),
    Rule("link_below_manifest", 1, ("LINK_BELOW_MANIFEST",), links.link_below_manifest),
    Rule("limited_visibility", 1, ("LIMITED_VISIBILITY",), visibility.limited_visibility),
    Rule("aer_errors", 2, ("AER_ERRORS",), health.aer_errors),
    Rule("acs_p2p_blocked", 2, ("ACS_P2P_BLOCKED",), acs.acs_p2p_blocked),
    Rule("driver_unbound", 2, ("DRIVER_UNBOUND",), health.driver_unbound),
    Rule("bus_numbers_exhausted", 2, ("BUS_NUMBERS_EXHAUSTED",), buses.bus_numbers_exhausted),
    Rule("bar_unassigned", 2, ("BAR_UNASSIGNED",), bars.bar_unassigned),
    Rule("bus_range_conflict", 3, ("BUS_RANGE_CONFLICT",), buses.bus_range_conflict),
    Rule("bridge_windows", 3, ("BAR_UNASSIGNED",), bars.bridge_windows),
)


def rules_for(level: int) -> list[Rule]:
    return [r for r in RULES if r.level <= level]
