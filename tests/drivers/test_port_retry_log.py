"""The logged ``retry_in`` of a missing port is when the port is really tried again.

The port is re-opened only by a device's poll, so with a 0.2 s poll the 0.25 s first backoff
means a retry after 0.4 s; the log used to say 0.25. Checked against the times of the attempts
actually made (each failed attempt logs one ``bus.port_unavailable``).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from edge.config import BusConfig, DeviceConfig, PointConfig
from edge.drivers.rtu import RtuTransport
from edge.drivers.scheduler import DeviceRuntime, ModbusPoller
from edge.readings import Reading


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "bus.port_unavailable":
            self.records.append(record)


async def test_logged_retry_in_matches_the_next_attempt(tmp_path: Path) -> None:
    bus = BusConfig("b", "rtu", port=str(tmp_path / "ttyUSB7"))
    dev = DeviceConfig("d", "b", poll=0.2)
    poller = ModbusPoller(
        bus, [DeviceRuntime.build(dev, [PointConfig("x", "d", register=0)])], RtuTransport(bus)
    )
    capture = _Capture()
    logger = logging.getLogger("edge")
    old_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.WARNING)

    async def emit(readings: list[Reading]) -> None:
        pass

    try:
        task = asyncio.create_task(poller.run(emit))
        await asyncio.sleep(2.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    said = [r.fields["retry_in"] for r in capture.records]  # type: ignore[attr-defined]
    times = [r.created for r in capture.records]
    # the 0.25 s first backoff rounded up to the next 0.2 s poll (then 0.5 s, 1 s backoffs
    # counted from each attempt, which runs a little after its deadline)
    assert said[0] == pytest.approx(0.4, abs=0.06)  # the old log said 0.25
    assert len(times) >= 3
    for (t, retry_in), t_next in zip(zip(times, said, strict=False), times[1:], strict=False):
        assert t_next - t == pytest.approx(retry_in, abs=0.08)  # event-loop lag under load
    assert poller.stats().port_errors == len(times)
