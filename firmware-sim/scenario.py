"""Scenario files: a production line described in YAML (devices, register maps, models, faults).

A scenario is loaded with :func:`load_scenario` from a shipped name (``bottling``, ``cold-room``,
``demo``: the files in ``firmware-sim/scenarios/``, installed as ``edge.firmware_sim.scenarios``)
or a path. YAML 1.2 (ruamel.yaml), so ``no`` stays a string and ``0123`` is not octal. Every problem in the file is collected and
raised together as one :class:`~edge.errors.ConfigError`, each line formatted as
``<file>:<line>:<col>: <key path>: <message>``. The file format is documented in
docs/reference/simulator.md.
"""

from __future__ import annotations

import difflib
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from edge.errors import ConfigError
from edge.firmware_sim.faults import FAULTS, check_fault
from edge.firmware_sim.models import _COMMON as _MODEL_COMMON
from edge.firmware_sim.models import MODEL_PARAMS
from edge.firmware_sim.registers import DATA_TYPES, ORDERS, TABLES, word_count
from edge.firmware_sim.yamlreader import YamlReader, kind_name

__all__ = [
    "BUS_KINDS",
    "DEVICE_KINDS",
    "Scenario",
    "ScenarioBus",
    "ScenarioDevice",
    "ScenarioEvent",
    "ScenarioPoint",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
]

BUS_KINDS = ("rtu", "tcp", "line")
DEVICE_KINDS = ("modbus", "scale", "scanner", "thermometer")
_DURATION_PARAMS = ("tau", "period", "step")
_TABLE_SIZES = {"holding": 100, "input": 100, "coil": 64, "discrete": 64}


@dataclass(frozen=True, slots=True)
class ScenarioBus:
    """One line: an RS-485 bus (rtu), a Modbus TCP endpoint (tcp) or a serial line (line)."""

    name: str
    kind: str
    baudrate: int = 19200
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1
    turnaround: float = 0.0  #: slave processing time before replying, seconds
    line_ending: str = "\r\n"  #: serial lines
    port: int = (
        0  #: tcp buses: loopback port to listen on (0: a free one, printed and in ports.json)
    )


@dataclass(frozen=True, slots=True)
class ScenarioPoint:
    """One value of a device: where it lives and what drives it."""

    name: str
    table: str = "holding"
    register: int = 0
    type: str = "uint16"
    order: str = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    length: int = 1
    unit: str = ""
    model: str = "constant"
    params: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScenarioDevice:
    """One device on a bus."""

    name: str
    bus: str
    kind: str = "modbus"
    unit: int = 1
    tables: Mapping[str, int] = field(default_factory=lambda: dict(_TABLE_SIZES))
    points: Mapping[str, ScenarioPoint] = field(default_factory=dict)
    interval: float = 0.0  #: line devices: seconds between lines sent unasked (0: only on query)
    query: str = ""  #: line devices: command answered with a line ("" = none)
    format: str = ""  #: line devices: the line template (see docs)
    settle: float = 0.3  #: scales: seconds the reading is unstable (US) after a change
    tare: float = 0.0  #: scales: tare; non-zero makes the scale report net (NT)
    lots: tuple[tuple[float, str], ...] = ()  #: scanners: (from time, lot code)


