"""Serial-line instruments: parsers (pure) and the line poller on a real PTY."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import tty
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.config import BusConfig, DeviceConfig, PointConfig
from edge.drivers.line import LinePoller, LineTransport
from edge.drivers.parsers import LineParseError, make_parser, parse_csv, parse_kv, parse_scale
from edge.drivers.scheduler import DeviceRuntime
from edge.readings import Quality, Reading


def test_scale_format() -> None:
    assert parse_scale("ST,GS,+0012.34 g") == {
        "status": "ST",
        "mode": "GS",
        "value": 12.34,
        "weight": 12.34,
        "unit": "g",
    }
    assert parse_scale("US,NT,-   1.5kg")["value"] == -1.5
    with pytest.raises(LineParseError, match="not a scale line"):
        parse_scale("OL,GS,+OVER")


@given(st.decimals(min_value=-99999, max_value=99999, places=2), st.sampled_from(["g", "kg", "lb"]))
def test_scale_roundtrip(value: object, unit: str) -> None:
    line = f"ST,GS,{value:+010.2f} {unit}"
    got = parse_scale(line)
    assert got["value"] == pytest.approx(float(str(value)))
    assert got["unit"] == unit


def test_kv_and_csv_and_regex() -> None:
    assert parse_kv("T=21.5 RH=40.2 state=RUN") == {"T": 21.5, "RH": 40.2, "state": "RUN"}
    assert parse_kv("T:21.5;RH:40") == {"T": 21.5, "RH": 40.0}
    with pytest.raises(LineParseError):
        parse_kv("garbage")
    assert parse_csv("1.5, 2 ,OK,extra", ("a", "b", "s")) == {"a": 1.5, "b": 2.0, "s": "OK"}
    with pytest.raises(LineParseError, match="expected 3"):
        parse_csv("1,2", ("a", "b", "c"))
    rx = make_parser(BusConfig("l", "line", parser="regex", pattern=r"W=(?P<w>\S+) S=(?P<s>\w+)"))
    assert rx("#12 W=0.75 S=OK") == {"w": 0.75, "s": "OK"}
    with pytest.raises(ValueError, match="named groups"):
        make_parser(BusConfig("l", "line", parser="regex", pattern=r"\d+"))
    with pytest.raises(ValueError, match="compile"):
        make_parser(BusConfig("l", "line", parser="regex", pattern=r"(?P<x"))


class FakeScale:
    """A scale on a real PTY: prints a line now and then, or answers each query."""

    def __init__(self, query: bytes = b"") -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.query = query
        self.weight = 12.34
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def line(self) -> bytes:
        return f"ST,GS,{self.weight:+09.2f} g\r\n".encode()

    def _run(self) -> None:
        import select

        buf = b""
        while not self.stop.is_set():
            if self.query:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if ready:
                    buf += os.read(self.master, 100)
                    while self.query + b"\r\n" in buf:
                        _, _, buf = buf.partition(self.query + b"\r\n")
                        os.write(self.master, self.line())
            else:
                os.write(self.master, b"garbage-half-line\r\n" if self.weight < 0 else self.line())
                self.stop.wait(0.02)

    def __enter__(self) -> FakeScale:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(2)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture(params=[b"", b"SI"], ids=["streaming", "query"])
def scale(request: pytest.FixtureRequest) -> Iterator[FakeScale]:
    with FakeScale(request.param) as s:
        yield s


async def test_line_poller_reads_scale(scale: FakeScale) -> None:
    bus = BusConfig(
        "scale",
        "line",
        port=scale.path,
        baudrate=9600,
        timeout=0.3,
        parser="scale",
        query=scale.query.decode(),
    )
    dev = DeviceConfig("s1", "scale", poll=0.05)
    pts = [
        PointConfig("net_kg", "s1", field="weight", scale=0.001, unit="kg"),
        PointConfig("stable", "s1", field="status"),
    ]
    poller = LinePoller(bus, [DeviceRuntime.build(dev, pts, plan=False)], LineTransport(bus))
    got: list[list[Reading]] = []

    async def emit(readings: list[Reading]) -> None:
        got.append(readings)

    task = asyncio.create_task(poller.run(emit))
    await asyncio.sleep(0.5)
    scale.weight = 500.0
    await asyncio.sleep(0.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    first, last = got[1], got[-1]
    assert [(r.point, r.value, r.quality, r.unit) for r in first] == [
        ("net_kg", pytest.approx(0.01234), Quality.GOOD, "kg"),
        ("stable", "ST", Quality.GOOD, ""),
    ]
    assert last[0].value == pytest.approx(0.5)
    assert poller.stats().responses >= 10


async def test_line_poller_counts_garbage_and_silence() -> None:
    with FakeScale() as scale:
        scale.weight = -1.0  # prints lines that are not scale lines
        bus = BusConfig("scale", "line", port=scale.path, timeout=0.1)
        dev = DeviceConfig("s1", "scale", poll=0.05, stale_after=2)
        poller = LinePoller(
            bus,
            [DeviceRuntime.build(dev, [PointConfig("w", "s1", field="value")], plan=False)],
            LineTransport(bus),
        )
        got: list[Reading] = []

        async def emit(readings: list[Reading]) -> None:
            got.extend(readings)

        task = asyncio.create_task(poller.run(emit))
        await asyncio.sleep(0.4)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert got
    assert {r.quality for r in got} == {Quality.COMM_FAIL}
    assert poller.stats().frame_errors >= 3


def test_a_fast_talker_cannot_hold_the_port_past_the_timeout() -> None:
    """A device that prints without pause keeps bytes waiting: the read still ends by its
    timeout (with the newest line), or a Ctrl-C, which closes the port after it, waits for ever."""
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()
    line = b"ST,GS,+00012.34 g\r\n" * 64

    def firehose() -> None:
        while not stop.is_set():
            try:
                os.write(master, line)
            except OSError:
                return

    thread = threading.Thread(target=firehose, daemon=True)
    thread.start()
    bus = BusConfig("scale", "line", port=os.ttyname(slave), timeout=0.2)
    transport = LineTransport(bus)
    result: list[object] = []
    try:
        transport._open_sync()
        port = transport._serial
        assert port is not None
        read = port.read

        def slow_read(n: int = 1) -> bytes:  # a loaded host: the device is always ahead
            data = read(n)
            time.sleep(0.005)  # the device prints on meanwhile
            return data

        port.read = slow_read  # type: ignore[method-assign]
        began = time.monotonic()
        fetch = threading.Thread(
            target=lambda: result.append(transport._fetch_sync("scale")), daemon=True
        )
        fetch.start()
        fetch.join(3.0)
        took = time.monotonic() - began
        stop.set()  # a read still looping (the defect) ends when the bytes stop
        fetch.join(5.0)
    finally:
        stop.set()
        transport._close_sync()
        thread.join(2)
        os.close(master)
        os.close(slave)
    assert took < 1.0, f"the read held the port {took:.1f}s (timeout 0.2 s)"
    assert result == ["ST,GS,+00012.34 g"]
