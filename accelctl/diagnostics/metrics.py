"""Prometheus text exposition (node_exporter textfile collector) of links, AER counters, cards
and diagnostic findings. Label names and metric names are a contract (docs/findings.md#metrics).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accelctl.diagnostics.findings import CODES, Severity
from accelctl.topology.links import is_downtrained
from accelctl.topology.model import NodeKind

if TYPE_CHECKING:
    from accelctl.diagnostics.findings import Report
    from accelctl.topology import Topology

PREFIX = "accelctl"
ENDPOINT_LABELS = ("bdf", "card", "endpoint", "global_id", "serial", "model")
ROOT_PORT_LABELS = ("bdf", "card", "serial", "model")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, object]]) -> str:
    inner = ",".join(f'{k}="{_escape("" if v is None else str(v))}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _num(value: float | int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


@dataclass(slots=True)
class Family:
    """One metric family, independent of how it is exposed (text here, prometheus_client in
    accelctl.fleet.prometheus). `name` has no prefix; a counter's ends in ``_total``."""

    name: str
    kind: str
    help: str
    samples: list[tuple[Labels, float | int]] = field(default_factory=list)

    def add(self, labels: Iterable[tuple[str, object]], value: float | int) -> None:
        self.samples.append((tuple((k, "" if v is None else str(v)) for k, v in labels), value))


Labels = tuple[tuple[str, str], ...]


def _endpoint_labels(topo: Topology) -> list[tuple[str, list[tuple[str, object]]]]:
    """(bdf, labels) for each accelerator endpoint in global-id order."""
    from accelctl.addressing.addresses import compute_addresses

    fns = topo.functions
    return [
        (a.bdf, [("bdf", a.bdf), ("card", a.card), ("endpoint", a.endpoint),
                 ("global_id", a.global_id), ("serial", a.serial or ""), ("model", fns[a.bdf].model)])
        for a in compute_addresses(topo).endpoints
    ]


def _root_ports(topo: Topology) -> list[tuple[str, list[tuple[str, object]]]]:
    """(bdf, labels) of each root port with accelerators below it, by BDF; `card` lists the
    cards below it ("0,1")."""
    cards: dict[str, set[int]] = {}
    fns = topo.functions
    for ep in topo.accelerators():
        for node in topo.ancestors(ep.id):
            if getattr(node, "kind", None) is NodeKind.ROOT_PORT:
                if ep.card is not None:
                    cards.setdefault(node.id, set()).add(ep.card)
                else:
                    cards.setdefault(node.id, set())
                break
    return [
        (bdf, [("bdf", bdf), ("card", ",".join(str(c) for c in sorted(cards[bdf]))),
               ("serial", fns[bdf].serial or ""), ("model", fns[bdf].model)])
        for bdf in sorted(cards, key=lambda b: fns[b].bdf)
    ]


_LINK_FAMILIES = (
    ("link_speed_gts", "speed_gts", "Current link speed of the {what}, GT/s."),
    ("link_max_speed_gts", "max_speed_gts", "Maximum link speed the {what} supports, GT/s."),
    ("link_width", "width", "Current link width of the {what}, lanes."),
    ("link_max_width", "max_width", "Maximum link width the {what} supports, lanes."),
)


def _link_families(prefix: str, what: str, rows, fns) -> list[Family]:  # type: ignore[no-untyped-def]
    out = []
    for name, attr, help_text in _LINK_FAMILIES:
        fam = Family(prefix + name, "gauge", help_text.format(what=what))
        for bdf, labels in rows:
            link = fns[bdf].link
            value = getattr(link, attr) if link is not None else None
            if value is not None:
                fam.add(labels, value)
        out.append(fam)
    return out


def _aer_family(name: str, what: str, rows, fns) -> Family:  # type: ignore[no-untyped-def]
    fam = Family(name, "counter", f"AER error counters of the {what}, by class and error.")
    for bdf, labels in rows:
        aer = fns[bdf].aer or {}
        for cls in ("correctable", "nonfatal", "fatal"):
            for err, count in sorted(aer.get(cls, {}).items()):
                if not err.startswith("TOTAL_ERR_"):
                    fam.add([*labels, ("class", cls), ("error", err)], count)
    return fam


