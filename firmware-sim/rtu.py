"""Modbus RTU slave on a pseudo-terminal: framing, multi-drop dispatch and line timing.

Several units share one :class:`RtuSlave` as they share one RS-485 line: each request goes to
the unit it names, units that do not exist stay silent, broadcast writes (unit 0) reach every
unit and are never answered. Requests are served one at a time, as on a half-duplex line.

Framing: a PTY gives no inter-character timing to detect a frame's end by silence, so the
request's length is derived from its function code (fixed 8 bytes for 01-06; 9 + byte count for
15/16); an unknown function code is recognised by the first length whose CRC matches. A frame
split across several reads is reassembled. A frame with a bad CRC is discarded silently (no
reply, as the spec requires) and counted. Leftover bytes older than ``frame_gap`` are dropped.

Line timing (on by default): the reply is written when the master would have received the end
of it on a real line, :func:`edge.firmware_sim.timing.exchange_time` after the request arrived
(less the PTY's own latency, :data:`PTY_LATENCY`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edge.firmware_sim.crc import append_crc, check_crc
from edge.firmware_sim.device import ModbusDevice
from edge.firmware_sim.ptyport import PtyPort
from edge.firmware_sim.registers import RegisterBank
from edge.firmware_sim.timing import exchange_time

__all__ = ["PTY_LATENCY", "RequestFramer", "RtuSlave", "RtuStats"]

_MAX_FRAME = 256

#: Seconds the PTY path adds to a round trip by itself (kernel transfer both ways, wake-ups of
#: the simulator's loop and of the master): the median round trip with line timing off,
#: 0.25-0.3 ms on the 2-core build machine. Line timing aims at what the master observes, so
#: this much is taken off the wait; a real line has no PTY in it.
PTY_LATENCY = 0.00025


def _expected_length(buffer: bytes | bytearray) -> int | None:
    """Length of the request at the start of ``buffer``; None if not yet known or unknown."""
    function = buffer[1]
    if 1 <= function <= 6:
        return 8
    if function in (15, 16):
        return 9 + buffer[6] if len(buffer) >= 7 else None
    return None


@dataclass(slots=True)
class RtuStats:
    """Counters of one RTU line, as a slave sees it."""

    frames: int = 0  #: well-formed requests received
    crc_errors: int = 0  #: requests discarded for a bad CRC
    dropped_bytes: int = 0  #: bytes discarded as incomplete or unframeable
    replies: int = 0  #: replies written
    #: requests that arrived while a reply to an earlier one was still to come: on a real
    #: half-duplex line the request and that reply would have collided
    collisions: int = 0


class RequestFramer:
    """Cuts a byte stream into RTU request frames (CRC checked). Pure; time passed in."""

    def __init__(self, frame_gap: float = 0.5) -> None:
        """Drop an incomplete frame once no byte arrived for ``frame_gap`` seconds."""
        self.frame_gap = frame_gap
        self.stats = RtuStats()
        self._buffer = bytearray()
        self._last = 0.0

    def feed(self, data: bytes, now: float) -> list[bytes]:
        """Add received bytes; return complete frames whose CRC is right."""
        if self._buffer and now - self._last > self.frame_gap:
            self.stats.dropped_bytes += len(self._buffer)
            self._buffer.clear()
        self._last = now
        self._buffer += data
        frames: list[bytes] = []
        buf = self._buffer
        while len(buf) >= 4:
            length = _expected_length(buf)
            if length is None and buf[1] not in (15, 16):
                length = next(
                    (
                        n
                        for n in range(4, min(len(buf), _MAX_FRAME) + 1)
                        if check_crc(bytes(buf[:n]))
                    ),
                    None,
                )
                if length is None:
                    if len(buf) >= _MAX_FRAME:
                        self.stats.dropped_bytes += len(buf)
                        buf.clear()
                    break
            if length is None or len(buf) < length:
                break
            frame = bytes(buf[:length])
            if check_crc(frame):
                del buf[:length]
                self.stats.frames += 1
                frames.append(frame)
            else:
                # A damaged frame: a real slave discards everything up to the next silence.
                self.stats.crc_errors += 1
                self.stats.dropped_bytes += len(buf)
                buf.clear()
        return frames


class RtuSlave:
    """Serve one or more Modbus units on one PTY (one RS-485 bus).

    Example::

        port = PtyPort(tmp_path / "bus.tty")
        slave = RtuSlave(port, [ModbusDevice("meter", 1), ModbusDevice("valve", 2)], baudrate=19200)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(slave.serve(), name="rtu bus")
            ...  # open str(port.link) with pyserial / pymodbus / minimalmodbus

    Args:
        port: the PTY to serve (opened by :meth:`serve` if closed).
        devices: the units on the line (``ModbusDevice``), or a mapping unit id -> RegisterBank.
        baudrate: the line's configured speed, used for line timing.
        line_timing: delay replies by the theoretical wire time (see module docstring).
        turnaround: the slave's processing time before it answers, seconds.
        pty_latency: subtracted from the line time: what the PTY path itself adds between
            the master's write and its read of the reply (see :data:`PTY_LATENCY`).
        frame_gap: see :class:`RequestFramer`.
        clock: the simulation clock handed to devices (fault and model times); default
            ``time.monotonic``.
    """

    def __init__(
        self,
        port: PtyPort,
        devices: Iterable[ModbusDevice] | Mapping[int, RegisterBank],
        *,
        baudrate: int = 19200,
        line_timing: bool = True,
        turnaround: float = 0.0,
        pty_latency: float = PTY_LATENCY,
        frame_gap: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(devices, Mapping):
            devices = [ModbusDevice(f"unit{u}", u, bank) for u, bank in devices.items()]
        self.port = port
        self.devices: dict[int, ModbusDevice] = {d.unit: d for d in devices}
        self.baudrate = baudrate
        self.line_timing = line_timing
        self.turnaround = turnaround
        self.pty_latency = pty_latency
        self.framer = RequestFramer(frame_gap)
        self.clock = clock
        self._queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue(maxsize=64)
        self._replying = False  # a reply is being held for its line time (or a fault's delay)

    @property
    def stats(self) -> RtuStats:
        """Line counters."""
        return self.framer.stats

    @classmethod
    def on_new_pty(
        cls, link: Path, banks: Mapping[int, RegisterBank], **kwargs: object
    ) -> RtuSlave:
        """Shortcut: a slave for plain register banks on a new PTY whose symlink is ``link``."""
        return cls(PtyPort(link), banks, **kwargs)  # type: ignore[arg-type]

    def _on_readable(self) -> None:
        data = self.port.read()
        if not data:
            return
        now = time.monotonic()
        for frame in self.framer.feed(data, now):
            if self._replying:
                self.stats.collisions += 1
            try:
                self._queue.put_nowait((frame, now))
            except asyncio.QueueFull:  # a master flooding us: drop, as a slave's buffer would
                self.stats.dropped_bytes += len(frame)

    async def serve(self) -> None:
        """Serve requests until cancelled; the port stays plugged in afterwards only if it was."""
        loop = asyncio.get_running_loop()
        was_open = self.port.is_open
        self.port.open()
        self.port.attach(loop, self._on_readable)
        try:
            while True:
                frame, received = await self._queue.get()
                await self._answer(frame, received)
        finally:
            self.port.detach()
            if not was_open:
                self.port.close()

    async def _answer(self, frame: bytes, received: float) -> None:
        unit, pdu = frame[0], frame[1:-2]
        now = self.clock()
        if unit == 0:
            for device in self.devices.values():
                device.handle(pdu, now, broadcast=True)
            return
        target = self.devices.get(unit)
        if target is None:
            return
        reply = target.handle(pdu, now)
        if reply.pdu is None:
            return
        data = append_crc(bytes([reply.unit]) + reply.pdu)
        if reply.corrupt:
            data = data[:-2] + bytes([data[-2] ^ 0x5A, data[-1] ^ 0xA5])
        wait = self.turnaround + reply.delay
        if self.line_timing:
            line = exchange_time(len(frame), len(data), self.baudrate, self.turnaround)
            wait = max(0.0, line - self.pty_latency) + reply.delay
        if reply.at is not None:  # the reply ends at a chosen time, not before the line allows
            floor = wait if self.line_timing else 0.0
            wait = max(floor, reply.at - self.pty_latency)
        generation = self.port.generation
        self._replying = True
        try:
            await _write_at(self.port, data, received + wait, generation, self._replied)
        finally:
            self._replying = False
        self.stats.replies += 1

    def _replied(self) -> None:
        # called in the writer thread just before the reply goes out: a request that comes
        # after it (the master answering at once) is no collision
        self._replying = False


async def _write_at(
    port: PtyPort,
    data: bytes,
    deadline: float,
    generation: int,
    before_write: Callable[[], None] | None = None,
) -> None:
    """Write ``data`` at ``deadline`` (monotonic), precisely: the last stretch in a thread.

    The event loop's timers are only millisecond-accurate (epoll), a tenth of a short reply's
    line time at 115200 baud; ``time.sleep`` in a worker thread is accurate to tens of µs.
    """
    coarse = deadline - time.monotonic() - 0.004
    if coarse > 0:
        await asyncio.sleep(coarse)

    def finish() -> None:
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        if before_write is not None:
            before_write()
        if port.generation == generation:  # not a reply meant for a port since re-plugged
            port.write(data)

    await asyncio.to_thread(finish)
