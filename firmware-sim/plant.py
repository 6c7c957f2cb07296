"""The physical side of a scenario: every device's points, process models and faults. No I/O.

:class:`Plant` answers "what does point P of device D read at simulation time t?" for a given
seed, and writes those values into the device's register bank. Transports (RTU, TCP, serial
lines) only move the bytes. Tests can use a Plant directly to check a scenario's physics
(e.g. when the demo's temperature crosses 8 °C) without any port.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from edge.firmware_sim.device import ModbusDevice
from edge.firmware_sim.faults import Fault, FaultSet
from edge.firmware_sim.models import Model, apply_value_faults
from edge.firmware_sim.registers import RegisterBank
from edge.firmware_sim.scenario import Scenario, ScenarioDevice, ScenarioPoint

__all__ = ["Plant", "PlantPoint"]


@dataclass(slots=True)
class PlantPoint:
    """One point: its register placement, its model and the value last written to registers."""

    device: str
    spec: ScenarioPoint
    model: Model
    key: tuple[object, ...]
    written: float | None = None
    stuck: dict[int, float] = field(default_factory=dict)  #: id(stuck fault) -> frozen value

    def value(self, t: float, faults: FaultSet) -> float:
        """Engineering value at simulation time ``t`` with value faults applied."""
        active = faults.value_faults(self.spec.name, t)
        stuck_value = None
        for fault in active:
            if fault.kind == "stuck" and id(fault) not in self.stuck:
                # The model never went past `now`, and the fault started at or before it.
                self.stuck[id(fault)] = self.model.value_at(max(fault.start, self.model.time))
            if fault.kind == "stuck":
                stuck_value = self.stuck[id(fault)]
        return apply_value_faults(
            self.model.value_at(t), active, t, self.model.step, self.key, stuck_value
        )


class Plant:
    """All devices of a scenario with their models, banks and faults, for one seed.

    Args:
        scenario: the line.
        seed: seeds every model and fault draw; the same seed gives the same values.
    """

    def __init__(self, scenario: Scenario, seed: int = 0) -> None:
        self.scenario = scenario
        self.seed = seed
        self.points: dict[str, dict[str, PlantPoint]] = {}
        self.faults: dict[str, FaultSet] = {}
        self.modbus: dict[str, ModbusDevice] = {}
        self._lock = threading.RLock()
        for name, dev in scenario.devices.items():
            self.faults[name] = FaultSet()
            self.points[name] = {
                pname: PlantPoint(
                    name,
                    p,
                    Model(p.model, dict(p.params), key=(seed, name, pname)),
                    (seed, name, pname),
                )
                for pname, p in dev.points.items()
            }
            if dev.kind == "modbus":
                self.modbus[name] = self._make_modbus(dev)
        for event in scenario.schedule:
            if event.set and event.point is not None:
                self.points[event.device][event.point].model.set(event.at, event.until, **event.set)
            elif event.fault and event.fault != "port_gone":
                params = dict(event.params)
                if event.point is not None:
                    params["point"] = event.point
                fault = Fault.make(event.fault, event.at, params)
                if event.until is not None:
                    fault = Fault(fault.kind, fault.start, event.until, fault.params)
                self.faults[event.device].add(fault)
        for name in self.modbus:
            self.refresh(name, 0.0)

    def _make_modbus(self, dev: ScenarioDevice) -> ModbusDevice:
        sizes = dev.tables
        bank = RegisterBank.create(
            sizes["holding"], sizes["input"], sizes["coil"], sizes["discrete"]
        )
        device = ModbusDevice(dev.name, dev.unit, bank, self.faults[dev.name], seed=self.seed)
        name = dev.name
        device.refresh = lambda now: self.refresh(name, now)
        return device

    def device(self, name: str) -> ScenarioDevice:
        """The scenario's device ``name``; KeyError naming the known ones."""
        try:
            return self.scenario.devices[name]
        except KeyError:
            known = ", ".join(self.scenario.devices)
            raise KeyError(
                f"no device {name!r} in scenario {self.scenario.name!r} (devices: {known})"
            ) from None

    def point(self, device: str, point: str) -> PlantPoint:
        """One point; KeyError naming the known ones."""
        points = self.points[self.device(device).name]
        if point not in points:
            raise KeyError(
                f"device {device!r} has no point {point!r} (points: {', '.join(points)})"
            )
        return points[point]

    def value(self, device: str, point: str, t: float) -> float:
        """Engineering value of a point at simulation time ``t`` (faults applied).

        Time must not go backwards between calls for the same point (models step forward).
        """
        with self._lock:
            return self.point(device, point).value(t, self.faults[device])

    def refresh(self, device: str, t: float) -> None:
        """Write every point's value at ``t`` into the device's registers.

        A register is only rewritten when its point's value changed, so a value a master wrote
        into a constant point (a setpoint register) stays until the model changes it.
        """
        with self._lock:
            modbus = self.modbus[device]
            for pp in self.points[device].values():
                value = pp.value(t, self.faults[device])
                if value == pp.written:
                    continue
                p = pp.spec
                modbus.bank.set_value(
                    p.table,
                    p.register,
                    value,
                    p.type,
                    p.order,
                    scale=p.scale,
                    offset=p.offset,
                    length=p.length,
                )
                pp.written = value
