"""The one worker thread a serial bus owns: runs its blocking calls in order, one at a time.

Lighter than a ``ThreadPoolExecutor`` hop (a C ``SimpleQueue`` in, one ``call_soon_threadsafe``
out): at 115200 baud a whole transaction lasts ~7 ms, so the hand-off is measurable.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["BusThread"]

T = TypeVar("T")
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.cancelled():  # the caller was cancelled while we worked: nobody wants the result
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


class BusThread:
    """A daemon thread executing submitted calls sequentially."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = False
        self._closed = False

    def _main(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, fut, fn, args = job
            try:
                result, exc = fn(*args), None
            except BaseException as e:  # handed to the awaiting task, which decides
                result, exc = None, e
            # a closed loop (RuntimeError) means nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, fut, result, exc)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the thread and await its result.

        Raises:
            RuntimeError: the thread was shut down.
        """
        if self._closed:
            raise RuntimeError("bus thread is shut down")
        if not self._started:
            self._thread.start()
            self._started = True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, fut, fn, args))
        return await fut

    def shutdown(self) -> None:
        """Let the thread exit after the calls already queued."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
