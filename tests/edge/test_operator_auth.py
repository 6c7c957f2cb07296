"""Operator commands act as who was authenticated: the Unix peer of the control socket.

The control socket is served in this process; clients connect as another real user (``nobody``,
via a subprocess running with that uid), so SO_PEERCRED reports a uid the test did not choose
through the code under test. The MQTT side, with a real Mosquitto and its ACL, is in
tests/integration/test_operator_auth.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.commands import Identity, OperatorCommand, authenticate, authorize, parse_command
from edge.config import OperatorsConfig
from edge.control import ControlServer, send_command

NOBODY = pwd.getpwnam("nobody")
# a Python the user nobody may run (the venv lives under root's private paths)
_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable

_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\\n")
print(s.makefile().readline(), end="")
"""


def _as_nobody(sock: Path, command: dict[str, Any]) -> dict[str, Any]:
    """Send one command from a process running as the user nobody."""
    if os.geteuid() != 0:  # pragma: no cover - the test machine runs as root
        pytest.fail("switching to another user needs root")
    out = subprocess.run(
        [_PYTHON, "-I", "-c", _CLIENT, str(sock), json.dumps(command)],
        user=NOBODY.pw_uid,
        group=NOBODY.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


class _Node:
    """The handler side: what the node was asked to do, and by whom."""

    def __init__(self) -> None:
        self.done: list[OperatorCommand] = []

    async def __call__(self, cmd: OperatorCommand) -> dict[str, Any]:
        self.done.append(cmd)
        return {"ok": True, "actor": cmd.actor}


async def _serve(operators: OperatorsConfig) -> AsyncIterator[tuple[Path, _Node, ControlServer]]:
    # a directory every user can reach (pytest's tmp_path is private to root)
    base = Path(tempfile.mkdtemp(prefix="edge-ctl-"))
    base.chmod(0o755)  # noqa: ASYNC240 - set-up before the server runs: nothing to block
    node = _Node()
    server = ControlServer(base / "control.sock", node, operators)
    task = asyncio.create_task(server.run())
    for _ in range(100):
        if server.path.exists():
            break
        await asyncio.sleep(0.02)
    try:
        yield server.path, node, server
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        base.rmdir()  # noqa: ASYNC240 - tear-down after the server stopped


@pytest.fixture
async def default_node() -> AsyncIterator[tuple[Path, _Node, ControlServer]]:
    async for x in _serve(OperatorsConfig()):
        yield x


async def test_another_user_may_read_but_not_act_by_default(default_node, caplog) -> None:  # type: ignore[no-untyped-def]
    sock, node, server = default_node
    caplog.set_level(logging.WARNING, logger="edge")
    status = await asyncio.to_thread(_as_nobody, sock, {"action": "status"})
    assert status == {"ok": True, "actor": "unix:nobody"}
    ack = {"action": "ack", "rule": "temp-high", "actor": "root", "comment": "mine"}
    refused = await asyncio.to_thread(_as_nobody, sock, ack)
    assert refused == {"ok": False, "error": "unix:nobody may not ack: not in [operators] act"}
    # the refused command never reached the node: nothing to record
    assert [c.action for c in node.done] == ["status"]
    assert server.refused == 1
    (refusal,) = [r for r in caplog.records if r.getMessage() == "control.refused"]
    fields = refusal.fields  # type: ignore[attr-defined]
    assert (fields["actor"], fields["action"], fields["rule"]) == (
        "unix:nobody",
        "ack",
        "temp-high",
    )


async def test_the_nodes_own_user_acts_under_its_name_and_the_claim_is_kept(default_node) -> None:  # type: ignore[no-untyped-def]
    sock, node, _ = default_node
    me = pwd.getpwuid(os.geteuid()).pw_name
    result = await send_command(
        sock, {"action": "ack", "rule": "temp-high", "actor": "qa.jane", "comment": "door open"}
    )
    assert result == {"ok": True, "actor": f"unix:{me}"}
    (cmd,) = node.done
    assert cmd.actor == f"unix:{me}"
    assert cmd.claimed_actor == "qa.jane"
    assert cmd.comment == "door open [claimed actor: qa.jane]"


async def test_a_group_grants_act_and_not_correct() -> None:
    group = __import__("grp").getgrgid(NOBODY.pw_gid).gr_name
    async for sock, node, server in _serve(OperatorsConfig(act=(f"@{group}",))):
        ack = await asyncio.to_thread(_as_nobody, sock, {"action": "ack", "rule": "r"})
        assert ack == {"ok": True, "actor": "unix:nobody"}
        fix = {"action": "correct", "entry": "7155f822", "comment": "scale off"}
        refused = await asyncio.to_thread(_as_nobody, sock, fix)
        assert refused["error"] == "unix:nobody may not correct: not in [operators] correct"
        assert [(c.action, c.actor, c.comment) for c in node.done] == [("ack", "unix:nobody", "")]
        assert server.refused == 1


async def test_a_named_user_may_correct_when_listed() -> None:
    async for sock, node, _ in _serve(OperatorsConfig(correct=("nobody",))):
        fix = {"action": "correct", "entry": "7155f822", "comment": "scale off"}
        assert (await asyncio.to_thread(_as_nobody, sock, fix))["ok"] is True
        assert node.done[0].actor == "unix:nobody"


names = st.from_regex(r"[a-z][a-z0-9_.-]{0,12}", fullmatch=True)


@given(name=names, listed=st.lists(names, max_size=4), groups=st.lists(names, max_size=3))
def test_authorize_grants_exactly_the_listed_users_and_groups(
    name: str, listed: list[str], groups: list[str]
) -> None:
    who = Identity("unix", name, uid=1000, groups=tuple(groups))
    allowed = listed + [f"@{g}" for g in listed]
    granted = authorize(who, "ack", allowed, node_uid=999) is None
    assert granted == (name in listed or any(g in listed for g in groups))
    # a broker user of the same name is someone else
    assert (authorize(Identity("mqtt", name), "ack", allowed, node_uid=999) is None) is False
    assert authorize(Identity("mqtt", name), "ack", [f"mqtt:{name}"], node_uid=999) is None


def test_root_and_the_node_user_always_act_locally() -> None:
    assert authorize(Identity("unix", "root", uid=0), "correct", [], node_uid=999) is None
    assert authorize(Identity("unix", "edge", uid=999), "correct", [], node_uid=999) is None
    assert authorize(Identity("unix", "x", uid=5), "status", [], node_uid=999) is not None


def test_a_claim_equal_to_the_login_is_not_noted() -> None:
    cmd = parse_command('{"action": "ack", "rule": "r", "actor": "alice", "comment": "ok"}')
    done = authenticate(cmd, Identity("unix", "alice", uid=1000))
    assert (done.actor, done.claimed_actor, done.comment) == ("unix:alice", "alice", "ok")
    anon = authenticate(parse_command('{"action": "ack", "rule": "r"}'), Identity("mqtt", "bob"))
    assert (anon.actor, anon.claimed_actor, anon.comment) == ("mqtt:bob", "", "")
