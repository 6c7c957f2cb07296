"""Run a scenario: every bus on its transport, models ticking, faults on schedule or command.

:class:`Simulator` is an async context manager that owns one TaskGroup (named tasks: one per
bus or line device plus the fault schedule). :class:`SimulatorThread` runs the same thing on an
event loop in a background thread for synchronous code (minimalmodbus, pyserial, CLI tests).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from edge.firmware_sim.faults import Fault, check_fault
from edge.firmware_sim.line import LineDevice
from edge.firmware_sim.plant import Plant
from edge.firmware_sim.ptyport import PtyPort
from edge.firmware_sim.registers import RegisterBank
from edge.firmware_sim.rtu import RtuSlave
from edge.firmware_sim.scenario import Scenario, load_scenario
from edge.firmware_sim.tcp import TcpServer

__all__ = ["Simulator", "SimulatorThread"]


class Simulator:
    """A running scenario.

    Example::

        async with Simulator(load_scenario("demo"), tmp_path, seed=1) as sim:
            port = sim.serial_paths["tunnel-bus"]   # <tmp_path>/tunnel-bus.tty
            sim.inject("tunnel", "no_response", duration=2.0)

    Args:
        scenario: a :class:`~edge.firmware_sim.scenario.Scenario`, a shipped name or a path.
        run_dir: where symlinks (``<bus>.tty``) and ``ports.json`` go (created if missing).
        seed: seeds every model and fault draw.
        line_timing: delay RTU replies by the theoretical wire time.

    Attributes:
        serial_paths: bus name -> stable symlink to its PTY (rtu and line buses).
        tcp_endpoints: bus name -> (host, port) of its Modbus TCP server.
        plant: the models, banks and faults (:class:`~edge.firmware_sim.plant.Plant`).
        ports_file: ``<run_dir>/ports.json``.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path,
        run_dir: Path,
        *,
        seed: int = 0,
        line_timing: bool = True,
        tcp_ports: Mapping[str, int] | None = None,
    ) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        #: tcp bus -> port to listen on, over the scenario's ``port`` (0: a free one)
        self.tcp_ports = dict(tcp_ports or {})
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.line_timing = line_timing
        self.plant = Plant(self.scenario, seed)
        self.serial_paths: dict[str, Path] = {}
        self.tcp_endpoints: dict[str, tuple[str, int]] = {}
        self.ports_file = self.run_dir / "ports.json"
        self.rtu: dict[str, RtuSlave] = {}
        self.tcp: dict[str, TcpServer] = {}
        self.lines: dict[str, LineDevice] = {}
        self.ports: dict[str, PtyPort] = {}  #: bus name -> its PTY (rtu and line buses)
        self._start = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._replug: dict[str, asyncio.TimerHandle] = {}
        self._unplugged: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    # --- clock -------------------------------------------------------------------------------

    def now(self) -> float:
        """Simulation time: seconds since the simulator started (model and schedule time)."""
        return time.monotonic() - self._start

    # --- lifecycle ---------------------------------------------------------------------------

    def _build(self) -> None:
        sc = self.scenario
        by_bus: dict[str, list[str]] = {}
        for name, dev in sc.devices.items():
            by_bus.setdefault(dev.bus, []).append(name)
        for bus_name, bus in sc.buses.items():
            names = by_bus.get(bus_name, [])
            if bus.kind == "tcp":
                self.tcp[bus_name] = TcpServer(
                    [self.plant.modbus[n] for n in names],
                    port=self.tcp_ports.get(bus_name, bus.port),
                    clock=self.now,
                )
                continue
            port = PtyPort(self.run_dir / f"{bus_name}.tty")
            self.ports[bus_name] = port
            self.serial_paths[bus_name] = port.link
            if bus.kind == "rtu":
                self.rtu[bus_name] = RtuSlave(
                    port,
                    [self.plant.modbus[n] for n in names],
                    baudrate=bus.baudrate,
                    line_timing=self.line_timing,
                    turnaround=bus.turnaround,
                    clock=self.now,
                )
            else:
                for n in names:  # one device per line, checked by the scenario loader
                    self.lines[n] = self._line_device(port, n, bus.baudrate, bus.line_ending)

    def _line_device(self, port: PtyPort, name: str, baudrate: int, line_ending: str) -> LineDevice:
        spec = self.scenario.devices[name]
        points = self.plant.points[name]
        first = next(iter(points.values()), None)

        def reading(t: float) -> tuple[float, float]:
            assert first is not None
            value = self.plant.value(name, first.spec.name, t)
            return value, first.model.changed_at

        return LineDevice(
            port,
            spec,
            reading if first is not None else None,
            self.plant.faults[name],
            self.now,
            baudrate=baudrate,
            line_ending=line_ending,
            seed=self.seed,
            unit=first.spec.unit if first is not None else "",
        )

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._start = time.monotonic()
        self._build()
        for port in self.ports.values():
            port.open()
        for server in self.tcp.values():
            await server.plug()
            self.tcp_endpoints[_bus_of(self.tcp, server)] = server.address
        self._main = asyncio.create_task(self._run(), name=f"sim {self.scenario.name}")
        ready = asyncio.create_task(self._ready.wait(), name="sim ready")
        await asyncio.wait({self._main, ready}, return_when=asyncio.FIRST_COMPLETED)
        if self._main.done():
            ready.cancel()
            await self._close_all()
            self._main.result()  # raises what went wrong
        self._write_ports_file()
        return self

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for name, slave in self.rtu.items():
                tg.create_task(slave.serve(), name=f"sim rtu {name}")
            for name, server in self.tcp.items():
                tg.create_task(server.serve(), name=f"sim tcp {name}")
            for name, line in self.lines.items():
                tg.create_task(line.run(), name=f"sim line {name}")
            for i, event in enumerate(self.scenario.schedule):
                if event.fault == "port_gone":
                    tg.create_task(
                        self._scheduled_unplug(event.device, event.at, event.until),
                        name=f"sim schedule {i}",
                    )
            await asyncio.sleep(0)
            self._ready.set()

    async def _scheduled_unplug(self, device: str, at: float, until: float | None) -> None:
        await asyncio.sleep(max(0.0, at - self.now()))
        self._unplug(self.scenario.devices[device].bus, None if until is None else until - at)

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._main is not None
        self._main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._main
        await self._close_all()

    async def _close_all(self) -> None:
        for handle in self._replug.values():
            handle.cancel()
        for task in self._background:
            task.cancel()
        for server in self.tcp.values():
            await server.unplug()
        for port in self.ports.values():
            port.close()
        with contextlib.suppress(FileNotFoundError):
            self.ports_file.unlink()

    def _write_ports_file(self) -> None:
        info = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "pid": os.getpid(),
            "serial": {
                bus: {
                    "path": str(path),
                    "device": self.ports[bus].device,
                    "baudrate": self.scenario.buses[bus].baudrate,
                    "bytesize": self.scenario.buses[bus].bytesize,
                    "parity": self.scenario.buses[bus].parity,
                    "stopbits": self.scenario.buses[bus].stopbits,
                    "kind": self.scenario.buses[bus].kind,
                    "devices": {
                        n: d.unit for n, d in self.scenario.devices.items() if d.bus == bus
                    },
                }
                for bus, path in self.serial_paths.items()
            },
            "tcp": {
                bus: {
                    "host": h,
                    "port": p,
                    "devices": {
                        n: d.unit for n, d in self.scenario.devices.items() if d.bus == bus
                    },
                }
                for bus, (h, p) in self.tcp_endpoints.items()
            },
        }
        tmp = self.ports_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, self.ports_file)

    # --- faults ------------------------------------------------------------------------------

    def _on_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the simulator's loop thread: at once if we are on it, else wait for it."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("simulator is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn()
            return

        async def call() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=10)

    def inject(self, device: str, fault: str, **params: Any) -> Fault:
        """Put a fault in force on a device now (see :mod:`edge.firmware_sim.faults`).

        ``device`` may also be a bus name for ``port_gone``. ``duration`` (seconds or "5s")
        makes the fault clear itself.

        Raises:
            KeyError: no such device or bus.
            ValueError: unknown fault or bad parameters.
        """
        problems = check_fault(fault, params)
        if problems:
            raise ValueError(f"{device}: " + "; ".join(problems))
        if fault == "port_gone":
            bus = self._bus_name(device)
            made = Fault.make(fault, self.now(), params)
            self._on_loop(
                lambda: self._unplug(bus, None if made.end is None else made.end - made.start)
            )
            return made
        name = self.plant.device(device).name
        point = params.get("point")
        if point is not None:
            self.plant.point(name, point)
        made = Fault.make(fault, self.now(), params)
        self.plant.faults[name].add(made)
        return made

    def clear(self, device: str, fault: str | None = None) -> None:
        """End faults on a device: one kind, or all of them (None); plugs an unplugged port back."""
        if fault in (None, "port_gone"):
            bus = self._bus_name(device)
            if bus in self._unplugged:
                self._on_loop(lambda: self._plug(bus))
        if device in self.plant.faults:
            self.plant.faults[device].clear(fault)

    def _bus_name(self, device_or_bus: str) -> str:
        if device_or_bus in self.scenario.buses:
            return device_or_bus
        return self.plant.device(device_or_bus).bus

    def _unplug(self, bus: str, duration: float | None) -> None:
        """Pull the plug of a bus now (on the loop thread); plug it back after ``duration``."""
        if bus in self.ports:
            self.ports[bus].close()
        elif bus in self.tcp:
            self.tcp[bus].unplug_now()
        old = self._replug.pop(bus, None)
        if old is not None:
            old.cancel()
        self._unplugged.add(bus)
        if duration is not None:
            assert self._loop is not None
            self._replug[bus] = self._loop.call_later(duration, self._plug, bus)

    def _plug(self, bus: str) -> None:
        """Plug a bus back in: a new PTY behind the same symlink, or the same TCP port."""
        handle = self._replug.pop(bus, None)
        if handle is not None:
            handle.cancel()
        self._unplugged.discard(bus)
        if bus in self.ports:
            self.ports[bus].open()
            self._write_ports_file()
        elif bus in self.tcp:
            assert self._loop is not None
            task = self._loop.create_task(self.tcp[bus].plug(), name=f"sim replug {bus}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def unplugged(self, bus: str) -> bool:
        """Whether a bus's port is currently pulled (``port_gone``)."""
        return bus in self._unplugged

    # --- model access ------------------------------------------------------------------------

    def registers(self, device: str) -> RegisterBank:
        """The device's register bank, refreshed to now (``.get``/``.set``/``.get_value``...)."""
        name = self.plant.device(device).name
        if name not in self.plant.modbus:
            raise KeyError(f"device {device!r} is a serial line device, it has no registers")
        self.plant.refresh(name, self.now())
        return self.plant.modbus[name].bank

    def value(self, device: str, point: str) -> float:
        """A point's engineering value now (faults applied)."""
        return self.plant.value(device, point, self.now())

    def set_model(self, device: str, point: str, **params: float) -> None:
        """Change a point's model parameters from now on (e.g. ``setpoint=12.0``)."""
        self.plant.point(device, point).model.set(self.now(), None, **params)

    async def send_line(self, device: str, text: str | None = None) -> bool:
        """Make a line device print now: its own line, or ``text`` (e.g. a scanned code)."""
        return await self.lines[self.plant.device(device).name].emit(self.now(), text)


def _bus_of(servers: Mapping[str, TcpServer], server: TcpServer) -> str:
    return next(name for name, s in servers.items() if s is server)


class SimulatorThread:
    """A :class:`Simulator` running in a background thread, for synchronous code and tests.

    Example::

        with SimulatorThread("demo", tmp_path, seed=0) as sim:
            instrument = minimalmodbus.Instrument(str(sim.serial_paths["tunnel-bus"]), 1)

    Same attributes and fault methods as :class:`Simulator`, callable from any thread.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path,
        run_dir: Path,
        *,
        seed: int = 0,
        line_timing: bool = True,
        tcp_ports: Mapping[str, int] | None = None,
    ) -> None:
        self.sim = Simulator(
            scenario, run_dir, seed=seed, line_timing=line_timing, tcp_ports=tcp_ports
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def _main(self) -> None:
        async def body() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                async with self.sim:
                    self._started.set_result(None)
                    await self._stop.wait()
            except BaseException as exc:
                if not self._started.done():
                    self._started.set_exception(exc)
                else:
                    raise

        asyncio.run(body())

    def __enter__(self) -> Self:
        self._thread = threading.Thread(
            target=self._main, name=f"sim {self.sim.scenario.name}", daemon=True
        )
        self._thread.start()
        self._started.result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def send_line(self, device: str, text: str | None = None) -> bool:
        """Synchronous :meth:`Simulator.send_line`."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(
            self.sim.send_line(device, text), self._loop
        ).result(timeout=10)
