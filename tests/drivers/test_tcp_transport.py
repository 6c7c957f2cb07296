"""Our Modbus TCP framing (edge.drivers.tcp) against pymodbus's server, and against a scripted
server on a real socket for what a well-behaved server never does (late, mismatched, malformed).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable

import pytest
from pymodbus.client import AsyncModbusTcpClient

from edge.config import BusConfig, DeviceConfig, PointConfig
from edge.drivers.planner import PlannedPoint, ReadRequest
from edge.drivers.tcp import TcpTransport
from edge.errors import DeviceException, DeviceTimeout, FrameError, PortUnavailable

DEVICE = DeviceConfig("d", "net", unit=1)


def _request(table: str, start: int, count: int) -> ReadRequest:
    point = PointConfig("p", "d", register=start, table=table)
    return ReadRequest(table, start, count, (PlannedPoint(point, start, count),))


async def test_reads_what_pymodbus_reads(tcp_slave: str) -> None:
    host, _, port = tcp_slave.rpartition(":")
    oracle = AsyncModbusTcpClient(host, port=int(port))
    assert await oracle.connect()
    ours = TcpTransport(BusConfig("net", "tcp", address=tcp_slave, timeout=2.0))
    frames: list[tuple[bool, bytes]] = []
    ours.trace = lambda sending, data: frames.append((sending, data))
    await ours.open()
    try:
        for table, start, count in (("holding", 0, 20), ("input", 0, 8), ("coil", 0, 11),
                                    ("discrete", 0, 9)):  # fmt: skip
            call = {"holding": oracle.read_holding_registers,
                    "input": oracle.read_input_registers, "coil": oracle.read_coils,
                    "discrete": oracle.read_discrete_inputs}[table]  # fmt: skip
            reply = await call(start, count=count, device_id=1)
            expected = reply.bits[:count] if table in ("coil", "discrete") else reply.registers
            got = await ours.read(DEVICE, _request(table, start, count))
            assert got == [int(x) for x in expected], table
    finally:
        await ours.close()
        ours.shutdown()
        oracle.close()
    assert frames[0] == (True, bytes.fromhex("000100000006010300000014"))  # MBAP + FC03 0, 20
    assert frames[1][0] is False


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(script: Script) -> tuple[asyncio.Server, TcpTransport]:
    server = await asyncio.start_server(script, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = TcpTransport(BusConfig("net", "tcp", address=f"127.0.0.1:{port}", timeout=0.3))
    await transport.open()
    return server, transport


def _reply(tid: int, pdu: bytes, unit: int = 1, protocol: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1, unit) + pdu


async def test_a_late_reply_is_dropped_and_the_next_answer_read() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readexactly(12)
        await asyncio.sleep(0.5)  # past the 0.3 s timeout
        tid = struct.unpack(">H", first[:2])[0]
        writer.write(_reply(tid, bytes([3, 2, 0, 7])))  # late answer to the first request
        second = await reader.readexactly(12)
        writer.write(_reply(struct.unpack(">H", second[:2])[0], bytes([3, 2, 0, 42])))
        await writer.drain()
        await reader.read()  # until our side closes
        writer.close()

    server, transport = await _serve(script)
    try:
        with pytest.raises(DeviceTimeout):
            await transport.read(DEVICE, _request("holding", 0, 1))
        await asyncio.sleep(0.3)  # the late reply is waiting in the socket now
        assert await transport.read(DEVICE, _request("holding", 0, 1)) == [42]
    finally:
        await transport.close()
        transport.shutdown()
        await asyncio.sleep(0.05)  # the server's handler sees our close and ends
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (lambda tid: _reply(tid + 5, bytes([3, 2, 0, 1])), FrameError, "transaction id"),
        (lambda tid: _reply(tid, bytes([3, 2, 0, 1]), unit=9), FrameError, "device id 9"),
        (lambda tid: _reply(tid, bytes([0x83, 2])), DeviceException, "exception 02"),
        (lambda tid: _reply(tid, bytes([3, 4, 0, 1, 0, 2])), FrameError, "byte count 4"),
        (lambda tid: _reply(tid, bytes([3, 2, 0, 1]), protocol=1), FrameError, "MBAP header"),
    ],
)
async def test_replies_that_do_not_answer_the_request(
    answer: Callable[[int], bytes], error: type[Exception], text: str
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readexactly(12)
        writer.write(answer(struct.unpack(">H", request[:2])[0]))
        await writer.drain()
        await reader.read()  # until our side closes
        writer.close()

    server, transport = await _serve(script)
    try:
        with pytest.raises(error, match=text):
            await transport.read(DEVICE, _request("holding", 0, 1))
        if text == "MBAP header":  # out of step: the connection is dropped, reopened by the poller
            assert not transport.is_open
    finally:
        await transport.close()
        transport.shutdown()
        await asyncio.sleep(0.05)  # the server's handler sees our close and ends
        server.close()
        await server.wait_closed()


async def test_a_closed_connection_is_port_unavailable() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(12)
        writer.close()
        await writer.wait_closed()

    server, transport = await _serve(script)
    try:
        with pytest.raises(PortUnavailable):
            await transport.read(DEVICE, _request("holding", 0, 1))
        assert not transport.is_open
    finally:
        transport.shutdown()
        await asyncio.sleep(0.05)  # the server's handler sees our close and ends
        server.close()
        await server.wait_closed()


async def test_each_read_gets_its_whole_timeout_from_its_own_request() -> None:
    """One deadline watch serves many reads: a read started after an earlier one's deadline was
    set still waits its own full timeout (answered 0.25 s after being asked, inside 0.3 s, while
    the watch set by the first read fires), and a read nobody answers times out, not earlier."""
    delays = [0.0, 0.25]

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(12):
            tid = struct.unpack(">H", request[:2])[0]
            if not delays:
                continue  # the third request is never answered
            await asyncio.sleep(delays.pop(0))
            writer.write(_reply(tid, bytes([3, 2, 0, tid])))
            await writer.drain()
        writer.close()

    server, transport = await _serve(script)  # timeout 0.3 s
    loop = asyncio.get_running_loop()
    try:
        assert await transport.read(DEVICE, _request("holding", 0, 1)) == [1]
        await asyncio.sleep(0.2)  # the first read's deadline is 0.1 s ahead
        assert await transport.read(DEVICE, _request("holding", 0, 1)) == [2]
        t0 = loop.time()
        with pytest.raises(DeviceTimeout):
            await transport.read(DEVICE, _request("holding", 0, 1))
        assert loop.time() - t0 >= 0.3 - 0.01  # the loop's timers may fire a tick early
        assert transport.is_open  # a timeout keeps the connection
    finally:
        await transport.close()
        transport.shutdown()
        await asyncio.sleep(0.05)  # the server's handler sees our close and ends
        server.close()
        await server.wait_closed()


def _live_timers(loop: asyncio.AbstractEventLoop, callback: object) -> int:
    """The loop's scheduled, not cancelled, timers that would call ``callback``."""
    scheduled = loop._scheduled  # type: ignore[attr-defined]  # the loop's timer queue
    return sum(1 for h in scheduled if not h.cancelled() and h._callback == callback)


async def test_an_answered_read_leaves_no_timer_to_wake_the_loop() -> None:
    """Between polls no deadline watch may be left to fire: at a 1 s poll and a 0.5 s timeout
    it was a wake-up of its own every cycle (the node's CPU at slow polls is mostly wake-ups).
    While a read waits, its watch is live; once answered, none is."""
    answered = asyncio.Event()
    go = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(12):
            tid = struct.unpack(">H", request[:2])[0]
            answered.set()
            await go.wait()
            writer.write(_reply(tid, bytes([3, 2, 0, 5])))
            await writer.drain()
        writer.close()

    server, transport = await _serve(script)
    loop = asyncio.get_running_loop()
    try:
        for _ in range(3):
            go.clear()
            read = asyncio.create_task(transport.read(DEVICE, _request("holding", 0, 1)))
            await answered.wait()
            await asyncio.sleep(0.01)
            assert _live_timers(loop, transport._expire) == 1  # the waiting read's deadline
            go.set()
            assert await read == [5]
            answered.clear()
            assert _live_timers(loop, transport._expire) == 0
    finally:
        await transport.close()
        transport.shutdown()
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()
