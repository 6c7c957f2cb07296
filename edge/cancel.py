"""Broker sessions in a task of their own, so that a stop is never swallowed by their failure.

In Python 3.11 a task group whose parent task is cancelled while one of its children fails
raises the child's error, not the ``CancelledError``: the cancellation is consumed. A reconnect
loop that catches that error (the broker session failed) and retries would never end, and the
node's shutdown would wait for it for ever (tests/edge/test_alerts.py). A task asked to stop
still counts the request (``Task.cancelling()``), but a task group of 3.11 that cancelled its
own parent to abort its body can leave that count raised too: read in the task that ran the
group, it would stop the loop after every ordinary failure. So the session runs in a task of
its own, and the loop reads the count of its own task, which only a real stop raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["run_session"]


async def run_session(session: Coroutine[Any, Any, None], name: str) -> None:
    """Run ``session`` in a task of its own; raise what it raised, unless a stop is pending.

    Raises:
        asyncio.CancelledError: the calling task was cancelled (also when the session's
            failure swallowed that cancellation).
        Exception: what the session raised.
    """
    task = asyncio.create_task(session, name=name)
    try:
        await task
    except Exception:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise asyncio.CancelledError from None
        raise
