"""Line-timing emulation: FC03 round trips against the theoretical RS-485 line time.

Run with ``make bench`` (or pytest -s). For 1, 10 and 125 registers at 9600, 19200 and 115200
baud, a minimal master (pyserial: write the request, read exactly the reply's length) measures
the median round trip through a real PTY with the simulator's line timing on, and prints it
beside the theoretical figure (11 bits per character, 3.5-character silence after each frame,
t3.5 fixed at 1.75 ms above 19200 baud; no turnaround). Limit: within 10 %.
"""

from __future__ import annotations

import statistics
import time

import pytest
import serial

from edge.firmware_sim import SimulatorThread, append_crc, exchange_time, parse_scenario

BAUDS = (9600, 19200, 115200)
COUNTS = (1, 10, 125)

SCENARIO = "name: timing\nbuses:\n" + "".join(
    f"  b{baud}: {{kind: rtu, baudrate: {baud}}}\n" for baud in BAUDS
) + "devices:\n" + "".join(
    f"  d{baud}: {{bus: b{baud}, unit: 1, tables: {{holding: 125}}}}\n" for baud in BAUDS
)  # fmt: skip


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with SimulatorThread(
        parse_scenario(SCENARIO, None), tmp_path_factory.mktemp("timing")
    ) as running:
        yield running


@pytest.mark.parametrize("baud", BAUDS)
@pytest.mark.parametrize("count", COUNTS)
def test_fc03_round_trip_matches_line_time(sim, baud, count):
    request = append_crc(bytes([1, 3, 0, 0, 0, count]))
    reply_len = 5 + 2 * count
    theory = exchange_time(len(request), reply_len, baud)
    rounds = max(10, min(40, int(3.0 / theory)))
    samples = []
    with serial.Serial(str(sim.serial_paths[f"b{baud}"]), baud, timeout=2.0) as port:
        for _ in range(rounds + 2):
            port.reset_input_buffer()
            start = time.perf_counter()
            port.write(request)
            reply = port.read(reply_len)
            samples.append(time.perf_counter() - start)
            assert len(reply) == reply_len
            assert reply[:3] == bytes([1, 3, 2 * count])
    measured = statistics.median(samples[2:])  # the first two warm the path up
    ratio = measured / theory
    print(
        f"\nFC03 {count:>3} reg @ {baud:>6} baud: measured {measured * 1e3:8.3f} ms"
        f"  theoretical {theory * 1e3:8.3f} ms  ratio {ratio:5.3f}  (limit 0.90-1.10, n={rounds})"
    )
    assert 0.9 <= ratio <= 1.1
