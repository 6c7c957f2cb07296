"""Fixtures shared by the commissioning CLI tests (read, probe, scan, write, record)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.firmware_sim.simulator import SimulatorThread


@pytest.fixture
def sim_rtu(tmp_path: Path) -> Iterator[str]:
    """firmware-sim: units 3 and 7 on one RS-485 bus at 115200 8N1 (others stay silent, as on
    a real multi-drop line; pymodbus's simulator answers unknown ids with exception 04)."""
    scenario = tmp_path / "bus.yaml"
    scenario.write_text(
        "name: bus\nbuses:\n  rs485: {kind: rtu, baudrate: 115200}\ndevices:\n"
        "  a: {bus: rs485, unit: 3, points: {t: {register: 0, type: uint16, value: 215}}}\n"
        "  b: {bus: rs485, unit: 7, points: {t: {register: 0, type: uint16, value: 7}}}\n"
    )
    with SimulatorThread(scenario, tmp_path / "run", seed=0) as sim:
        yield str(sim.serial_paths["rs485"])
