"""Prometheus over HTTP: the families of accelctl.diagnostics.metrics, exposed by
prometheus_client (its collector, registry and exposition; nothing written by hand here).

Each scrape takes a fresh snapshot through the `snapshot` callable the caller gives (the CLI's:
scan the sysfs tree, run the diagnostics), so the numbers are as of the scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from accelctl.errors import InvalidRequestError

if TYPE_CHECKING:
    from accelctl.diagnostics.findings import Report
    from accelctl.topology import Topology

Snapshot = Callable[[], "tuple[Topology, Report]"]


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        from accelctl.errors import MissingDependencyError

        raise MissingDependencyError("prometheus_client") from None
    return prometheus_client


class AccelctlCollector:
    """A prometheus_client custom collector over one snapshot source."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        # Scrapes may overlap (two Prometheus servers, a slow scan): one scan at a time.
        self._lock = threading.Lock()
        self.scrapes = 0

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from accelctl.diagnostics.metrics import PREFIX, metric_families

        with self._lock:
            topo, report = self._snapshot()
            families = metric_families(topo, report)
            self.scrapes += 1
        for fam in families:
            names = [k for k, _ in fam.samples[0][0]] if fam.samples else []
            if fam.kind == "counter":
                metric = CounterMetricFamily(f"{PREFIX}_{fam.name.removesuffix('_total')}", fam.help,
                                             labels=names)
            else:
                metric = GaugeMetricFamily(f"{PREFIX}_{fam.name}", fam.help, labels=names)
            for labels, value in fam.samples:
                metric.add_metric([v for _, v in labels], value)
            yield metric


def parse_listen(addr: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (all addresses) or ``[V6]:PORT`` -> (host, port).

    Raises:
        InvalidRequestError: not one of those forms, or a port out of range.
    """
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidRequestError(f"--listen {addr!r} is not HOST:PORT",
                                  hint="e.g. --listen 127.0.0.1:9400, --listen :9400 or --listen [::1]:9400")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)


class MetricsServer:
    """The HTTP endpoint (``/metrics``) on a background thread."""

    def __init__(self, snapshot: Snapshot, listen: str) -> None:
        self.host, port = parse_listen(listen)
        client = _client()
        self.collector = AccelctlCollector(snapshot)
        self.registry = client.CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        try:
            self._server, self._thread = client.start_http_server(port, addr=self.host,
                                                                  registry=self.registry)
        except OSError as err:
            raise InvalidRequestError(f"cannot listen on {listen}: {err.strerror or err}") from None
        self.port = self._server.server_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
