"""The node's local control socket: operator commands from ``edge alarm ...`` on the gateway.

A Unix socket at ``<data_dir>/control.sock``. Protocol: one JSON command per line in, one JSON
result per line out (``{"ok": true, ...}`` or ``{"ok": false, "error": "<one line>"}``).

Who sends a command is what the kernel says: the peer's uid from ``SO_PEERCRED``, named through
the password database (``unix:alice``); the payload's ``actor`` is only a claim
(:func:`edge.commands.authenticate`). The ``[operators]`` table decides who may do what
(:func:`edge.commands.authorize`); a refusal is answered with one line, logged
(``control.refused``) and recorded nowhere as an action. The socket is mode 0666 because the
node itself decides who may act; the data directory's permissions still decide who reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from edge.commands import (
    CommandError,
    Identity,
    OperatorCommand,
    action_class,
    authenticate,
    authorize,
    parse_command,
)
from edge.config import OperatorsConfig
from edge.errors import EdgeError, NodeNotRunning
from edge.log import event

__all__ = ["ControlServer", "peer_identity", "send_command", "unix_identity"]

Handler = Callable[[OperatorCommand], Awaitable[dict[str, Any]]]

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def unix_identity(uid: int, gid: int) -> Identity:
    """The local user ``uid`` with its group names (a uid without a name is ``unix:<uid>``)."""
    try:
        name = pwd.getpwuid(uid).pw_name
        gids = os.getgrouplist(name, gid)
    except KeyError:
        name, gids = str(uid), [gid]
    groups: list[str] = []
    for g in dict.fromkeys(gids):
        with contextlib.suppress(KeyError):
            groups.append(grp.getgrgid(g).gr_name)
    return Identity("unix", name, uid, tuple(groups))


def peer_identity(sock: socket.socket) -> Identity:
    """Who is at the other end of a connected Unix socket, as the kernel knows them."""
    _pid, uid, gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    return unix_identity(uid, gid)


class ControlServer:
    """Serves the control socket until cancelled.

    Args:
        path: the socket file.
        handler: carries out an authenticated, authorised command.
        operators: who may do what (default: everyone may read; root and the node's user act).
    """

    def __init__(
        self, path: Path, handler: Handler, operators: OperatorsConfig | None = None
    ) -> None:
        self.path = path
        self._handler = handler
        self._operators = operators or OperatorsConfig()
        self.refused = 0  #: commands refused as unauthorised

    async def run(self) -> None:
        """Listen until cancelled; remove the socket file on the way out."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left over from a killed node
        server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o666)
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                line = await reader.readline()
            try:
                result = await self._authorised(writer, parse_command(line))
            except (CommandError, EdgeError) as exc:
                result = {"ok": False, "error": str(exc)}
            writer.write(orjson.dumps(result) + b"\n")
            async with asyncio.timeout(10):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass  # a client that hangs or goes away costs us nothing
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _authorised(
        self, writer: asyncio.StreamWriter, cmd: OperatorCommand
    ) -> dict[str, Any]:
        who = peer_identity(writer.get_extra_info("socket"))
        allowed = self._operators.allowed(action_class(cmd.action))
        reason = authorize(who, cmd.action, allowed, node_uid=os.geteuid())
        if reason is not None:
            self.refused += 1
            event("control.refused", logging.WARNING, actor=str(who), action=cmd.action,
                  rule=cmd.rule, entry=cmd.entry, reason=reason)  # fmt: skip
            return {"ok": False, "error": reason}
        return await self._handler(authenticate(cmd, who))


async def send_command(
    path: Path, command: dict[str, Any], patience: float = 10.0
) -> dict[str, Any]:
    """Send one command to a running node and return its result.

    Raises:
        NodeNotRunning: no node is running with this socket.
        EdgeError: the node did not answer in time.
    """
    try:
        async with asyncio.timeout(patience):
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(orjson.dumps(command) + b"\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
    except (FileNotFoundError, ConnectionRefusedError):
        raise NodeNotRunning(
            f"no running node at {path} (is `edge run` running with this config?)"
        ) from None
    except TimeoutError:
        raise EdgeError(f"node at {path} did not answer within {patience:g} s") from None
    result: dict[str, Any] = orjson.loads(line)
    return result
