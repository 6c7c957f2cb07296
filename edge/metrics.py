"""The Prometheus endpoint (``[metrics] listen``): ``GET /metrics`` in the text exposition format.

A custom collector turns the node's :class:`~edge.health.HealthRegistry` into metric families at
each scrape (prometheus-client renders them), so the endpoint shows what the node's parts
count at that moment, with no second bookkeeping. The process collector adds the node
process's own CPU seconds and resident memory (``process_*``).

The HTTP side is a small asyncio server owned by the node's TaskGroup (task ``metrics``), not
prometheus-client's thread: one request per connection, a 10 s limit on reading it and on
answering, ``/metrics`` (and ``/``) answered, anything else 404. Imported only when
``[metrics]`` is configured: a node without it does not load prometheus-client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from edge.errors import EdgeError
from edge.health import HealthRegistry
from edge.log import event

__all__ = ["HealthCollector", "MetricsServer"]

_LIMIT = 10.0  # seconds to read a request and to send the answer


class HealthCollector(Collector):
    """The health registry's metrics as Prometheus metric families, read at each scrape."""

    def __init__(self, health: HealthRegistry) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        """Each health metric, with its labels."""
        for m in self._health.collect():
            labels = sorted({k for s in m.samples for k in s.labels})
            family: CounterMetricFamily | GaugeMetricFamily
            if m.kind == "counter":
                family = CounterMetricFamily(m.name, m.help, labels=labels)
            else:
                family = GaugeMetricFamily(m.name, m.help, labels=labels)
            for s in m.samples:
                family.add_metric([s.labels.get(k, "") for k in labels], s.value)
            yield family


class MetricsServer:
    """Serves ``/metrics`` on ``host:port`` until cancelled.

    Raises (from :meth:`run`):
        EdgeError: the address cannot be listened on (one line naming it and the config key).
    """

    def __init__(self, host: str, port: int, health: HealthRegistry) -> None:
        self.host, self.port = host, port
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(HealthCollector(health))
        ProcessCollector(registry=self._registry)
        self.scrapes = 0
        self.bound: tuple[str, int] | None = None  #: the address listened on (port 0 resolved)

    async def run(self) -> None:
        """Listen until cancelled."""
        try:
            server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            raise EdgeError(
                f"metrics.listen: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self.bound = server.sockets[0].getsockname()[:2]
        event("metrics.listening", address=f"{self.bound[0]}:{self.bound[1]}")
        async with server:
            await server.serve_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_LIMIT):
                request = await reader.readline()
                while (await reader.readline()).strip():  # headers: not needed
                    pass
            parts = request.decode("latin-1").split()
            if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET /metrics\n"
            elif parts[1].split("?")[0] in ("/metrics", "/"):
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
                self.scrapes += 1
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"see /metrics\n"
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")  # fmt: skip
            writer.write(head.encode("latin-1") + (b"" if parts[:1] == ["HEAD"] else body))
            async with asyncio.timeout(_LIMIT):
                await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeError):
            pass  # a client that hangs or goes away costs us nothing
        except Exception as exc:  # a collector bug answers nothing; the node runs on
            event("metrics.scrape_failed", logging.ERROR, error=repr(exc))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
