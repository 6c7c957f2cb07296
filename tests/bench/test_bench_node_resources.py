"""Benchmark: CPU % and memory (RSS, PSS) of a running node and its children beside Node-RED.

The job of issue 18: 40 points polled from one firmware-sim Modbus TCP slave, one limit rule with
hysteresis, alerts over MQTT QoS 1 to a real Mosquitto. ``edge run`` is a real process; the
simulator runs in this process (a thread) and the broker in its own, so neither is counted. After
a warm-up, the node's and its commit process's CPU time is read from /proc over a fixed window;
memory is the sum of RSS and of PSS over the process tree (/proc/<pid>/smaps_rollup), sampled
through the window (the highest sum is printed).

Anchors (issue 18's table, measured on the issue's machine, Node-RED 4 with
node-red-contrib-modbus, hand-optimised block reads, 60 s windows): 2.5-2.8 % CPU and 106 MB RSS
at 100 ms polls. The issue gives no Node-RED CPU figure at 1 s polls, only that edge-qc then used
0.81-0.96x of it; Node-RED's figure is derived from the edge-qc CPU measured on this machine
before the work on issue 18 (0.40 % at 1 s: docs/design.md, "Memory and CPU of a running node")
as 0.40 / 0.96 = 0.42 %, the lower (stricter) end. The limit is half of each anchor's lower end.

A third run repeats 100 ms polls with ``[ledger] flush_interval = "50ms"``, the default before
issue 12's wear work (now 1 s): what the shorter crash window for raw readings costs (a journal
append and an fdatasync per interval while readings flow; docs/design.md, SD-card wear).

``EDGE_BENCH_WINDOW`` (seconds, default 60: the issue's windows) sets the window. On this shared
2-core machine a 30 s figure moves by about 15 % from run to run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from node_job import cpu_seconds, memory_kb, tree_pids, write_node, write_scenario

from edge.firmware_sim import SimulatorThread, load_scenario

NODE_RED = {"100ms": {"cpu": 2.5, "rss_mb": 106.0}, "1s": {"cpu": 0.42, "rss_mb": 106.0}}
WINDOW = float(os.environ.get("EDGE_BENCH_WINDOW", "60"))
WARMUP = 5.0


def _edge() -> list[str]:
    script = Path(sys.executable).parent / "edge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "edge"]


@pytest.mark.parametrize(
    ("poll", "ledger"), [("100ms", ""), ("1s", ""), ("100ms", 'flush_interval = "50ms"')]
)
def test_bench_node_resources(poll: str, ledger: str, tmp_path: Path, broker) -> None:  # type: ignore[no-untyped-def]
    scenario = load_scenario(write_scenario(tmp_path))
    with SimulatorThread(scenario, tmp_path / "sim", seed=1) as sim:
        _, port = sim.tcp_endpoints["plc"]
        config = write_node(tmp_path, port, poll=poll, broker_port=broker.port, ledger=ledger)
        alerts = tmp_path / "alerts.txt"
        with alerts.open("w") as out:
            sub = subprocess.Popen(
                ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                 "-t", "edge/+/alarms/#"],
                stdout=out, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        node = subprocess.Popen(
            [*_edge(), "run", "-c", str(config), "--log-level", "warning"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            time.sleep(WARMUP)
            assert node.poll() is None, node.communicate()[1].decode()
            requests0 = sim.tcp["plc"].requests
            pids = tree_pids(node.pid)
            cpu0, t0 = cpu_seconds(pids), time.monotonic()
            rss = pss = 0
            end = t0 + WINDOW
            while time.monotonic() < end:
                time.sleep(min(2.0, max(0.0, end - time.monotonic())))
                pids = tree_pids(node.pid)
                mem = [memory_kb(p) for p in pids]
                rss = max(rss, sum(m[0] for m in mem))
                pss = max(pss, sum(m[1] for m in mem))
            cpu1, t1 = cpu_seconds(pids), time.monotonic()
            requests = sim.tcp["plc"].requests - requests0
            per_process = {p: memory_kb(p) for p in pids}
        finally:
            node.send_signal(signal.SIGTERM)
            _, err = node.communicate(timeout=30)
            sub.terminate()
            sub.wait(timeout=10)
    assert node.returncode == 0, err.decode()
    cpu = 100.0 * (cpu1 - cpu0) / (t1 - t0)
    anchor = NODE_RED[poll]
    cycles = (t1 - t0) / (0.1 if poll == "100ms" else 1.0)
    received = alerts.read_text().count("\n")
    detail = ", ".join(f"{p}: {r / 1024:.1f}/{s / 1024:.1f}" for p, (r, s) in per_process.items())
    print(
        f"\nnode, 40 points every {poll}{', ' + ledger if ledger else ''}, {WINDOW:.0f} s: "
        f"{requests / cycles:.2f} requests/cycle, "
        f"{received} alerts at the subscriber\n"
        f"  CPU  {cpu:5.2f} % / limit {anchor['cpu'] / 2:.2f} % (0.5 x Node-RED {anchor['cpu']} %)"
        f" = {cpu / (anchor['cpu'] / 2):.2f}  | vs Node-RED {cpu / anchor['cpu']:.2f}x\n"
        f"  RSS  {rss / 1024:5.1f} MB / limit {anchor['rss_mb'] / 2:.1f} MB = "
        f"{rss / 1024 / (anchor['rss_mb'] / 2):.2f}  | vs Node-RED {rss / 1024 / anchor['rss_mb']:.2f}x\n"
        f"  PSS  {pss / 1024:5.1f} MB (RSS/PSS MB per process: {detail})"
    )
    assert requests / cycles > 1.5, "the node did not poll the job"  # 2 requests a cycle
    assert received > 0, "no alert reached the subscriber"
