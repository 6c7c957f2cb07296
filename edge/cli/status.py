"""``edge status``: a running node's health for a person (tables) or a program (``--json``).

The node answers the control socket's ``health`` command with the same metrics its
``/metrics`` endpoint serves (:mod:`edge.health`), so this works whether or not ``[metrics]`` is
configured. Metrics this view does not know (another subsystem's collector) are listed at the
end as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from edge.cli.alarm import json_option, send_to_node
from edge.cli.output import dump_json

# rich and the control client are imported where they are used (edge/cli/__init__.py)


@click.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The running node's config file (locates its control socket).")  # fmt: skip
@json_option
def status(config_path: Path, as_json: bool) -> None:
    """Show a running node's health: readings/s, buses, queues, ledger, alerts.

    The same figures as the node's /metrics endpoint, read through its control socket. Exits 1
    with one line when no node runs with this config. --json prints the metrics as a list of
    {name, kind, help, samples: [{labels, value}]}.
    """
    result = send_to_node(config_path, {"action": "health"}, as_json=as_json)
    metrics: list[dict[str, Any]] = result["metrics"]
    if as_json:
        click.echo(dump_json({"ok": True, "node": result.get("node", ""), "metrics": metrics},
                             indent=True))  # fmt: skip
        return
    from rich.console import Console

    Console(highlight=False).print(*render_status(metrics))


class _Index:
    """Metrics by name, remembering which ones a table used."""

    def __init__(self, metrics: Iterable[dict[str, Any]]) -> None:
        self.by_name = {m["name"]: m for m in metrics}
        self.used: set[str] = set()

    def samples(self, name: str) -> list[dict[str, Any]]:
        self.used.add(name)
        return list(self.by_name.get(name, {}).get("samples", []))

    def value(self, name: str, **labels: str) -> float | None:
        for s in self.samples(name):
            if all(s["labels"].get(k) == v for k, v in labels.items()):
                return float(s["value"])
        return None


def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def render_status(metrics: list[dict[str, Any]]) -> list[Any]:
    """The rich renderables of ``edge status`` (a heading and one table per area)."""
    from rich.table import Table

    ix = _Index(metrics)
    info = ix.samples("edge_node_info")
    labels = info[0]["labels"] if info else {}
    uptime = ix.value("edge_node_uptime_seconds") or 0.0
    ix.used.add("edge_node_start_time_seconds")
    h, rest = divmod(int(uptime), 3600)
    out: list[Any] = [
        f"[bold]{labels.get('node', '?')}[/bold]  edge-qc {labels.get('version', '?')}, "
        f"up {h}h{rest // 60:02d}m{rest % 60:02d}s"
    ]

    devices = Table(title="Devices", title_justify="left")
    for col in ("bus", "device", "readings/s", "polls", "deadline misses", "backoff"):
        devices.add_column(col, justify="left" if col in ("bus", "device") else "right")
    quality = Table(title="Readings by quality", title_justify="left")
    for col in ("device", "good", "stale", "comm_fail", "config_error"):
        quality.add_column(col, justify="left" if col == "device" else "right")
    for s in ix.samples("edge_device_polls_total"):
        bus, dev = s["labels"]["bus"], s["labels"]["device"]
        devices.add_row(
            bus, dev, _n(ix.value("edge_device_readings_per_second", device=dev), 1),
            _n(s["value"]), _n(ix.value("edge_device_deadline_misses_total", bus=bus, device=dev)),
            "yes" if ix.value("edge_device_backoff", bus=bus, device=dev) else "no",
        )  # fmt: skip
        q = {x["labels"]["quality"]: x["value"] for x in ix.samples("edge_readings_total")
             if x["labels"]["device"] == dev}  # fmt: skip
        quality.add_row(
            dev, *(_n(q.get(k, 0)) for k in ("good", "stale", "comm_fail", "config_error"))
        )
    out += [devices, quality]

    buses = Table(title="Buses", title_justify="left")
    for col in ("bus", "requests", "timeouts", "bad frames", "exceptions", "overruns", "load",
                "port"):  # fmt: skip
        buses.add_column(col, justify="left" if col == "bus" else "right")
    for s in ix.samples("edge_bus_requests_total"):
        bus = s["labels"]["bus"]
        util = ix.value("edge_bus_utilisation_ratio", bus=bus)
        buses.add_row(
            bus, _n(s["value"]), _n(ix.value("edge_bus_timeouts_total", bus=bus)),
            _n(ix.value("edge_bus_frame_errors_total", bus=bus)),
            _n(ix.value("edge_bus_exceptions_total", bus=bus)),
            _n(ix.value("edge_bus_poll_overruns_total", bus=bus)),
            "-" if util is None else f"{util:.1%}",
            "open" if ix.value("edge_bus_port_open", bus=bus) else "closed",
        )  # fmt: skip
    out.append(buses)

    queues = Table(title="Queues", title_justify="left")
    for col in ("queue", "depth", "capacity"):
        queues.add_column(col, justify="left" if col == "queue" else "right")
    for s in ix.samples("edge_queue_depth"):
        name = s["labels"]["queue"]
        queues.add_row(name, _n(s["value"]), _n(ix.value("edge_queue_capacity", queue=name)))
    out.append(queues)

    figures = Table(title="Ledger, alerts, alarms", title_justify="left", show_header=False)
    figures.add_column("what")
    figures.add_column("value", justify="right")
    commits = ix.value("edge_ledger_commits_total") or 0.0
    seconds = ix.value("edge_ledger_commit_seconds_total") or 0.0
    rows = [
        ("ledger head seq", _n(ix.value("edge_ledger_head_seq"))),
        ("entries committed (this run)", _n(ix.value("edge_ledger_entries_committed_total"))),
        ("commit latency mean / max",
         f"{1000 * seconds / commits:.1f} / "
         f"{1000 * (ix.value('edge_ledger_commit_seconds_max') or 0):.1f} ms" if commits else "-"),
        ("readings queue waits", _n(ix.value("edge_readings_blocked_total"))),
    ]  # fmt: skip
    if "edge_alerts_published_total" in ix.by_name:
        rows += [
            ("alerts published / dropped", f"{_n(ix.value('edge_alerts_published_total'))} / "
                                           f"{_n(ix.value('edge_alerts_dropped_total'))}"),
            ("broker", "connected" if ix.value("edge_mqtt_connected") else "not connected"),
        ]  # fmt: skip
    for s in ix.samples("edge_alarms"):
        rows.append((f"alarms {s['labels']['state']}", _n(s["value"])))
    for s in ix.samples("edge_commands_refused_total"):
        rows.append((f"commands refused ({s['labels']['via']})", _n(s["value"])))
    for what, value in rows:
        figures.add_row(what, value)
    out.append(figures)

    other = Table(title="Other", title_justify="left")
    other.add_column("metric")
    other.add_column("value", justify="right")
    for m in metrics:
        if m["name"] in ix.used:
            continue
        for s in m["samples"]:
            lab = ",".join(f"{k}={v}" for k, v in sorted(s["labels"].items()))
            other.add_row(
                m["name"] + (f"{{{lab}}}" if lab else ""), _n(s["value"], 3).rstrip("0").rstrip(".")
            )
    if other.row_count:
        out.append(other)
    return out
