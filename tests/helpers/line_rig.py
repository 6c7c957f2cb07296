"""The four-device RS-485 line of issue 19 on firmware-sim, for the line-fairness tests and bench.

19200 8N1, 200 ms timeout; ``press`` unit 1 every 100 ms, ``flow`` unit 2 and ``dosing`` unit 3
every 250 ms, ``env`` unit 4 every 1 s; each reads one float32 (two registers). The simulator
runs with line timing on, so every exchange takes its wire time (13.7 ms here).

Test modules import it as ``import line_rig`` (``tests/helpers`` is on pytest's path).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loop_stalls import StallMonitor

from edge.config import BusConfig, DeviceConfig, PointConfig
from edge.drivers.rtu import RtuTransport
from edge.drivers.scheduler import DeviceRuntime, ModbusPoller
from edge.firmware_sim import SimulatorThread, exchange_time, parse_scenario
from edge.readings import Quality, Reading

BAUD = 19200
TIMEOUT = 0.2
#: device -> (unit, poll interval, its point, the value it holds)
DEVICES = {
    "press": (1, 0.1, "pressure", 4.5),
    "flow": (2, 0.25, "flow_rate", 12.25),
    "dosing": (3, 0.25, "dose", 0.75),
    "env": (4, 1.0, "ambient", 21.5),
}
OWNER = {point: dev for dev, (_, _, point, _) in DEVICES.items()}
EXPECTED = {point: value for _, (_, _, point, value) in DEVICES.items()}
#: one transaction on this line: FC03 of 2 registers (8-byte request, 9-byte reply)
TRANSACTION = exchange_time(8, 9, BAUD)

SCENARIO = f"name: fairness\nbuses:\n  line: {{kind: rtu, baudrate: {BAUD}}}\ndevices:\n" + "".join(
    f"  {dev}: {{bus: line, unit: {unit}, points: "
    f"{{{point}: {{register: 0, type: float32, value: {value}}}}}}}\n"
    for dev, (unit, _, point, value) in DEVICES.items()
)


@contextmanager
def line_sim(tmp_path: Path, seed: int = 19) -> Iterator[SimulatorThread]:
    """The simulated line, running in a thread."""
    with SimulatorThread(parse_scenario(SCENARIO, None), tmp_path / "sim", seed=seed) as sim:
        yield sim


def make_poller(
    sim: SimulatorThread,
    *,
    devices: tuple[str, ...] = tuple(DEVICES),
    guard: float | None = None,
    priority: dict[str, int] | None = None,
) -> ModbusPoller:
    """A poller for the line (``guard``: the bus key; None = derived from the baud rate)."""
    bus = BusConfig(
        "line", "rtu", port=str(sim.serial_paths["line"]), baudrate=BAUD, timeout=TIMEOUT,
        guard=guard,
    )  # fmt: skip
    runtimes = []
    for name in devices:
        unit, poll, point, _ = DEVICES[name]
        dev = DeviceConfig(
            name, "line", unit=unit, poll=poll, priority=(priority or {}).get(name, 0)
        )
        runtimes.append(
            DeviceRuntime.build(dev, [PointConfig(point, name, register=0, type="float32")])
        )
    return ModbusPoller(bus, runtimes, RtuTransport(bus))


@dataclass
class Recorder:
    """Every emitted cycle: (monotonic time, device, readings), plus the deadline it served."""

    poller: ModbusPoller
    cycles: dict[str, list[tuple[float, list[Reading]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    served: list[tuple[int, str]] = field(default_factory=list)  #: (deadline offset µs, device)
    #: when the event loop could not run at all (filled while :func:`run_for` polls)
    stalls: StallMonitor = field(default_factory=StallMonitor)

    async def __call__(self, readings: list[Reading]) -> None:
        device = OWNER[readings[0].point]
        self.cycles[device].append((time.monotonic(), readings))
        # emit runs before the scheduler moves the device on: its deadline is the one served
        rt = next(d for d in self.poller.devices if d.device.name == device)
        self.served.append((rt.deadline_us - rt.anchor, device))

    def good(self, device: str, since: float = 0.0, until: float = math.inf) -> int:
        return sum(
            1
            for t, rs in self.cycles[device]
            if since <= t <= until and all(r.quality == Quality.GOOD for r in rs)
        )

    def qualities(self, device: str, since: float = 0.0, until: float = math.inf) -> set[Quality]:
        return {r.quality for t, rs in self.cycles[device] if since <= t <= until for r in rs}

    def intervals(self, device: str) -> list[float]:
        times = [t for t, _ in self.cycles[device]]
        return [b - a for a, b in itertools.pairwise(times)]

    def free_intervals(self, device: str) -> list[float]:
        """Intervals between cycles less the event loop's stalls inside them: what the poller's
        choices cost (a loaded machine stalls every task alike; see :mod:`loop_stalls`)."""
        times = [t for t, _ in self.cycles[device]]
        return [b - a - self.stalls.within(a, b) for a, b in itertools.pairwise(times)]

    def check_values(self) -> None:
        """Only the true values were ever delivered (no reply decoded for the wrong device)."""
        for cycles in self.cycles.values():
            for _, rs in cycles:
                for r in rs:
                    if r.quality in (Quality.GOOD, Quality.STALE):
                        assert r.value == EXPECTED[r.point], r


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


async def run_for(poller: ModbusPoller, rec: Recorder, seconds: float) -> None:
    """Poll for ``seconds``, then cancel (promptly) and check the port was closed."""
    task = asyncio.create_task(poller.run(rec), name="bus:line")
    monitor = asyncio.create_task(rec.stalls.run(), name="stalls")
    await asyncio.sleep(seconds)
    monitor.cancel()
    assert not task.done(), "the poller died"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not poller.transport.is_open


def node_toml(sim: SimulatorThread, data_dir: Path) -> str:
    """A node config polling the line (for ``edge run`` / ``edge read`` as processes)."""
    lines = [
        "[node]", 'id = "fairness"', f'data_dir = "{data_dir}"', "",
        "[buses.line]", 'kind = "rtu"', f'port = "{sim.serial_paths["line"]}"',
        f"baudrate = {BAUD}", f'timeout = "{int(TIMEOUT * 1000)}ms"',
    ]  # fmt: skip
    for name, (unit, poll, point, _) in DEVICES.items():
        lines += ["", f"[devices.{name}]", 'bus = "line"', f"unit = {unit}"]
        lines += [f'poll = "{int(poll * 1000)}ms"']
        lines += ["", f"[points.{point}]", f'device = "{name}"', "register = 0"]
        lines += ['type = "float32"']
    return "\n".join(lines) + "\n"
