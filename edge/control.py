"""The node's local control socket: operator commands from ``edge alarm ...`` on the gateway.

A Unix socket at ``<data_dir>/control.sock`` (mode 0660: whoever may use the gateway's data
directory may acknowledge its alarms). Protocol: one JSON command per line in, one JSON result
per line out (``{"ok": true, ...}`` or ``{"ok": false, "error": "<one line>"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from edge.commands import CommandError, OperatorCommand, parse_command
from edge.errors import EdgeError, NodeNotRunning

__all__ = ["ControlServer", "send_command"]

Handler = Callable[[OperatorCommand], Awaitable[dict[str, Any]]]


class ControlServer:
    """Serves the control socket until cancelled."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler

    async def run(self) -> None:
        """Listen until cancelled; remove the socket file on the way out."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left over from a killed node
        server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o660)
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
                result = await self._handler(parse_command(line))
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
