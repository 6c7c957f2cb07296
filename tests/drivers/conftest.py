"""Independent Modbus slaves for the driver tests: pymodbus servers on TCP and on real PTYs.

The register images are built with pymodbus's own ``convert_to_registers`` (word order) plus a
byte swap done here, never with edge's codec, so the round trip checks edge against pymodbus.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

DT = ModbusClientMixin.DATATYPE
PYMODBUS_TYPES = {
    "int16": DT.INT16, "uint16": DT.UINT16, "int32": DT.INT32, "uint32": DT.UINT32,
    "int64": DT.INT64, "uint64": DT.UINT64, "float32": DT.FLOAT32, "float64": DT.FLOAT64,
}  # fmt: skip


def oracle_registers(value: Any, dtype: str, order: str) -> list[int]:
    """Registers for ``value`` per pymodbus (word order) + a plain byte swap (BADC/DCBA)."""
    word_order = "little" if order in ("CDAB", "DCBA") else "big"
    regs = ModbusClientMixin.convert_to_registers(
        value, PYMODBUS_TYPES[dtype], word_order=word_order
    )
    if order in ("BADC", "DCBA"):
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return regs


#: one value per numeric type; chosen so every byte differs (a wrong order cannot pass)
CATALOG_VALUES: dict[str, Any] = {
    "int16": -12345,
    "uint16": 0xA1B2,
    "int32": -19088744,  # 0xFEDCBA98
    "uint32": 0x89ABCDEF,
    "int64": -81985529216486896,  # 0xFEDCBA9876543210
    "uint64": 0x0123456789ABCDEF,
    "float32": 3.14159,  # sent as the float32 nearest it, read back as the decimal meant
    "float64": 2.718281828459045,
}


@dataclass
class Catalog:
    """A register image plus the node.toml points that describe it and their expected values."""

    holding: dict[int, int] = field(default_factory=dict)
    inputs: dict[int, int] = field(default_factory=dict)
    coils: dict[int, bool] = field(default_factory=dict)
    discrete: dict[int, bool] = field(default_factory=dict)
    points: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)


def build_catalog(base: int = 0) -> Catalog:
    """Every numeric type in all four orders, bits, bools, strings, coils, scale/offset."""
    cat = Catalog()
    addr = 10
    for dtype, value in CATALOG_VALUES.items():
        for order in ("ABCD", "CDAB", "BADC", "DCBA"):
            regs = oracle_registers(value, dtype, order)
            for i, r in enumerate(regs):
                cat.holding[addr + i] = r
            name = f"{dtype}_{order.lower()}"
            cat.points[name] = {"register": addr + base, "type": dtype, "order": order}
            cat.expected[name] = value
            addr += len(regs) + 1  # one unused register between values: tests gap filling
    # bits of one register, a bool register, a string, an input register with scale/offset
    cat.holding[200] = 0b1000_0000_0000_0101
    for bit, want in ((0, True), (1, False), (2, True), (15, True)):
        cat.points[f"flag{bit}"] = {"register": 200 + base, "type": "bit", "bit": bit}
        cat.expected[f"flag{bit}"] = want
    text = b"LOT-42A"
    padded = text.ljust(8, b"\x00")
    for i in range(4):
        cat.holding[210 + i] = padded[2 * i] << 8 | padded[2 * i + 1]
    cat.points["lot"] = {"register": 210 + base, "type": "string", "length": 4}
    cat.expected["lot"] = text.decode()
    cat.inputs[5] = 2150
    cat.points["temp"] = {
        "register": 5 + base,
        "table": "input",
        "type": "int16",
        "scale": 0.01,
        "offset": 1.5,
        "unit": "degC",
    }
    cat.expected["temp"] = 2150 * 0.01 + 1.5
    cat.coils.update({0: True, 1: False, 7: True})
    for c in (0, 1, 7):
        cat.points[f"coil{c}"] = {"register": c + base, "table": "coil", "type": "bool"}
        cat.expected[f"coil{c}"] = cat.coils[c]
    cat.discrete[3] = True
    cat.points["door"] = {"register": 3 + base, "table": "discrete", "type": "bool"}
    cat.expected["door"] = True
    return cat


def _block(image: dict[int, int] | dict[int, bool], size: int, bits: bool) -> list[SimData]:
    values: list[Any] = [False] * size if bits else [0] * size
    for a, v in image.items():
        values[a] = v
    return [SimData(0, values=values, datatype=DataType.BITS if bits else DataType.REGISTERS)]


def sim_device(unit: int, cat: Catalog, size: int = 256) -> SimDevice:
    """A pymodbus device holding the catalog (registers 0..size-1 valid, the rest illegal)."""
    return SimDevice(
        unit,
        simdata=(
            _block(cat.coils, size, True),
            _block(cat.discrete, size, True),
            _block(cat.holding, size, False),
            _block(cat.inputs, size, False),
        ),
    )


class ServerThread:
    """A pymodbus server running its own event loop in a daemon thread."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self.loop = asyncio.new_event_loop()
        self.server: Any = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.server = self._make()
            task = asyncio.ensure_future(self.server.serve_forever())
            await asyncio.sleep(0.2)
            self._ready.set()
            await task

        try:
            self.loop.run_until_complete(start())
        except (asyncio.CancelledError, RuntimeError):
            pass
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop)
        with contextlib.suppress(Exception):  # shutting down a stopped server: nothing to do
            fut.result(5)
        self.thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PtyBridge:
    """Two real PTYs joined back to back: a 'null-modem cable' between two serial programs.

    Each end is a slave device path a program opens with pyserial; a thread copies bytes between
    the masters. ``faults`` lets a test corrupt frames in flight.
    """

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo  # an RS-485 adapter that hears its own transmission
        self.m1, s1 = os.openpty()
        self.m2, s2 = os.openpty()
        for fd in (s1, s2):
            tty.setraw(fd)
        self.path1, self.path2 = os.ttyname(s1), os.ttyname(s2)
        self._slaves = (s1, s2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._pump, daemon=True)

    def _pump(self) -> None:
        peers = {self.m1: self.m2, self.m2: self.m1}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(peers), [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                os.write(peers[fd], data)
                if self.echo and fd == self.m2:
                    os.write(self.m2, data)

    def __enter__(self) -> PtyBridge:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(2)
        for fd in (self.m1, self.m2, *self._slaves):
            os.close(fd)


def write_node(
    tmp_path: Path,
    bus: dict[str, Any],
    devices: dict[str, dict[str, Any]],
    points: dict[str, dict[str, Any]],
) -> Path:
    """A node.toml with one bus called ``line1``."""
    import json

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return json.dumps(v)

    lines = ["[node]", 'id = "test"', f'data_dir = "{tmp_path / "var"}"', "", "[buses.line1]"]
    lines += [f"{k} = {val(v)}" for k, v in bus.items()]
    for name, spec in devices.items():
        lines += ["", f"[devices.{name}]", 'bus = "line1"'] + [
            f"{k} = {val(v)}" for k, v in spec.items()
        ]
    for name, spec in points.items():
        lines += ["", f"[points.{name}]"] + [f"{k} = {val(v)}" for k, v in spec.items()]
    path = tmp_path / "node.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def catalog() -> Catalog:
    return build_catalog()


@pytest.fixture
def tcp_slave(catalog: Catalog) -> Iterator[str]:
    port = free_port()
    with ServerThread(
        lambda: ModbusTcpServer([sim_device(1, catalog)], address=("127.0.0.1", port))
    ):
        yield f"127.0.0.1:{port}"


@pytest.fixture
def rtu_slave(catalog: Catalog) -> Iterator[str]:
    with (
        PtyBridge() as bridge,
        ServerThread(
            lambda: ModbusSerialServer(
                [sim_device(1, catalog), sim_device(2, build_catalog())],
                framer=FramerType.RTU,
                port=bridge.path1,
                baudrate=115200,
            )
        ),
    ):
        yield bridge.path2


@pytest.fixture
def rtu_echo_slave(catalog: Catalog) -> Iterator[str]:
    """The RTU slave behind an adapter with local echo: the master reads its own request first."""
    with (
        PtyBridge(echo=True) as bridge,
        ServerThread(
            lambda: ModbusSerialServer(
                [sim_device(1, catalog)], framer=FramerType.RTU, port=bridge.path1, baudrate=115200
            )
        ),
    ):
        yield bridge.path2
