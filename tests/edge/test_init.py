"""``edge init``: what it writes passes the project's own checks and systemd's, and nothing is
ever overwritten."""

from __future__ import annotations

import configparser
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from node_db import sync_db

EDGE = [sys.executable, "-m", "edge"]


def _edge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("init") / "etc-edge"
    out = _edge("init", "--node-id", "line3-gw", "--dir", str(base), "--json")
    assert out.returncode == 0, out.stderr
    return base, json.loads(out.stdout)


def _unit(path: Path) -> configparser.RawConfigParser:
    """The unit as sections of keys; repeated keys (DeviceAllow=) keep every value."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    # systemd repeats keys; configparser keeps the last: join repeats before parsing
    lines: list[str] = []
    seen: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if line.startswith("["):
            seen = {}
        m = re.match(r"^(\w+)=(.*)$", line)
        if m and m[1] in seen:
            lines[seen[m[1]]] += f"\n  {m[2]}"
            continue
        if m:
            seen[m[1]] = len(lines)
        lines.append(line)
    parser.read_string("\n".join(lines))
    return parser


def test_init_writes_config_rules_key_and_unit(scaffold: tuple[Path, dict[str, str]]) -> None:
    base, info = scaffold
    assert info["config"] == str(base / "node.toml")
    assert info["rules"] == str(base / "rules" / "first-rule.yaml")
    assert info["unit"] == str(base / "edge-qc.service")
    key = Path(info["key"])
    assert key == base / "data" / "node.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # the feed printed is the raw public key of the private key written (read with the
    # crypto library directly, not through edge's key code)
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)  # fmt: skip
    assert info["feed"] == raw.hex()
    assert (base / "data" / "node.key.pub").read_text().strip() == raw.hex()


def test_init_output_passes_config_check_and_rules_check_unchanged(
    scaffold: tuple[Path, dict[str, str]],
) -> None:
    base, _ = scaffold
    config = _edge("config", "check", str(base / "node.toml"), "--json")
    assert config.returncode == 0, config.stdout
    report = json.loads(config.stdout)["files"][0]
    assert (report["ok"], report["points"], report["rule_files"]) == (True, 1, 1)
    rules = _edge("rules", "check", str(base / "rules" / "first-rule.yaml"),
                  "--config", str(base / "node.toml"))  # fmt: skip
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "1 rules" in rules.stdout


def test_systemd_analyze_verify_passes_without_a_warning(
    scaffold: tuple[Path, dict[str, str]],
) -> None:
    base, _ = scaffold
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing: `make test` installs it (Debian package systemd)"
    verify = subprocess.run([exe, "verify", str(base / "edge-qc.service")],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    # verify exits 0 on unknown keys and bad values and only warns: any word is a failure
    assert verify.returncode == 0, verify.stderr
    assert [ln for ln in verify.stderr.splitlines() if "edge-qc.service" in ln] == []
    security = subprocess.run([exe, "security", "--offline=yes", str(base / "edge-qc.service")],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert exposure is not None, security.stdout + security.stderr
    assert float(exposure[1]) <= 2.0  # systemd's scale: 0 (locked down) .. 10 (exposed)


def test_unit_runs_unprivileged_restarts_stops_cleanly_and_is_hardened(
    scaffold: tuple[Path, dict[str, str]],
) -> None:
    base, info = scaffold
    service = _unit(base / "edge-qc.service")["Service"]
    assert service["User"] == "edge"
    assert service["SupplementaryGroups"] == "dialout"
    assert service["ExecStart"].endswith(f"run -c {base / 'node.toml'}")
    assert Path(service["ExecStart"].split()[0]).is_absolute()
    assert service["Restart"] == "on-failure"
    assert (service["KillMode"], service["KillSignal"]) == ("mixed", "SIGTERM")
    assert int(service["TimeoutStopSec"]) > 0
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == info["data_dir"]
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups"):  # fmt: skip
        assert service[key] == "yes", key
    assert service["ProtectHome"] in ("yes", "read-only")
    assert service["CapabilityBoundingSet"] == ""
    assert service["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert service["SystemCallFilter"].splitlines()[0] == "@system-service"
    assert service["DevicePolicy"] == "closed"
    assert "char-ttyUSB rw" in service["DeviceAllow"]


def test_init_never_overwrites_and_writes_nothing_when_one_file_exists(tmp_path: Path) -> None:
    (tmp_path / "edge-qc.service").write_text("mine\n")
    out = _edge("init", "--node-id", "gw1", "--dir", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr == (
        f"edge: {tmp_path / 'edge-qc.service'}: exists; edge init never overwrites "
        "(nothing written)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge-qc.service"]
    assert (tmp_path / "edge-qc.service").read_text() == "mine\n"


def test_a_second_init_changes_nothing(scaffold: tuple[Path, dict[str, str]]) -> None:
    base, _ = scaffold
    before = {p: p.read_bytes() for p in base.rglob("*") if p.is_file()}
    out = _edge("init", "--node-id", "other", "--dir", str(base), "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["ok"] is False
    assert {p: p.read_bytes() for p in base.rglob("*") if p.is_file()} == before


def test_a_bad_node_id_is_one_line(tmp_path: Path) -> None:
    out = _edge("init", "--node-id", "gw 1/x", "--dir", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1
    assert "--node-id" in out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_the_scaffolded_node_runs_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """No device at the scaffold's port: the node runs anyway and a SIGTERM stops it (exit 0)."""
    assert _edge("init", "--node-id", "gw1", "--dir", str(tmp_path)).returncode == 0
    toml = tmp_path / "node.toml"
    # no serial adapter here: point the bus at a path that is not there (the node keeps trying)
    toml.write_text(toml.read_text().replace('"/dev/ttyUSB0"', '"no-such-port"'))
    proc = subprocess.Popen([*EDGE, "run", "-c", str(toml)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    db = tmp_path / "data" / "ledger.db"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                sync_db(db)  # a running node's journal first, as edge ledger readers do
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:
                    if conn.execute("SELECT 1 FROM entries WHERE type='node.start'").fetchone():
                        break
                except sqlite3.OperationalError:
                    pass
                finally:
                    conn.close()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    sync_db(db)  # a running node's journal first, as edge ledger readers do
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        types = [t for (t,) in conn.execute("SELECT type FROM entries ORDER BY seq")]
    finally:
        conn.close()
    assert types[0] == "node.start"
    assert [t for t in types if t != "checkpoint"][-1] == "node.stop"  # nothing after it


def test_run_as_root_init_hands_the_data_dir_to_the_units_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:  # pragma: no cover - the test machine runs as root
        pytest.fail("handing files to another user needs root")
    out = _edge("init", "--node-id", "gw1", "--dir", str(tmp_path), "--user", "nobody", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["data_dir_owner"] == "nobody"
    nobody = pwd.getpwnam("nobody").pw_uid
    data = tmp_path / "data"
    assert {p.stat().st_uid for p in [data, *data.iterdir()]} == {nobody}
    assert (tmp_path / "node.toml").stat().st_uid == 0  # the config stays root's: read-only to it
    assert "User=nobody" in (tmp_path / "edge-qc.service").read_text().splitlines()
