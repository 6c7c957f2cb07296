"""The health model (edge.health), its Prometheus rendering (edge.metrics) and ``[metrics]``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.config import parse_config
from edge.errors import ConfigError, EdgeError
from edge.health import HealthRegistry, Metric, NodeHealth, RateWindow, Sample, metric
from edge.metrics import MetricsServer
from edge.readings import Quality, Reading

NODE = """
[node]
id = "gw"
data_dir = "var"

[buses.plc]
kind = "tcp"
address = "127.0.0.1:5020"

[devices.plant]
bus = "plc"
unit = 1

[points.p]
device = "plant"
register = 0
"""


def test_metrics_is_off_unless_configured_and_listens_on_loopback_by_default() -> None:
    assert parse_config(NODE, Path("n.toml")).metrics is None
    cfg = parse_config(NODE + "\n[metrics]\n", Path("n.toml"))
    assert cfg.metrics is not None
    assert cfg.metrics.address == ("127.0.0.1", 9108)
    cfg = parse_config(NODE + '\n[metrics]\nlisten = "0.0.0.0:9200"\n', Path("n.toml"))
    assert cfg.metrics is not None
    assert cfg.metrics.address == ("0.0.0.0", 9200)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('listen = "9108"', "n.toml:19: metrics.listen: expected host:port, got '9108'"),
        ("listen = 9108", "n.toml:19: metrics.listen: expected a string, got an integer 9108"),
        ('port = "9108"', "n.toml:19: metrics.port: unknown key"),
    ],
)
def test_a_bad_metrics_table_is_one_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(NODE + "\n[metrics]\n" + text + "\n", Path("n.toml"))
    assert err.value.problems[0].startswith(expected)


def test_a_failing_source_is_left_out_and_counted() -> None:
    reg = HealthRegistry()
    reg.add("good", lambda now: [metric("x_total", "counter", "x", Sample(now))])

    def broken(now: float) -> Iterable[Metric]:
        raise RuntimeError("bug")

    reg.add("broken", broken)
    got = {m.name: m for m in reg.collect(5.0)}
    assert got["x_total"].samples[0].value == 5.0
    assert got["edge_health_source_failures_total"].samples[0].value == 1.0
    reg.remove("broken")
    assert reg.names == ("good",)
    assert {m.name for m in reg.collect(6.0)} == {"x_total", "edge_health_source_failures_total"}


def test_rate_window_covers_the_last_span_or_since_start() -> None:
    t = [0.0]
    w = RateWindow(span=60.0, clock=lambda: t[0])
    w.start({"a": 0})
    t[0] = 10.0
    assert w.rates({"a": 100}) == {"a": 10.0}  # since start
    t[0] = 20.0
    assert w.rates({"a": 300}) == {"a": 15.0}  # still from the start: no sample 60 s old
    t[0] = 90.0
    # the base moves to the newest sample at least 60 s old (t=20)
    assert w.rates({"a": 1000}) == {"a": 10.0}


def test_node_health_counts_readings_by_device_and_quality() -> None:
    h = NodeHealth("gw", {"p": "plant", "q": "plant", "r": "oven"})
    h.observe([Reading("p", 1.0, 1.0, Quality.GOOD), Reading("q", 1.0, None, Quality.COMM_FAIL),
               Reading("r", 1.0, 2.0, Quality.GOOD)])  # fmt: skip
    assert h.readings[("plant", "good")] == 1
    assert h.readings[("plant", "comm_fail")] == 1
    assert h.per_device() == {"oven": 1, "plant": 2}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _get(port: int, path: str) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = (await reader.read()).decode()
    writer.close()
    head, _, body = data.partition("\r\n\r\n")
    return head.splitlines()[0], body


async def test_the_endpoint_renders_every_source_and_answers_404_elsewhere() -> None:
    reg = HealthRegistry()
    reg.add("outbox", lambda now: [
        metric("edge_outbox_depth", "gauge", "Entries not yet delivered.",
               Sample(7.0, {"stream": "alarms"})),
        metric("edge_outbox_delivered_total", "counter", "Delivered.", Sample(3.0)),
    ])  # fmt: skip
    port = _port()
    server = MetricsServer("127.0.0.1", port, reg)
    task = asyncio.create_task(server.run())
    try:
        for _ in range(100):
            if server.bound is not None:
                break
            await asyncio.sleep(0.02)
        status, body = await _get(port, "/metrics")
        assert status == "HTTP/1.1 200 OK"
        families = {f.name: f for f in text_string_to_metric_families(body)}
        depth = families["edge_outbox_depth"]
        assert depth.type == "gauge"
        assert [(s.labels, s.value) for s in depth.samples] == [({"stream": "alarms"}, 7.0)]
        delivered = families["edge_outbox_delivered"]  # the parser strips _total
        assert delivered.type == "counter"
        assert delivered.samples[0].name == "edge_outbox_delivered_total"
        assert "process_resident_memory_bytes" in {
            s.name for f in families.values() for s in f.samples
        }
        status, _ = await _get(port, "/other")
        assert status == "HTTP/1.1 404 Not Found"
        assert server.scrapes == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_address_in_use_is_one_line_naming_the_key() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(EdgeError) as err:
            await MetricsServer("127.0.0.1", port, HealthRegistry()).run()
    assert str(err.value).startswith(f"metrics.listen: cannot listen on 127.0.0.1:{port}: ")
    assert "\n" not in str(err.value)
