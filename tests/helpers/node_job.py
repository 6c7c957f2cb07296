"""The 40-point job of issue 18 as files: a firmware-sim scenario and the node config that polls it.

One Modbus TCP slave (firmware-sim) with 20 holding and 20 input registers (two requests a
cycle, as in the issue's table), polled every ``poll`` by one
device; one limit rule with hysteresis (deadband) on a point that swings across its limit every
few seconds; alerts over MQTT QoS 1 when a broker port is given. Used by the resource bench
(tests/bench/test_bench_node_resources.py) and the metrics integration test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

POINTS = 40
#: the point the rule watches: a square wave 20 <-> 80 (period SWING_S), limit 60, deadband 5
SWING_S = 4.0


def write_scenario(directory: Path) -> Path:
    """The simulator's side: one tcp bus ``plc``, one device ``plant`` (unit 1), 40 registers."""
    lines = [
        "name: job40",
        "description: 20 holding + 20 input registers on one Modbus TCP slave (issue 18's job).",
        "buses:",
        "  plc:",
        "    kind: tcp",
        "devices:",
        "  plant:",
        "    bus: plc",
        "    unit: 1",
        "    points:",
        "      p00:",
        "        register: 0",
        "        type: uint16",
        f"        model: {{kind: square, low: 20, high: 80, period: {SWING_S}s, duty: 0.5}}",
    ]
    for i in range(1, POINTS):
        lines += [
            f"      p{i:02d}:",
            *(["        table: input"] if i >= POINTS // 2 else []),
            f"        register: {i}",
            "        type: uint16",
            "        scale: 0.1",
            f"        model: {{kind: walk, start: {100 + i}, mean: {100 + i}, tau: 30s, sd: 0.5}}",
        ]
    path = directory / "job40.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_node(
    directory: Path,
    sim_port: int,
    *,
    poll: str = "100ms",
    broker_port: int | None = None,
    metrics: str | None = None,
    node_id: str = "job40-gw",
    ledger: str = "",
) -> Path:
    """The node's side: config and the one rule; returns the node.toml path.

    ``ledger``: lines for a ``[ledger]`` table (none: the defaults).
    """
    (directory / "limit.yaml").write_text(
        "version: 1\n"
        "rules:\n"
        "  - id: p00-high\n"
        "    kind: limit\n"
        "    point: p00\n"
        "    high: 60\n"
        "    deadband: 5\n"
        "    severity: high\n"
        '    message: "p00 {value} above {limit}"\n'
    )
    toml = [
        "[node]",
        f'id = "{node_id}"',
        'site = "bench"',
        'data_dir = "data"',
        "",
        "[buses.plc]",
        'kind = "tcp"',
        f'address = "127.0.0.1:{sim_port}"',
        'timeout = "500ms"',
        "",
        "[devices.plant]",
        'bus = "plc"',
        "unit = 1",
        f'poll = "{poll}"',
        "",
        "[points.p00]",
        'device = "plant"',
        "register = 0",
        'type = "uint16"',
    ]
    for i in range(1, POINTS):
        toml += [
            "",
            f"[points.p{i:02d}]",
            'device = "plant"',
            *(['table = "input"'] if i >= POINTS // 2 else []),
            f"register = {i}",
            'type = "uint16"',
            "scale = 0.1",
        ]
    toml += ["", "[rules]", 'files = ["limit.yaml"]']
    if ledger:
        toml += ["", "[ledger]", ledger]
    if broker_port is not None:
        toml += ["", "[mqtt]", 'host = "127.0.0.1"', f"port = {broker_port}"]
    if metrics is not None:
        toml += ["", "[metrics]", f'listen = "{metrics}"']
    path = directory / "node.toml"
    path.write_text("\n".join(toml) + "\n")
    return path


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/<pid>/task/*/children)."""
    out = [pid]
    i = 0
    while i < len(out):
        for task in Path(f"/proc/{out[i]}/task").glob("*"):
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
        i += 1
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (processes gone count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / tick


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB, from /proc/<pid>/smaps_rollup."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    """What a process tree used over a measured window of the job."""

    cpu: float  #: CPU % (user + system of the tree) over the window
    rss_kb: int  #: highest sum of RSS over the tree, sampled through the window
    pss_kb: int  #: highest sum of PSS
    requests_per_cycle: float  #: Modbus requests the slave answered per poll cycle
    alerts: int  #: messages the subscriber received (from the start, warm-up included)
    per_process: dict[int, tuple[int, int]]  #: (RSS, PSS) kB per pid at the window's end
    returncode: int  #: the process's exit status after SIGTERM
    stderr: str


def measure(
    command: list[str],
    *,
    cwd: Path,
    sim: Any,  # edge.firmware_sim.SimulatorThread
    poll_s: float,
    broker_port: int,
    alerts_topic: str,
    window: float,
    warmup: float,
) -> Usage:
    """Run ``command`` against the job's slave and broker; measure its tree over ``window``.

    The subscriber (``mosquitto_sub``, QoS 1 on ``alerts_topic``) and the slave run outside
    the measured tree. The process is stopped with SIGTERM at the end.
    """
    alerts = cwd / f"alerts-{time.monotonic_ns()}.txt"
    with alerts.open("w") as out:
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker_port), "-q", "1",
             "-t", alerts_topic],
            stdout=out, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(warmup)
        if proc.poll() is not None:
            raise AssertionError(f"{command[0]} ended: {proc.communicate()[1].decode()[-2000:]}")
        requests0 = sim.tcp["plc"].requests
        pids = tree_pids(proc.pid)
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        rss = pss = 0
        end = t0 + window
        while time.monotonic() < end:
            time.sleep(min(2.0, max(0.0, end - time.monotonic())))
            pids = tree_pids(proc.pid)
            mem = [memory_kb(p) for p in pids]
            rss = max(rss, sum(m[0] for m in mem))
            pss = max(pss, sum(m[1] for m in mem))
        cpu1, t1 = cpu_seconds(pids), time.monotonic()
        requests = sim.tcp["plc"].requests - requests0
        per_process = {p: memory_kb(p) for p in pids}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        sub.terminate()
        sub.wait(timeout=10)
    return Usage(
        cpu=100.0 * (cpu1 - cpu0) / (t1 - t0),
        rss_kb=rss,
        pss_kb=pss,
        requests_per_cycle=requests / ((t1 - t0) / poll_s),
        alerts=alerts.read_text().count("\n"),
        per_process=per_process,
        returncode=proc.returncode,
        stderr=err.decode(errors="replace"),
    )
