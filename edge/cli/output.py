"""Output of the commissioning commands: stdout that survives ``| head``, errors as one line.

Errors go to stderr as ``error: <one line>`` in text mode and as one JSON object per line
(``{"error": "..."}`` plus fields) with ``--json``, so a script reading stdout never sees them
mixed into its data and a person never sees a traceback. A reader that closes the pipe early
(``edge read --json | head -1``) ends the command quietly with exit status 141, as if SIGPIPE had
killed it, the way other Unix tools behave.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

__all__ = ["EXIT_PIPE", "PipeClosed", "Stdout", "fail", "quiet_exit_on_closed_pipe", "report"]

#: exit status after the reader closed our stdout (128 + SIGPIPE)
EXIT_PIPE = 141


class PipeClosed(Exception):
    """The reader of stdout went away (``| head``)."""


class Stdout:
    """Line output to stdout; raises :class:`PipeClosed` instead of BrokenPipeError."""

    def __init__(self) -> None:
        self._out = sys.stdout

    def line(self, text: str) -> None:
        """Write one line and flush it (a pipe reader sees each line as it comes)."""
        try:
            self._out.write(text + "\n")
            self._out.flush()
        except BrokenPipeError as exc:
            raise PipeClosed from exc


def quiet_exit_on_closed_pipe() -> NoReturn:
    """Exit 141 without Python's 'Exception ignored ... BrokenPipeError' at shutdown."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests): nothing to redirect
        pass
    sys.exit(EXIT_PIPE)


def report(message: str, as_json: bool, **fields: Any) -> None:
    """Print one problem on stderr: ``error: message`` or a JSON object."""
    if as_json:
        import orjson

        line = orjson.dumps({"error": message, **fields}).decode()
    else:
        line = f"error: {message}"
    with contextlib.suppress(BrokenPipeError):  # stderr closed too: nothing left to tell
        print(line, file=sys.stderr, flush=True)


def fail(messages: str | Iterable[str], code: int, as_json: bool = False) -> NoReturn:
    """Report each message (one line each) and exit with ``code``."""
    for message in [messages] if isinstance(messages, str) else messages:
        for line in message.splitlines() or [""]:
            report(line, as_json)
    sys.exit(code)
