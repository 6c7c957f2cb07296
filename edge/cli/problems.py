"""How the commissioning commands report problems and survive a closed pipe.

They follow the conventions every ``edge`` command shares (:mod:`edge.cli.output`,
:mod:`edge.cli.pipes`), with what commissioning adds: several problems at once (one line each),
details beside the message in JSON, and diagnostics that do not end the command:

- A failure that ends the command is one line per problem: ``edge: <message>`` on stderr in
  text mode; with ``--json`` one JSON object per problem, ``{"ok": false, "error": "..."}`` plus
  any details, on stdout, where the program reading the JSON looks. Non-zero exit status.
- A problem that does not end the command (``edge read`` diagnosing one device while the others
  are read) is a diagnostic: the same line on stderr, or with ``--json`` the JSON object on
  stderr, so a stream of readings on stdout stays readings.
- A reader that closes the pipe early (``edge read --json | head -1``) ends the command quietly:
  stdout is pointed at /dev/null (Python would otherwise fail again flushing it at exit) and
  the exit status is 1, as click and rich end on a closed pipe.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

from edge.cli.output import dump_json
from edge.cli.pipes import EXIT_CLOSED_PIPE, closed_pipe_exit

__all__ = [
    "EXIT_PIPE",
    "PipeClosed",
    "Stdout",
    "fail",
    "quiet_exit_on_closed_pipe",
    "quiet_logs",
    "report",
]

#: exit status after the reader closed our stdout (as click and rich end then)
EXIT_PIPE = EXIT_CLOSED_PIPE


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
    """Exit without Python's 'Exception ignored ... BrokenPipeError' at shutdown."""
    raise closed_pipe_exit()


def _json(body: dict[str, Any]) -> str:
    return dump_json(body)


def report(message: str, as_json: bool, *, final: bool = False, **fields: Any) -> None:
    """A problem: ``edge: message`` on stderr, or with ``--json`` a JSON object on stderr.

    ``final``: the command ends because of it (its caller exits non-zero), so in JSON mode the
    object goes to stdout as every command's failure does.
    """
    if as_json:
        line, stream = _json({"ok": False, "error": message, **fields}), sys.stderr
        if final:
            stream = sys.stdout
    else:
        line, stream = f"edge: {message}", sys.stderr
    try:
        print(line, file=stream, flush=True)
    except BrokenPipeError:
        if stream is sys.stdout:
            quiet_exit_on_closed_pipe()


def fail(
    messages: str | Iterable[str], code: int, as_json: bool = False, **fields: Any
) -> NoReturn:
    """End the command: each message as one line (see the module doc), exit ``code``."""
    lines = [
        line
        for message in ([messages] if isinstance(messages, str) else messages)
        for line in (message.splitlines() or [""])
    ]
    try:
        for line in lines:
            if as_json:
                print(_json({"ok": False, "error": line, **fields}), flush=True)
            else:
                print(f"edge: {line}", file=sys.stderr, flush=True)
    except BrokenPipeError:
        quiet_exit_on_closed_pipe()
    sys.exit(code)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Silence edge's own log lines for the block (the command diagnoses each device itself).

    The logger's previous level is restored afterwards, so running a command in-process (click's
    test runner, a notebook) leaves logging as it found it.
    """
    logger = logging.getLogger("edge")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)
