"""Serial line devices on a PTY: a weighing scale, a barcode scanner, a thermometer.

Each prints ASCII lines ending in the bus's ``line_ending`` (CR LF by default), either by
itself every ``interval`` or when it receives its ``query`` command (both may be set). A line
is written in two pieces with the first piece's wire time between them, so a driver that
assumes one ``read()`` returns one line breaks here as it would on a real port.

Line templates (``format``; Python format syntax):

- scale: ``{status},{mode},{value:+08.2f} {unit}`` -> ``ST,GS,+0012.34 g``; status ST
  (stable) / US (unstable: the reading changed less than ``settle`` ago), mode GS (gross) /
  NT (net, when ``tare`` is set).
- thermometer: ``T={value:+07.2f} {unit}`` -> ``T=+004.12 C``.
- scanner: ``{code}`` -> ``L2026-0412-A``; fields code (current lot), seq (scan number).

Faults: ``no_response`` (silent), ``slow_response`` (lines late), ``corrupt_crc`` (one character
garbled), value faults on the reading, ``port_gone`` (handled by the simulator).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.firmware_sim.faults import FaultSet, deterministic_random
from edge.firmware_sim.ptyport import PtyPort
from edge.firmware_sim.scenario import ScenarioDevice

__all__ = ["DEFAULT_FORMATS", "LineDevice", "LineStats"]

DEFAULT_FORMATS = {
    "scale": "{status},{mode},{value:+08.2f} {unit}",
    "thermometer": "T={value:+07.2f} {unit}",
    "scanner": "{code}",
}
#: 8N1 on the wire: start + 8 data + stop
_BITS_PER_CHAR = 10


@dataclass(slots=True)
class LineStats:
    """Counters of one line device."""

    lines: int = 0  #: lines sent
    queries: int = 0  #: query commands received
    suppressed: int = 0  #: lines not sent because of a fault or an unplugged port


class LineDevice:
    """One device at the end of a serial line.

    Args:
        port: the PTY.
        spec: the scenario's device (kind, interval, query, format, settle, tare, lots).
        reading: returns (value, changed_at) of the device's reading at a simulation time
            (None for scanners).
        faults: faults in force.
        clock: simulation clock.
        baudrate: for the gap inside a split line.
        line_ending: appended to each line.
        seed: seeds which character a ``corrupt_crc`` fault garbles.
    """

    def __init__(
        self,
        port: PtyPort,
        spec: ScenarioDevice,
        reading: Callable[[float], tuple[float, float]] | None,
        faults: FaultSet,
        clock: Callable[[], float] = time.monotonic,
        *,
        baudrate: int = 9600,
        line_ending: str = "\r\n",
        seed: int = 0,
        unit: str = "",
    ) -> None:
        self.port = port
        self.spec = spec
        self.reading = reading
        self.faults = faults
        self.clock = clock
        self.baudrate = baudrate
        self.line_ending = line_ending
        self.seed = seed
        self.unit = unit
        self.template = spec.format or DEFAULT_FORMATS[spec.kind]
        self.stats = LineStats()
        self._rx = bytearray()
        self._pending: asyncio.Queue[str] = asyncio.Queue(maxsize=16)

    def lot_at(self, t: float) -> str:
        """The lot code the scanner reads at simulation time ``t``."""
        code = self.spec.lots[0][1] if self.spec.lots else ""
        for at, lot in self.spec.lots:
            if at <= t:
                code = lot
        return code

    def line_at(self, t: float) -> str:
        """The text (without line ending) the device prints at simulation time ``t``."""
        if self.spec.kind == "scanner":
            seq = math.floor(t / self.spec.interval) if self.spec.interval else self.stats.lines
            return self.template.format(code=self.lot_at(t), seq=seq)
        assert self.reading is not None
        value, changed_at = self.reading(t)
        if self.spec.kind == "scale":
            status = "ST" if t - changed_at >= self.spec.settle else "US"
            mode = "NT" if self.spec.tare else "GS"
            return self.template.format(
                status=status, mode=mode, value=value - self.spec.tare, unit=self.unit
            )
        return self.template.format(value=value, unit=self.unit)

    def _on_readable(self) -> None:
        self._rx += self.port.read()
        # accept CR, LF or CR LF after a command, as terminal programs send any of them
        while True:
            cut = min(
                (i for i in (self._rx.find(b"\r"), self._rx.find(b"\n")) if i >= 0), default=-1
            )
            if cut < 0:
                if len(self._rx) > 256:
                    self._rx.clear()
                return
            command = self._rx[:cut].decode("ascii", "replace").strip()
            del self._rx[: cut + 1]
            if command and command == self.spec.query.strip():
                self.stats.queries += 1
                try:
                    self._pending.put_nowait("query")
                except asyncio.QueueFull:
                    self.stats.suppressed += 1

    async def run(self) -> None:
        """Print lines by schedule and on query until cancelled."""
        loop = asyncio.get_running_loop()
        self.port.open()
        self.port.attach(loop, self._on_readable)
        try:
            async with asyncio.TaskGroup() as tg:
                if self.spec.interval:
                    tg.create_task(self._periodic(), name=f"{self.spec.name} periodic lines")
                tg.create_task(self._answer_queries(), name=f"{self.spec.name} queries")
        finally:
            self.port.detach()

    async def _periodic(self) -> None:
        interval = self.spec.interval
        n = math.floor(self.clock() / interval) + 1
        while True:
            await asyncio.sleep(max(0.0, n * interval - self.clock()))
            await self.emit(n * interval)
            n = max(n + 1, math.floor(self.clock() / interval) + 1)

    async def _answer_queries(self) -> None:
        while True:
            await self._pending.get()
            await self.emit(self.clock())

    async def emit(self, t: float | None = None, text: str | None = None) -> bool:
        """Print one line (the device's own at time ``t``, or ``text``), applying faults.

        Returns:
            Whether the line went out.
        """
        t = self.clock() if t is None else t
        faults = self.faults
        if faults.active("no_response", t) is not None or not self.port.is_open:
            self.stats.suppressed += 1
            return False
        slow = faults.active("slow_response", t)
        if slow is not None:
            await asyncio.sleep(float(slow.params["delay"]))
        line = self.line_at(t) if text is None else text
        if faults.active("corrupt_crc", t) is not None and line:
            rng = deterministic_random(self.seed, self.spec.name, "garble", self.stats.lines)
            i = rng.randrange(len(line))
            line = (
                line[:i]
                + chr(ord(line[i]) ^ 0x20 if line[i].isalpha() else ord("?"))
                + line[i + 1 :]
            )
        data = (line + self.line_ending).encode("ascii", "replace")
        half = max(1, len(data) // 2)
        if not self.port.write(data[:half]):
            self.stats.suppressed += 1
            return False
        await asyncio.sleep(half * _BITS_PER_CHAR / self.baudrate)
        self.port.write(data[half:])
        self.stats.lines += 1
        return True
