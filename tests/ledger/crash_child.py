"""Child process for test_crash.py: appends under load and reports what is durable.

Usage: python crash_child.py DB KEYFILE. Prints ``<seq> <id>`` for every appended entry, only
after the writer has committed it (and flushes stdout), so the parent knows exactly which
entries it was promised before it sends SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from pathlib import Path

from edge.ledger.entry import Entry
from edge.ledger.keys import load_key
from edge.ledger.writer import LedgerWriter
from edge.readings import Reading


async def main(db: Path, keyfile: Path) -> None:
    writer = LedgerWriter.open(db, load_key(keyfile), flush_interval=0.005, batch_max=300)
    sent: deque[Entry] = deque()
    out = sys.stdout

    async def report() -> None:
        while True:
            if not sent:
                await asyncio.sleep(0.001)
                continue
            await writer.durable(sent[0].seq)
            lines = []
            while sent and sent[0].seq < writer.size:
                entry = sent.popleft()
                lines.append(f"{entry.seq} {entry.id}\n")
            out.write("".join(lines))
            out.flush()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        tg.create_task(report(), name="reporter")
        n = 0
        while True:
            now = time.time()
            if n % 97 == 0:
                sent.append(
                    await writer.add_readings(
                        [Reading("temp", now, 4.0 + k / 8) for k in range(20)]
                    )
                )
            else:
                sent.append(
                    await writer.append(
                        "alarm", {"n": n, "value": f"{n % 100}.5"}, ts=now, lots=[f"LOT-{n // 50}"]
                    )
                )
            n += 1
            if n % 50 == 0:
                await asyncio.sleep(0)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
