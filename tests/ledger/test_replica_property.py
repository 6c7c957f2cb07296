"""Properties of Replica.accept (hypothesis): nothing a peer sends can make a replica hold
anything but a prefix of the real feed, and any delivery order converges to the real feed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.ledger.keys import NodeKey
from edge.ledger.replica import Replica
from edge.ledger.replica_types import Outcome
from edge.ledger.store import Ledger

from .replica_helpers import T0, assert_verifies, feed_ids, feed_raws, trust

GATEWAY = NodeKey.generate()
HUB = NodeKey.generate()
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes], list[str]]:
    """A gateway feed committed in batches of varied size (1 to 9 entries), lots here and there."""
    path = tmp_path_factory.mktemp("src") / "gw.db"
    with Ledger.open(path, GATEWAY) as ledger:
        n = 0
        for size in (3, 1, 7, 2, 9, 1, 4, 5, 2, 6, 1, 3):
            for _ in range(size):
                ledger.append(
                    "alarm", {"n": n, "value": f"{n / 4}"}, ts=T0 + n, lots=["L"] if n % 3 else ()
                )
                n += 1
            ledger.commit(now=T0 + n)
    return path, feed_raws(path, GATEWAY.feed), feed_ids(path, GATEWAY.feed)


def _checkpoints(raws: list[bytes]) -> list[int]:
    """Seqs of the checkpoint entries (where a range may end)."""
    return [i for i, raw in enumerate(raws) if orjson.loads(raw)["type"] == "checkpoint"]


def _hub(directory: str) -> Replica:
    path = Path(directory) / "hub.db"
    with Ledger.open(path, HUB) as ledger:
        ledger.append("node.start", {"node_id": "hub"}, ts=T0)
        ledger.commit(now=T0)
    return Replica.open(path, HUB, trust(GATEWAY, own=HUB), take_lock=True)


@SETTINGS
@given(data=st.data())
def test_no_mutation_makes_a_replica_hold_anything_but_the_real_feed(source, data) -> None:  # type: ignore[no-untyped-def]
    _, raws, ids = source
    ends = _checkpoints(raws)
    held = data.draw(st.sampled_from([0, *[e + 1 for e in ends[:-1]]]), label="held")
    stop = data.draw(st.sampled_from([e + 1 for e in ends if e + 1 > held]), label="stop")
    batch = list(raws[held:stop])
    which = data.draw(st.integers(0, len(batch) - 1), label="entry")
    kind = data.draw(st.sampled_from(["byte", "drop", "repeat", "swap", "cut"]), label="kind")
    if kind == "byte":
        raw = bytearray(batch[which])
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        value = data.draw(st.integers(0, 255).filter(lambda v: v != raw[at]), label="value")
        raw[at] = value
        batch[which] = bytes(raw)
    elif kind == "drop":
        del batch[which]
    elif kind == "repeat":
        batch.insert(which, batch[which])
    elif kind == "swap" and len(batch) > 1:
        other = (which + 1) % len(batch)
        batch[which], batch[other] = batch[other], batch[which]
    elif kind == "cut":
        raw = batch[which]
        batch[which] = raw[: data.draw(st.integers(0, len(raw) - 1), label="cut at")]
    with tempfile.TemporaryDirectory() as directory:
        hub = _hub(directory)
        if held:
            assert hub.accept(GATEWAY.feed, 0, raws[:held], now=T0).outcome is Outcome.STORED
        result = hub.accept(GATEWAY.feed, held, batch, now=T0)
        stored = feed_ids(hub.path, GATEWAY.feed)
        hub.close()
        if batch == raws[held:stop]:
            assert result.outcome is Outcome.STORED  # a no-op mutation (a swap of equals)
        assert result.outcome in (Outcome.STORED, Outcome.REJECTED), result
        assert len(stored) in (held, stop)  # the batch whole, or nothing of it
        assert stored[:-1] == ids[: max(len(stored) - 1, 0)]
        if stored and stored[-1] != ids[len(stored) - 1]:
            # the one thing no signature covers yet: the last checkpoint entry's ts
            mine = orjson.loads(batch[-1])
            real = orjson.loads(raws[len(stored) - 1])
            assert mine["type"] == "checkpoint"
            assert {k: v for k, v in mine.items() if k != "ts"} == {
                k: v for k, v in real.items() if k != "ts"
            }
        assert_verifies(Path(directory) / "hub.db")


@SETTINGS
@given(data=st.data())
def test_any_delivery_order_converges_to_the_real_feed(source, data) -> None:  # type: ignore[no-untyped-def]
    _, raws, ids = source
    ends = _checkpoints(raws)
    cuts = [*sorted(data.draw(st.sets(st.sampled_from(ends[:-1])), label="cuts")), ends[-1]]
    ranges = []
    start = 0
    for end in cuts:
        ranges.append((start, raws[start : end + 1]))
        start = end + 1
    # overlapping ranges too, as several peers answering the same request would send
    starts = [0, *[e + 1 for e in ends[:-1]]]
    extra = data.draw(
        st.lists(st.tuples(st.sampled_from(starts), st.sampled_from(ends)), max_size=6), label="x"
    )
    for begin, end in extra:
        if begin <= end:
            ranges.append((begin, raws[begin : end + 1]))
    order = data.draw(st.permutations(ranges), label="order")
    with tempfile.TemporaryDirectory() as directory:
        hub = _hub(directory)
        buffered: list[tuple[int, list[bytes]]] = []
        for item in order:
            pending = [item, *buffered]
            buffered = []
            progress = True
            while progress:  # a stored batch may make buffered ones fit
                progress = False
                for begin, batch in pending:
                    result = hub.accept(GATEWAY.feed, begin, batch, now=T0)
                    assert result.outcome is not Outcome.REJECTED, result
                    assert result.outcome is not Outcome.FORK, result
                    if result.outcome is Outcome.GAP:
                        buffered.append((begin, batch))
                    elif result.outcome is Outcome.STORED:
                        progress = True
                pending, buffered = buffered, []
            buffered = pending
        assert feed_ids(hub.path, GATEWAY.feed) == ids
        hub.close()
        assert_verifies(Path(directory) / "hub.db")


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(-5, 80),
    raws=st.lists(
        st.binary(max_size=80)
        | _JSONISH.map(lambda v: orjson.dumps(v))
        | st.sampled_from([b'{"type":"checkpoint"}', b"[]", b"null"]),
        max_size=6,
    ),
    checkpoint=st.binary(max_size=200) | _JSONISH.map(lambda v: orjson.dumps(v)),
    cosignature=_JSONISH,
)
def test_junk_from_the_network_is_refused_never_raised(
    source, start, raws, checkpoint, cosignature
) -> None:  # type: ignore[no-untyped-def]
    """Whatever bytes arrive, the replica answers with a result, never an exception."""
    from edge.errors import NotCanonical
    from edge.ledger.replica_types import Cosignature

    _, real, _ = source
    with tempfile.TemporaryDirectory() as directory:
        hub = _hub(directory)
        hub.accept(GATEWAY.feed, 0, real[:4], now=T0)
        before = feed_ids(hub.path, GATEWAY.feed)
        result = hub.accept(GATEWAY.feed, start, raws, now=T0)
        assert result.outcome in (Outcome.REJECTED, Outcome.GAP, Outcome.DUPLICATE), result
        assert not hub.record_peer_head("x", checkpoint, now=T0).accepted
        try:
            cos = Cosignature.from_json(cosignature)
        except NotCanonical:
            pass
        else:
            assert hub.add_cosignature(cos, now=T0) != "stored"
        assert hub.cosign(checkpoint, now=T0) is None
        assert feed_ids(hub.path, GATEWAY.feed) == before
        hub.close()
