"""A closed pipe ends every ``edge`` command quietly (``edge ledger query --json | head -1``).

Python ignores SIGPIPE, so a write to a pipe whose reader has gone raises ``BrokenPipeError``:
from a ``click.echo`` in the middle of a command, from inside an asyncio TaskGroup (wrapped in an
exception group), or only at interpreter exit when the buffered rest is flushed ("Exception
ignored ... BrokenPipeError"). Each of those used to print a traceback. Restoring the default
SIGPIPE action instead would kill ``edge run`` on the first write to a dropped MQTT socket, so
the error is caught: stdout is pointed at /dev/null (the pending buffer must go somewhere at
exit) and the command exits with status 1, silently. Status 1 because click (help, version)
and rich (tables) already end that way on a closed pipe, and every command should end alike;
a shell's 141 would need both libraries patched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator

__all__ = ["EXIT_CLOSED_PIPE", "is_closed_pipe", "is_output_error", "quiet_on_closed_pipe"]

#: the exit status after a closed pipe (as click and rich end then)
EXIT_CLOSED_PIPE = 1


def is_closed_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` is (or only wraps) a write to a closed pipe."""
    if isinstance(exc, BrokenPipeError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_closed_pipe(e) for e in exc.exceptions)
    return False


#: write errors that mean the output cannot go where it was sent (a full disk, a quota)
_OUTPUT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
)  # not EIO: a serial port gives it too


def is_output_error(exc: BaseException) -> bool:
    """Whether ``exc`` is (or only wraps) a write error other than a closed pipe: a full disk or quota."""
    if isinstance(exc, OSError):
        return exc.errno in _OUTPUT_ERRNOS
    if isinstance(exc, BaseExceptionGroup):
        return all(is_output_error(e) or is_closed_pipe(e) for e in exc.exceptions)
    return False


def _strerror(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def output_error_exit(exc: BaseException) -> SystemExit:
    """Say in one line on stderr that the output could not be written; the exit to raise."""
    _silence_stdout()  # what is still buffered cannot be written either
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"edge: cannot write the output: {_strerror(exc)}\n")
        sys.stderr.flush()
    return SystemExit(1)


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so that flushing what is still buffered cannot fail again."""
    with contextlib.suppress(OSError, ValueError):  # no real fd (click's test runner)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


def closed_pipe_exit() -> SystemExit:
    """Silence stdout and return the exit to raise for a closed pipe."""
    _silence_stdout()
    return SystemExit(EXIT_CLOSED_PIPE)


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError) as exc:
        if isinstance(exc, OSError) and is_output_error(exc):
            raise output_error_exit(exc) from None
        if isinstance(exc, OSError) and not is_closed_pipe(exc):
            raise
        if isinstance(exc, ValueError):  # stdout already closed: nothing left to flush
            return
        raise closed_pipe_exit() from None


@contextlib.contextmanager
def quiet_on_closed_pipe() -> Iterator[None]:
    """Turn a closed pipe anywhere in the block (or in the final flush) into a quiet exit."""
    try:
        yield
    except SystemExit:
        _flush_stdout()
        raise
    except BaseException as exc:
        if is_output_error(exc):
            raise output_error_exit(exc) from None
        if not is_closed_pipe(exc):
            raise
        raise closed_pipe_exit() from None
    _flush_stdout()