def metric_families(topo: Topology, report: Report) -> list[Family]:
    """Every family, samples in a stable order (the order of the text exposition)."""
    fns = topo.functions
    eps = _endpoint_labels(topo)
    ports = _root_ports(topo)
    cards = Family("cards", "gauge", "Accelerator cards found.")
    cards.add((), len(topo.cards))
    endpoints = Family("endpoints", "gauge", "Accelerator endpoints found.")
    endpoints.add((), sum(len(c.endpoints) for c in topo.cards))
    out = [cards, endpoints, *_link_families("", "endpoint", eps, fns)]
    dt = Family("link_downtrained", "gauge",
                "1 when the endpoint's link trained below what both ends can do, 0 when not; "
                "absent when that cannot be told.")
    for bdf, labels in eps:
        downtrained = is_downtrained(topo, bdf)
        if downtrained is not None:
            dt.add(labels, int(downtrained))
    out.append(dt)
    up = Family("device_up", "gauge", "1 when the endpoint answers config reads, 0 when it reads all ones.")
    for bdf, labels in eps:
        up.add(labels, 1 if fns[bdf].accessible else 0)
    out.append(up)
    out.append(_aer_family("aer_errors_total", "endpoint", eps, fns))
    pairs = Family("p2p_pairs", "gauge",
                   "Pairs of accelerator endpoints by whether PCIe peer-to-peer works between them "
                   "(true, false, unknown; docs/matrix.md).")
    for state, n in _p2p_pair_counts(topo).items():
        pairs.add([("state", state)], n)
    out.append(pairs)
    found = Family("findings", "gauge", "Findings of accelctl diag, by code and severity.")
    counts = report.by_code()
    for code in sorted(CODES):
        for sev in Severity:
            n = counts.get((code, sev.value), 0)
            if n or sev is Severity.ERROR:
                found.add([("code", code), ("severity", sev.value)], n)
    out.append(found)
    level = Family("diag_level", "gauge", "Diagnostic level the findings were computed at.")
    level.add((), report.level)
    out.append(level)
    out.extend(_link_families("root_port_", "root port", ports, fns))
    port_up = Family("root_port_link_up", "gauge", "1 when the root port's link is trained (width > 0).")
    port_dt = Family("root_port_link_downtrained", "gauge",
                     "1 when the root port's link trained below what both of its ends can do, 0 when "
                     "not; absent when that cannot be told.")
    for bdf, labels in ports:
        link = fns[bdf].link
        if link is not None and link.width is not None:
            port_up.add(labels, 0 if link.is_down else 1)
        downtrained = is_downtrained(topo, bdf)
        if downtrained is not None:
            port_dt.add(labels, int(downtrained))
    out.extend([port_up, port_dt, _aer_family("root_port_aer_errors_total", "root port", ports, fns)])
    return out


def render_metrics(topo: Topology, report: Report) -> str:
    """The exposition text: every family has HELP and TYPE, samples are in a stable order."""
    lines: list[str] = []
    for fam in metric_families(topo, report):
        # The classic text format wants the TYPE line to name the samples exactly (with _total).
        lines.append(f"# HELP {PREFIX}_{fam.name} {fam.help}")
        lines.append(f"# TYPE {PREFIX}_{fam.name} {fam.kind}")
        lines.extend(f"{PREFIX}_{fam.name}{_labels(labels)} {_num(value)}" for labels, value in fam.samples)
    return "\n".join(lines) + "\n"


def _p2p_pair_counts(topo: Topology) -> dict[str, int]:
    """Unordered pairs of distinct accelerator endpoints, by P2P verdict (all three states are
    always present, so a scrape tells "none unknown" from "not computed")."""
    from accelctl.diagnostics.matrix import topology_matrix

    p2p = topology_matrix(topo).p2p
    counts = {"true": 0, "false": 0, "unknown": 0}
    for i, row in enumerate(p2p):
        for ok in row[i + 1:]:
            counts["unknown" if ok is None else "true" if ok else "false"] += 1
    return counts


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write the exposition so node_exporter never reads a half-written file."""
    from accelctl._files import write_text_atomically

    write_text_atomically(path, text)
