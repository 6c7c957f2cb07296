"""A real running node (and its commit process) maps no library it does not use (issue 18 point 3).

tests/edge/test_runtime_imports.py checks the import sets in a probe; this reads the memory
maps of the real processes of ``edge run`` polling firmware-sim: the shared objects of numpy
(node and child) and of OpenSSL / the crypto library (child) are not mapped. With the default
commit worker (a thread) the node is one process; ``commit_worker = "process"`` adds the child.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from node_job import tree_pids, write_node, write_scenario

from edge.firmware_sim import SimulatorThread, load_scenario

pytestmark = pytest.mark.integration


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_running_node_and_commit_process_map_only_what_they_use(
    tmp_path: Path, worker: str
) -> None:
    scenario = load_scenario(write_scenario(tmp_path))
    processes = 1 if worker == "thread" else 2
    with SimulatorThread(scenario, tmp_path / "sim", seed=4) as sim:
        ledger = "" if worker == "thread" else 'commit_worker = "process"'
        config = write_node(tmp_path, sim.tcp_endpoints["plc"][1], ledger=ledger)
        node = subprocess.Popen([sys.executable, "-m", "edge", "run", "-c", str(config)],
                                cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(tree_pids(node.pid)) < processes:
                time.sleep(0.1)
            time.sleep(2.0)  # polling, evaluating, committing: everything it runs is loaded
            pids = tree_pids(node.pid)
            assert len(pids) == processes, pids  # the node (and its commit process)
            node_maps = _maps(pids[0])
            child_maps = _maps(pids[1]) if worker == "process" else ""
            assert node.poll() is None
        finally:
            node.send_signal(signal.SIGTERM)
            _, err = node.communicate(timeout=30)
    assert node.returncode == 0, err.decode()
    assert "_sqlite3" in node_maps
    assert "numpy" not in node_maps
    assert "_rust.abi3" in node_maps  # the node signs checkpoints (cryptography)
    if worker == "thread":
        return
    assert "_sqlite3" in child_maps
    assert "numpy" not in child_maps
    for lib in ("_ssl", "_hashlib", "_rust.abi3", "libssl", "libcrypto"):
        assert lib not in child_maps, lib
