"""LivePush: runs of our feed taken from the writer's durable batches, each ending on a checkpoint.

Real entries from a real Ledger (chained, signed); the writer's listener is called with its
batches as LedgerWriter calls it.
"""

from __future__ import annotations

from pathlib import Path

from edge.ledger.entry import CHECKPOINT, Entry
from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger
from edge.sync import push
from edge.sync.push import LivePush

T0 = 1_795_000_000.0


def batches(tmp_path: Path, sizes: list[tuple[int, bool]]) -> tuple[str, list[tuple[Entry, ...]]]:
    """Batches cut by a real ledger: (entries, signed) each; (feed, their entries)."""
    key = NodeKey.generate()
    out = []
    with Ledger.open(tmp_path / "l.db", key) as led:
        i = 0
        for n, signed in sizes:
            for _ in range(n):
                led.append("alarm", {"i": str(i)}, ts=T0 + i)
                i += 1
            batch = led.cut(sign=signed)
            assert batch is not None
            out.append(batch.entries)
    return key.feed, out


def test_only_signed_runs_are_taken_in_order_within_the_limit(tmp_path: Path) -> None:
    feed, cut = batches(tmp_path, [(3, False), (2, True), (4, False), (1, True), (2, False)])
    live = LivePush(feed, 0)
    live.on_durable(cut[0])
    assert live.take(100) is None  # nothing signed yet: a peer could not verify it
    assert not live.ready.is_set()
    live.on_durable(cut[1])
    assert live.ready.is_set()
    for b in cut[2:]:
        live.on_durable(b)
    assert live.signed_end == 3 + 2 + 1 + 4 + 1 + 1
    run = live.take(100)
    assert run is not None
    start, raws = run
    assert start == 0
    assert len(raws) == live.signed_end  # up to the last checkpoint; the unsigned tail waits
    assert raws[-1] == live.checkpoint
    # at most 7 entries where a checkpoint allows: the first run ends on the first checkpoint
    live2 = LivePush(feed, 0)
    for b in cut:
        live2.on_durable(b)
    first = live2.take(7)
    assert first is not None
    assert list(first[1]) == [e.raw for b in cut[:2] for e in b]
    live2.done(first)
    second = live2.take(7)
    assert second is not None
    assert second[0] == 6
    assert b'"type":"checkpoint"' in second[1][-1]
    live2.done(second)
    assert live2.take(7) is None
    assert live2.pending == 0


def test_entries_of_other_feeds_and_already_pushed_are_ignored(tmp_path: Path) -> None:
    feed, cut = batches(tmp_path, [(2, True), (2, True)])
    live = LivePush(feed, len(cut[0]))  # the first batch was there before
    live.on_durable(cut[0])
    live.on_durable(tuple(e for e in cut[1] if e.type != CHECKPOINT))  # not signed yet
    assert live.take(10) is None
    (tmp_path / "x").mkdir()
    _, theirs = batches(tmp_path / "x", [(1, True)])  # another node's feed
    live.on_durable(theirs[0])
    assert live.take(10) is None
    live.on_durable(tuple(e for e in cut[1] if e.type == CHECKPOINT))
    run = live.take(10)
    assert run is not None
    assert run[0] == len(cut[0])
    assert len(run[1]) == len(cut[1])


def test_the_bound_drops_the_oldest_and_the_push_resumes_after_a_gap(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(push, "HELD_MAX", 5)
    feed, cut = batches(tmp_path, [(2, True), (2, True), (2, True)])  # 3 entries each
    live = LivePush(feed, 0)
    for b in cut:
        live.on_durable(b)
    assert live.dropped == 4
    run = live.take(100)
    assert run is not None
    assert run[0] == 4  # after the gap: a peer that gets this asks for seqs 0..3
    assert len(run[1]) == 5
    live.done(run)
    assert live.pushed == 9
