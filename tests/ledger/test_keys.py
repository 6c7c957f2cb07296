"""Node keys: mode 0600, never overwritten, clear errors; `edge keys init`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.errors import KeyFileError
from edge.ledger.keys import NodeKey, create_key_file, load_key, verify_signature


def test_create_writes_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "var" / "node.key"
    old = os.umask(0)  # even a permissive umask must not widen the key's mode
    try:
        key = create_key_file(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Path(f"{path}.pub").read_text().strip() == key.feed
    loaded = load_key(path)
    assert loaded.feed == key.feed
    assert len(key.feed) == 64
    sig = loaded.sign(b"message")
    assert verify_signature(key.feed, b"message", sig)
    assert not verify_signature(key.feed, b"messagf", sig)
    assert not verify_signature(NodeKey.generate().feed, b"message", sig)
    assert not verify_signature(key.feed, b"message", "zz")


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    key = create_key_file(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists; refusing to overwrite"):
        create_key_file(path)
    assert path.read_bytes() == before
    assert load_key(path).feed == key.feed


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no node key; create one with `edge keys init`"):
        load_key(tmp_path / "missing.key")
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    junk.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_key(junk)
    path = tmp_path / "node.key"
    create_key_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="mode is 0644; it must be 0600"):
        load_key(path)


def test_cli_keys_init(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["keys", "init", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    feed = load_key(tmp_path / "d" / "node.key").feed
    assert f"feed {feed}" in result.output
    again = runner.invoke(main, ["keys", "init", "--data-dir", str(tmp_path / "d")])
    assert again.exit_code == 1
    assert "refusing to overwrite" in again.output
    assert "Traceback" not in again.output
    assert load_key(tmp_path / "d" / "node.key").feed == feed
