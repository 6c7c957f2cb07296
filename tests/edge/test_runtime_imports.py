"""A running node imports only what it runs (issue 18 point 3: memory); checked, not timed.

Every module a process imports stays resident for the life of the node: numpy alone is ~15 MB,
asyncio with ssl ~9 MB. The node must not load numpy (replay, SPC charts and the quality office
use it; the running rules do not), the CLI's table library, the office, the simulator or
prometheus-client without ``[metrics]``; the commit process (a second Python process for the
node's whole life) must not load asyncio, ssl, OpenSSL's hashlib or the crypto library. The
figures are in tests/bench/test_bench_node_resources.py and docs/design.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from node_job import write_node

#: never in a running node (without [metrics])
NODE_NEVER = ("numpy", "rich", "ruamel", "prometheus_client", "reportlab", "pandas",
              "edge.office", "edge.firmware_sim", "edge.demo", "edge.metrics",
              "importlib.metadata")  # fmt: skip
#: only for a node with a serial bus (rtu or line): ~0.6 MB resident
SERIAL = ("minimalmodbus", "serial")
#: never in the commit process
CHILD_NEVER = ("asyncio", "ssl", "_ssl", "hashlib", "_hashlib", "cryptography", "numpy",
               "edge.ledger.entry", "edge.ledger.store", "edge.rules", "edge.drivers")  # fmt: skip

_NODE_PROBE = """
import json, sys
from edge.cli import main
command = main.get_command(None, "run")  # the run command's module, as `edge run` loads it
from edge.config import load_config
from edge.runtime import Node
node = Node(load_config(sys.argv[1]))
print(json.dumps(sorted(sys.modules)))
"""


def _modules(code: str, *args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def test_a_node_with_tcp_bus_mqtt_and_rules_imports_no_heavy_module(tmp_path: Path) -> None:
    config = write_node(tmp_path, 5020, broker_port=1883)
    modules = _modules(_NODE_PROBE, str(config))
    assert "edge.runtime" in modules
    assert "aiomqtt" in modules
    assert _loaded(modules, NODE_NEVER) == []
    assert _loaded(modules, SERIAL) == []  # a TCP bus: no serial drivers
    probe = _NODE_PROBE.replace("node = Node", "import edge.drivers.rtu\nnode = Node")
    assert _loaded(_modules(probe, str(config)), SERIAL) == list(SERIAL)  # the check sees them


def test_metrics_loads_prometheus_client_only_when_configured(tmp_path: Path) -> None:
    config = write_node(tmp_path, 5020, metrics="127.0.0.1:9108")
    probe = _NODE_PROBE.replace("node = Node", "import edge.metrics\nnode = Node")
    assert "prometheus_client" in _modules(probe, str(config))  # the check can see it


def test_the_commit_process_imports_neither_asyncio_nor_crypto() -> None:
    modules = _modules("import json, sys\nimport edge.ledger.commit_process\n"
                       "print(json.dumps(sorted(sys.modules)))")  # fmt: skip
    assert "sqlite3" in modules
    assert "edge.ledger.journal" in modules
    assert _loaded(modules, CHILD_NEVER) == []


def test_the_public_names_still_resolve_lazily() -> None:
    """What moved behind lazy imports is still reachable where it was."""
    from edge.ledger import CHECKPOINT, Entry, make_entry
    from edge.rules import replay, replay_arrays
    from edge.rules.nelson import nelson_flags

    assert CHECKPOINT == "checkpoint"
    assert callable(make_entry)
    assert isinstance(Entry, type)
    assert callable(replay)
    assert callable(replay_arrays)
    assert callable(nelson_flags)