@dataclass(frozen=True, slots=True)
class ScenarioEvent:
    """A scheduled change: model parameters (``set``) or a fault, from ``at`` to ``until``."""

    at: float
    until: float | None
    device: str
    point: str | None = None
    set: Mapping[str, float] = field(default_factory=dict)
    fault: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole simulated line."""

    name: str
    description: str
    source: Path | None
    buses: Mapping[str, ScenarioBus]
    devices: Mapping[str, ScenarioDevice]
    schedule: tuple[ScenarioEvent, ...] = ()


def list_scenarios() -> dict[str, str]:
    """Shipped scenarios: name -> first line of their description."""
    out = {}
    for entry in sorted(
        importlib.resources.files("edge.firmware_sim.scenarios").iterdir(), key=lambda e: e.name
    ):
        if entry.name.endswith(".yaml"):
            name = entry.name.removesuffix(".yaml")
            try:
                out[name] = load_scenario(name).description.strip().splitlines()[0]
            except (ConfigError, IndexError):
                out[name] = ""
    return out


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a shipped scenario by name, or a scenario file by path.

    Raises:
        ConfigError: the file is missing, not YAML, or has mistakes (all of them listed).
    """
    text_name = str(name_or_path)
    path = Path(name_or_path)
    if not path.suffix and "/" not in text_name:
        shipped = importlib.resources.files("edge.firmware_sim.scenarios").joinpath(
            f"{text_name}.yaml"
        )
        if shipped.is_file():
            return parse_scenario(
                shipped.read_text("utf-8"), Path(str(shipped)), display=f"{text_name}.yaml"
            )
        known = ", ".join(sorted(list_names()))
        raise ConfigError(
            f"{text_name}: no such scenario (shipped: {known}; or give a path to a .yaml file)"
        )
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_scenario(text, path)


def list_names() -> list[str]:
    """Names of the shipped scenarios."""
    root = importlib.resources.files("edge.firmware_sim.scenarios")
    return [e.name.removesuffix(".yaml") for e in root.iterdir() if e.name.endswith(".yaml")]


