"""Prometheus text exposition (node_exporter textfile collector) of links, AER counters, cards
and diagnostic findings. Label names and metric names are a contract (docs/findings.md#metrics).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from accelctl.diagnostics.findings import CODES, Severity
from accelctl.topology.links import is_downtrained

if TYPE_CHECKING:
    from accelctl.diagnostics.findings import Report
    from accelctl.topology import Topology

PREFIX = "accelctl"
ENDPOINT_LABELS = ("bdf", "card", "endpoint", "global_id", "serial")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, object]]) -> str:
    inner = ",".join(f'{k}="{_escape("" if v is None else str(v))}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _num(value: float | int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {PREFIX}_{name} {help_text}")
        self.lines.append(f"# TYPE {PREFIX}_{name} {kind}")

    def sample(self, name: str, labels: Iterable[tuple[str, object]], value: float | int) -> None:
        self.lines.append(f"{PREFIX}_{name}{_labels(labels)} {_num(value)}")


def _endpoint_labels(topo: Topology) -> list[tuple[str, list[tuple[str, object]]]]:
    """(bdf, labels) for each accelerator endpoint in global-id order."""
    from accelctl.addressing.addresses import compute_addresses

    return [
        (a.bdf, [("bdf", a.bdf), ("card", a.card), ("endpoint", a.endpoint),
                 ("global_id", a.global_id), ("serial", a.serial or "")])
        for a in compute_addresses(topo).endpoints
    ]


def render_metrics(topo: Topology, report: Report) -> str:
    """The exposition text: every family has HELP and TYPE, samples are in a stable order."""
    w = _Writer()
    w.family("cards", "gauge", "Accelerator cards found.")
    w.sample("cards", (), len(topo.cards))
    w.family("endpoints", "gauge", "Accelerator endpoints found.")
    w.sample("endpoints", (), sum(len(c.endpoints) for c in topo.cards))
    eps = _endpoint_labels(topo)
    fns = topo.functions
    for name, attr, help_text in (
        ("link_speed_gts", "speed_gts", "Current link speed of the endpoint, GT/s."),
        ("link_max_speed_gts", "max_speed_gts", "Maximum link speed the endpoint supports, GT/s."),
        ("link_width", "width", "Current link width of the endpoint, lanes."),
        ("link_max_width", "max_width", "Maximum link width the endpoint supports, lanes."),
    ):
        w.family(name, "gauge", help_text)
        for bdf, labels in eps:
            link = fns[bdf].link
            value = getattr(link, attr) if link is not None else None
            if value is not None:
                w.sample(name, labels, value)
    w.family("link_downtrained", "gauge",
             "1 when the endpoint's link trained below what both ends can do, 0 when not; "
             "absent when that cannot be told.")
    for bdf, labels in eps:
        downtrained = is_downtrained(topo, bdf)
        if downtrained is not None:
            w.sample("link_downtrained", labels, int(downtrained))
    w.family("device_up", "gauge", "1 when the endpoint answers config reads, 0 when it reads all ones.")
    for bdf, labels in eps:
        w.sample("device_up", labels, 1 if fns[bdf].accessible else 0)
    # The classic text format wants the TYPE line to name the samples exactly (with _total).
    w.family("aer_errors_total", "counter", "AER error counters of the endpoint, by class and error.")
    for bdf, labels in eps:
        aer = fns[bdf].aer or {}
        for cls in ("correctable", "nonfatal", "fatal"):
            for err, count in sorted(aer.get(cls, {}).items()):
                if not err.startswith("TOTAL_ERR_"):
                    w.sample("aer_errors_total", [*labels, ("class", cls), ("error", err)], count)
    w.family("findings", "gauge", "Findings of accelctl diag, by code and severity.")
    counts = report.by_code()
    for code in sorted(CODES):
        for sev in Severity:
            n = counts.get((code, sev.value), 0)
            if n or sev is Severity.ERROR:
                w.sample("findings", [("code", code), ("severity", sev.value)], n)
    w.family("diag_level", "gauge", "Diagnostic level the findings were computed at.")
    w.sample("diag_level", (), report.level)
    return "\n".join(w.lines) + "\n"


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write the exposition so node_exporter never reads a half-written file."""
    from accelctl._files import write_text_atomically

    write_text_atomically(path, text)
