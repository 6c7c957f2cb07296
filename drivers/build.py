"""From a validated node config to one poller per bus, rejecting maps that cannot work."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from edge.config import BusConfig, NodeConfig, PointConfig
from edge.drivers.base import BusPoller
from edge.drivers.parsers import fields_of, make_parser
from edge.drivers.planner import point_problems
from edge.drivers.scheduler import DeviceRuntime, ModbusPoller
from edge.drivers.tcp import TcpTransport
from edge.drivers.transport import Link, ModbusTransport
from edge.errors import ConfigError

__all__ = ["build_pollers", "check_config", "default_link"]


def check_config(config: NodeConfig, points: list[PointConfig] | None = None) -> list[str]:
    """Every reason the register maps cannot be polled, one line each (empty: fine)."""
    src = config.source
    problems: list[str] = []
    chosen = list(config.points.values()) if points is None else points
    for bus in config.buses.values():
        if bus.kind == "line":
            try:
                make_parser(bus)
            except ValueError as exc:
                problems.append(f"{src}: buses.{bus.name}: {exc}")
    units: dict[tuple[str, int], str] = {}
    for dev in config.devices.values():
        bus = config.buses[dev.bus]
        if bus.kind != "line":
            other = units.setdefault((dev.bus, dev.unit), dev.name)
            if other != dev.name:
                problems.append(
                    f"{src}: devices.{dev.name}.unit: unit {dev.unit} on bus {dev.bus}"
                    f" is already device {other!r}"
                )
    for p in chosen:
        dev = config.devices[p.device]
        bus = config.buses[dev.bus]
        if bus.kind == "line":
            known = fields_of(bus)
            if known is not None and p.field not in known:
                problems.append(
                    f"{src}: points.{p.name}.field: parser {bus.parser!r} has no field {p.field!r}"
                    f" (fields: {', '.join(known)})"
                )
            continue
        problems.extend(f"{src}: points.{p.name}: {msg}" for msg in point_problems(dev, p))
    return problems


def default_link(bus: BusConfig) -> Link:
    """The link a bus is polled through: RTU, TCP or a serial line, by ``bus.kind``.

    The serial drivers (pyserial, minimalmodbus: ~0.6 MB resident) are imported only for a
    node that has such a bus.
    """
    if bus.kind == "line":
        from edge.drivers.line import LineTransport

        return LineTransport(bus)
    if bus.kind == "rtu":
        from edge.drivers.rtu import RtuTransport

        return RtuTransport(bus)
    return TcpTransport(bus)


def build_pollers(
    config: NodeConfig,
    only: set[str] | None = None,
    *,
    links: Callable[[BusConfig], Link] = default_link,
) -> list[BusPoller]:
    """One poller per bus that has devices (all buses when ``only`` is None).

    Args:
        config: a loaded node config.
        only: restrict to these point names (``edge read --point``).
        links: makes each bus's link; the commissioning tools pass one that watches every
            transaction (a LineTransport for line buses, a ModbusTransport otherwise).

    Raises:
        ConfigError: a point cannot be read as configured (too wide, forbidden, out of range),
            two devices share a unit id on one bus, or a line parser is unusable.
    """
    points = [p for p in config.points.values() if only is None or p.name in only]
    problems = check_config(config, points)
    if problems:
        raise ConfigError(problems)
    by_device: dict[str, list[PointConfig]] = defaultdict(list)
    for p in points:
        by_device[p.device].append(p)
    pollers: list[BusPoller] = []
    for bus in config.buses.values():
        devices = [
            d for d in config.devices.values() if d.bus == bus.name and by_device.get(d.name)
        ]
        if not devices:
            continue
        if bus.kind == "line":
            from edge.drivers.line import LinePoller, LineTransport

            runtimes = [DeviceRuntime.build(d, by_device[d.name], plan=False) for d in devices]
            line = links(bus)
            assert isinstance(line, LineTransport), "a line bus needs a LineTransport"
            pollers.append(LinePoller(bus, runtimes, line))
            continue
        runtimes = [DeviceRuntime.build(d, by_device[d.name]) for d in devices]
        transport = links(bus)
        assert isinstance(transport, ModbusTransport), "a Modbus bus needs a ModbusTransport"
        pollers.append(ModbusPoller(bus, runtimes, transport))
    return pollers