def parse_scenario(text: str, source: Path | None, *, display: str | None = None) -> Scenario:
    """Parse scenario YAML text; ``source`` names the file in messages.

    Raises:
        ConfigError: with every problem found.
    """
    shown = display or (str(source) if source is not None else "<scenario>")
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{shown}{where}: not valid YAML: {exc.problem or exc.context}") from None
    except YAMLError as exc:
        raise ConfigError(f"{shown}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, CommentedMap):
        raise ConfigError(
            f"{shown}: a scenario must be a mapping with buses and devices, got {kind_name(doc)}"
        )
    r = YamlReader(shown)
    root = CommentedMap({"": doc})
    r.mapping(root, "", "", ("name", "description", "buses", "devices", "schedule"))
    name = r.get(doc, "", "name", str, source.stem if source is not None else "scenario")
    description = r.get(doc, "", "description", str, "")
    buses = {}
    for bus_name, raw in r.mapping(doc, "buses", "buses").items():
        bus = _bus(r, doc["buses"], str(bus_name), raw)
        if bus is not None:
            buses[str(bus_name)] = bus
    if "buses" not in doc:
        r.problem(doc, None, "buses", "missing required key")
    devices = {}
    devs = r.mapping(doc, "devices", "devices")
    if "devices" not in doc:
        r.problem(doc, None, "devices", "missing required key")
    for dev_name, raw in devs.items():
        device = _device(r, devs, str(dev_name), raw, buses)
        if device is not None:
            devices[str(dev_name)] = device
    _check_bus_sharing(r, devs, devices, buses)
    schedule = _schedule(r, doc, devices)
    if r.problems:
        raise ConfigError(r.problems)
    return Scenario(name, description, source, buses, devices, tuple(schedule))


def _bus(r: YamlReader, parent: CommentedMap, name: str, raw: Any) -> ScenarioBus | None:
    p = f"buses.{name}"
    s = r.mapping(
        parent,
        name,
        p,
        ("kind", "baudrate", "bytesize", "parity", "stopbits", "turnaround", "line_ending", "port"),
    )
    if not isinstance(raw, CommentedMap):
        return None
    kind = r.get(s, p, "kind", str, None, required=True, choices=BUS_KINDS)
    baud = r.get(s, p, "baudrate", int, 19200, low=300, high=4_000_000)
    return ScenarioBus(
        name,
        kind or "rtu",
        baudrate=baud,
        bytesize=r.get(s, p, "bytesize", int, 8, low=5, high=8),
        parity=r.get(s, p, "parity", str, "N", choices=("N", "E", "O")),
        stopbits=r.get(s, p, "stopbits", int, 1, low=1, high=2),
        turnaround=r.duration(s, p, "turnaround", 0.0) or 0.0,
        line_ending=r.get(s, p, "line_ending", str, "\r\n"),
        port=r.get(s, p, "port", int, 0, low=0, high=65535),
    )


_DEVICE_KEYS = (
    "bus",
    "kind",
    "unit",
    "tables",
    "points",
    "interval",
    "query",
    "format",
    "settle",
    "tare",
    "lots",
)
_POINT_KEYS = (
    "table",
    "register",
    "type",
    "order",
    "scale",
    "offset",
    "length",
    "unit",
    "model",
    "value",
)


def _device(
    r: YamlReader, parent: CommentedMap, name: str, raw: Any, buses: Mapping[str, ScenarioBus]
) -> ScenarioDevice | None:
    p = f"devices.{name}"
    s = r.mapping(parent, name, p, _DEVICE_KEYS)
    if not isinstance(raw, CommentedMap):
        return None
    bus_name = r.get(s, p, "bus", str, None, required=True)
    bus = buses.get(bus_name) if bus_name is not None else None
    if bus_name is not None and bus is None:
        near = difflib.get_close_matches(bus_name, list(buses), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        r.problem(s, "bus", f"{p}.bus", f"no bus named {bus_name!r}{hint}", on_value=True)
    default_kind = "scale" if bus is not None and bus.kind == "line" else "modbus"
    kind = r.get(s, p, "kind", str, default_kind, choices=DEVICE_KINDS)
    if bus is not None and (bus.kind == "line") != (kind != "modbus"):
        r.problem(
            s,
            "kind" if "kind" in s else "bus",
            p,
            f"a {kind} device cannot sit on a {bus.kind} bus",
        )
    unit = r.get(s, p, "unit", int, 1, low=1, high=247)
    tables = dict(_TABLE_SIZES)
    tsec = r.mapping(s, "tables", f"{p}.tables", TABLES)
    for t in TABLES:
        tables[t] = r.get(tsec, f"{p}.tables", t, int, tables[t], low=0, high=65536)
    points = {}
    psec = r.mapping(s, "points", f"{p}.points")
    for pname, praw in psec.items():
        point = _point(r, psec, f"{p}.points", str(pname), praw, tables, kind)
        if point is not None:
            points[str(pname)] = point
    if kind == "modbus":
        _check_overlaps(r, psec, f"{p}.points", points)
    elif not points and kind != "scanner":
        r.problem(
            s,
            "points" if "points" in s else None,
            f"{p}.points",
            f"a {kind} needs one point (its reading)",
        )
    lots: list[tuple[float, str]] = []
    lsec = s.get("lots")
    if lsec is not None:
        if not isinstance(lsec, CommentedSeq):
            r.problem(
                s, "lots", f"{p}.lots", f"expected a list, got {kind_name(lsec)}", on_value=True
            )
        else:
            for i, item in enumerate(lsec):
                lp = f"{p}.lots[{i}]"
                if not isinstance(item, CommentedMap):
                    r.problem(
                        lsec, i, lp, f"expected a mapping with at and code, got {kind_name(item)}"
                    )
                    continue
                r.mapping(lsec, i, lp, ("at", "code"))
                at = r.duration(item, lp, "at", 0.0, required=True)
                code = r.get(item, lp, "code", str, None, required=True)
                if code is not None and at is not None:
                    lots.append((at, code))
    if kind == "scanner" and not lots:
        r.problem(
            s, "lots" if "lots" in s else None, f"{p}.lots", "a scanner needs at least one lot code"
        )
    if lots != sorted(lots, key=lambda x: x[0]):
        r.problem(s, "lots", f"{p}.lots", "lot changes must be in time order")
    return ScenarioDevice(
        name,
        bus_name or "",
        kind=kind,
        unit=unit,
        tables=tables,
        points=points,
        interval=r.duration(s, p, "interval", 0.0, zero_ok=False) or 0.0,
        query=r.get(s, p, "query", str, ""),
        format=r.get(s, p, "format", str, ""),
        settle=r.duration(s, p, "settle", 0.3) or 0.0,
        tare=float(r.get(s, p, "tare", (int, float), 0.0)),
        lots=tuple(lots),
    )


def _point(
    r: YamlReader,
    parent: CommentedMap,
    base: str,
    name: str,
    raw: Any,
    tables: Mapping[str, int],
    kind: str,
) -> ScenarioPoint | None:
    p = f"{base}.{name}"
    s = r.mapping(parent, name, p, _POINT_KEYS)
    if not isinstance(raw, CommentedMap):
        return None
    table = r.get(s, p, "table", str, "holding", choices=TABLES)
    dtype = r.get(
        s, p, "type", str, "bool" if table in ("coil", "discrete") else "uint16", choices=DATA_TYPES
    )
    register = r.get(s, p, "register", int, 0, required=kind == "modbus", low=0, high=65535)
    length = r.get(s, p, "length", int, 1, low=1, high=123)
    scale = float(r.get(s, p, "scale", (int, float), 1.0))
    if scale == 0:
        r.problem(s, "scale", f"{p}.scale", "scale must not be 0", on_value=True)
        scale = 1.0
    if kind == "modbus" and register + word_count(dtype, length) > tables.get(table, 0):
        last = register + word_count(dtype, length) - 1
        size = tables.get(table, 0)
        message = f"{table} {register}..{last} lies outside the device's {table} table"
        r.problem(
            s,
            "register",
            f"{p}.register",
            f"{message} (size {size}; set tables.{table})",
            on_value=True,
        )
    model, params = "constant", {}
    if "model" in s and "value" in s:
        r.problem(s, "value", p, "give either a model or a fixed value, not both")
    if "value" in s:
        value = r.get(s, p, "value", (int, float, bool), 0)
        params = {"value": float(value)}
    elif "model" in s:
        model, params = _model(r, s, f"{p}.model")
    return ScenarioPoint(
        name,
        table,
        register,
        dtype,
        order=r.get(s, p, "order", str, "ABCD", choices=ORDERS),
        scale=scale,
        offset=float(r.get(s, p, "offset", (int, float), 0.0)),
        length=length,
        unit=r.get(s, p, "unit", str, ""),
        model=model,
        params=params,
    )


def _model(r: YamlReader, parent: CommentedMap, p: str) -> tuple[str, dict[str, float]]:
    s = r.mapping(parent, "model", p)
    kind = r.get(s, p, "kind", str, None, required=True, choices=tuple(MODEL_PARAMS))
    if kind is None:
        return "constant", {}
    known = ("kind", *MODEL_PARAMS[kind], *_MODEL_COMMON)
    r.mapping(parent, "model", p, known)
    return kind, _params(r, s, p, MODEL_PARAMS[kind], skip=("kind",))


def _params(
    r: YamlReader, s: CommentedMap, p: str, known: Mapping[str, Any], skip: tuple[str, ...] = ()
) -> dict[str, float]:
    params: dict[str, float] = {}
    for key in s:
        if key in skip or (key not in known and key not in _MODEL_COMMON):
            continue
        if key in _DURATION_PARAMS:
            seconds = r.duration(s, p, key, None, zero_ok=False)
            if seconds is not None:
                params[key] = seconds
        else:
            value = r.get(s, p, key, (int, float), None)
            if value is not None:
                params[key] = float(value)
    return params


def _check_overlaps(
    r: YamlReader, psec: CommentedMap, p: str, points: Mapping[str, ScenarioPoint]
) -> None:
    taken: dict[tuple[str, int], str] = {}
    for name, point in points.items():
        for reg in range(point.register, point.register + word_count(point.type, point.length)):
            other = taken.setdefault((point.table, reg), name)
            if other != name:
                r.problem(
                    psec[name],
                    "register",
                    f"{p}.{name}.register",
                    f"{point.table} {reg} is already used by point {other!r}",
                    on_value=True,
                )
                break


def _check_bus_sharing(
    r: YamlReader,
    devs: CommentedMap,
    devices: Mapping[str, ScenarioDevice],
    buses: Mapping[str, ScenarioBus],
) -> None:
    units: dict[tuple[str, int], str] = {}
    lines: dict[str, str] = {}
    for name, dev in devices.items():
        bus = buses.get(dev.bus)
        if bus is None:
            continue
        if bus.kind == "line":
            other = lines.setdefault(dev.bus, name)
            if other != name:
                r.problem(
                    devs[name],
                    "bus",
                    f"devices.{name}.bus",
                    f"serial line {dev.bus!r} already carries device {other!r} (one per line)",
                    on_value=True,
                )
        else:
            other = units.setdefault((dev.bus, dev.unit), name)
            if other != name:
                message = f"unit {dev.unit} on bus {dev.bus!r} is already device {other!r}"
                key = "unit" if "unit" in devs[name] else "bus"
                r.problem(devs[name], key, f"devices.{name}.unit", message, on_value=True)


def _schedule(
    r: YamlReader, doc: CommentedMap, devices: Mapping[str, ScenarioDevice]
) -> list[ScenarioEvent]:
    seq = doc.get("schedule")
    if seq is None:
        return []
    if not isinstance(seq, CommentedSeq):
        r.problem(
            doc, "schedule", "schedule", f"expected a list, got {kind_name(seq)}", on_value=True
        )
        return []
    events = []
    for i, item in enumerate(seq):
        p = f"schedule[{i}]"
        if not isinstance(item, CommentedMap):
            r.problem(seq, i, p, f"expected a mapping, got {kind_name(item)}")
            continue
        r.mapping(
            seq, i, p, ("at", "until", "duration", "device", "point", "set", "fault", "params")
        )
        at = r.duration(item, p, "at", 0.0, required=True) or 0.0
        until = r.duration(item, p, "until", None)
        duration = r.duration(item, p, "duration", None, zero_ok=False)
        if until is not None and duration is not None:
            r.problem(item, "duration", p, "give until or duration, not both")
        if duration is not None:
            until = at + duration
        if until is not None and until <= at:
            r.problem(item, "until", f"{p}.until", "must be later than at", on_value=True)
        dev_name = r.get(item, p, "device", str, None, required=True)
        device = devices.get(dev_name) if dev_name is not None else None
        if dev_name is not None and device is None:
            near = difflib.get_close_matches(dev_name, list(devices), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            r.problem(
                item, "device", f"{p}.device", f"no device named {dev_name!r}{hint}", on_value=True
            )
        point = r.get(item, p, "point", str, None)
        if point is not None and device is not None and point not in device.points:
            r.problem(
                item,
                "point",
                f"{p}.point",
                f"device {dev_name!r} has no point {point!r}",
                on_value=True,
            )
        has_set, fault = "set" in item, r.get(item, p, "fault", str, "", choices=FAULTS)
        if has_set == ("fault" in item):
            r.problem(
                item, None, p, "an event needs exactly one of set (model parameters) or fault"
            )
        changes: dict[str, float] = {}
        if has_set:
            s = r.mapping(item, "set", f"{p}.set")
            if point is None and device is not None:
                r.problem(
                    item, "set", f"{p}.point", "a set event needs the point whose model it changes"
                )
            target = device.points.get(point) if device is not None and point is not None else None
            if target is not None:
                known = MODEL_PARAMS[target.model]
                for key in s:
                    if key not in known:
                        r.problem(
                            s,
                            key,
                            f"{p}.set.{key}",
                            f"not a parameter of model {target.model!r} (known: {', '.join(known)})",
                        )
                changes = _params(r, s, f"{p}.set", known)
        params: dict[str, Any] = {}
        if fault:
            pm = r.mapping(item, "params", f"{p}.params")
            params = dict(pm)
            for key in (*_DURATION_PARAMS, "delay", "at"):
                if key in params:
                    params[key] = r.duration(pm, f"{p}.params", key, None) or 0.0
            if point is not None:
                params["point"] = point
            for msg in check_fault(fault, params):
                key = msg.split(":", 1)[0]
                r.problem(
                    pm if key in pm else item,
                    key if key in pm else "fault",
                    f"{p}.params.{key}" if key in pm else f"{p}.fault",
                    msg.split(": ", 1)[-1],
                )
            if point is not None and fault not in ("noise", "drift", "stuck", "spikes"):
                r.problem(
                    item,
                    "point",
                    f"{p}.point",
                    f"fault {fault!r} acts on the whole device, not a point",
                )
            params.pop("point", None)
        events.append(ScenarioEvent(at, until, dev_name or "", point, changes, fault, params))
    return events
