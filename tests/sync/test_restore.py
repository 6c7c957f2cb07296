"""The restore check at start refuses a database older than what the broker shows of its feed.

A node's database replaced by an older backup while no peer that holds the missing entries is
online: its own last retained head (signed by its key) shows more than the file holds, nothing
can fetch the rest, so :func:`edge.sync.restore_own_feed` raises ``RollbackRefused`` and the file
is left as it was (the node does not start, so it appends nothing over its past).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import aiomqtt
import pytest

from edge.config import parse_config
from edge.errors import RollbackRefused
from edge.ledger.keys import create_key_file, load_key
from edge.ledger.writer import LedgerWriter
from edge.sync import restore_own_feed, wire

pytestmark = pytest.mark.integration


async def append(data: Path, n: int) -> None:
    writer = LedgerWriter.open(data / "ledger.db", load_key(data / "node.key"),
                               flush_interval=0.01, batch_max=50, journal_max=0)  # fmt: skip
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        for i in range(n):
            await writer.append("alarm", {"i": str(i)}, ts=1_795_000_000 + i)
        await writer.aclose()


def last_checkpoint(db: Path) -> tuple[int, bytes]:
    conn = sqlite3.connect(db)
    seq, raw = conn.execute(
        "SELECT seq, raw FROM entries WHERE type = 'checkpoint' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    conn.close()
    return int(seq) + 1, bytes(raw)


async def test_an_older_backup_is_refused_when_no_peer_can_restore_it(
    tmp_path: Path, broker
) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    key = create_key_file(data / "node.key")
    (tmp_path / "node.toml").write_text(
        f'[node]\nid = "gw"\ndata_dir = "data"\n[sync]\nport = {broker.port}\n'
    )
    cfg = parse_config((tmp_path / "node.toml").read_text(), tmp_path / "node.toml")
    await append(data, 60)
    shutil.copyfile(data / "ledger.db", tmp_path / "backup.db")
    await append(data, 100)
    end, checkpoint = last_checkpoint(data / "ledger.db")
    # what the node announced of its own feed before it stopped (retained on the broker)
    head = wire.encode_head(wire.Head("gw", key.feed, key.feed, end, checkpoint, ()))
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.publish(f"edge-sync/v1/gw/head/{key.feed}", head, qos=1, retain=True)
    for suffix in ("", "-wal", "-shm"):
        (data / f"ledger.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(tmp_path / "backup.db", data / "ledger.db")
    conn = sqlite3.connect(data / "ledger.db")
    held = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    conn.close()
    assert held < end
    with pytest.raises(RollbackRefused, match=rf"holds {held} entries.*{end}"):
        await restore_own_feed(cfg, within=2.0)
    conn = sqlite3.connect(data / "ledger.db")
    assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == held
    conn.close()  # still the backup: nothing was appended over it
