"""Witnessing: cosignatures made, checked and kept; ``edge ledger verify --witnesses K``;
``edge ledger status``; and a lot that visits two gateways is one timeline on a hub."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from edge.ledger.keys import NodeKey, verify_signature
from edge.ledger.replica import Replica
from edge.ledger.replica_types import Cosignature, CosignResult, cosignature_message
from edge.ledger.store import Ledger

from .replica_helpers import T0, feed_raws, grow, replicate, trust


def test_cosignature_message_format_v1() -> None:
    """The documented bytes (docs/reference/ledger.md, Witnessing), field by field."""
    message = cosignature_message("a" * 64, 17, "b" * 64, "c" * 64, 1_795_000_000)
    assert message == (
        b"edge-qc cosignature/v1\n"
        b"time 1795000000\n"
        b"feed " + b"a" * 64 + b"\n"
        b"size 17\n"
        b"head " + b"b" * 64 + b"\n"
        b"root " + b"c" * 64 + b"\n"
    )


@pytest.fixture
def site(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Gateway A, two witnesses B and C, a hub H; A's feed replicated to all of them."""
    keys = {name: NodeKey.generate() for name in "abch"}
    every = tuple(keys.values())
    replicas = {}
    for name, key in keys.items():
        with Ledger.open(tmp_path / f"{name}.db", key) as ledger:
            grow(ledger, 9 if name == "a" else 2, batch=4, t0=T0 + 1000 * ord(name))
        replicas[name] = Replica.open(
            tmp_path / f"{name}.db", key, trust(*every, own=key), take_lock=True
        )
    for name in "bch":
        replicate(replicas["a"], replicas[name], keys["a"].feed)
    yield tmp_path, keys, replicas
    for r in replicas.values():
        r.close()


def _trust_args(keys: dict[str, NodeKey]) -> list[str]:
    return [arg for k in keys.values() for arg in ("--trust", k.feed)]


def _edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120
    )


def test_witnesses_cosign_what_they_hold_and_others_keep_it(site) -> None:  # type: ignore[no-untyped-def]
    _, keys, r = site
    a = keys["a"].feed
    head = r["a"].head(a)
    assert head is not None
    assert head.checkpoint is not None
    cp = head.checkpoint
    assert r["a"].cosign(cp.raw, now=T0) is None  # a feed's own key is no witness
    cos_b = r["b"].cosign(cp.raw, now=T0 + 5)
    cos_c = r["c"].cosign(cp.raw, now=T0 + 6)
    assert cos_b is not None
    assert cos_c is not None
    assert (cos_b.size, cos_b.head, cos_b.root, cos_b.witness) == (
        cp.size,
        cp.head,
        cp.root,
        keys["b"].feed,
    )
    assert verify_signature(
        cos_b.witness, cosignature_message(a, cp.size, cp.head, cp.root, cos_b.ts), cos_b.sig
    )
    wire = Cosignature.from_json(json.loads(json.dumps(cos_b.to_json())))
    assert wire == cos_b
    for cos in (wire, cos_c):
        assert r["a"].add_cosignature(cos, now=T0) is CosignResult.STORED
        assert r["h"].add_cosignature(cos, now=T0) is CosignResult.STORED
    assert r["h"].add_cosignature(cos_b, now=T0) is CosignResult.DUPLICATE
    assert {c.witness for c in r["h"].head(a).cosignatures} == {  # type: ignore[union-attr]
        keys["b"].feed,
        keys["c"].feed,
    }
    forged = replace(cos_c, sig=cos_b.sig)
    assert r["b"].add_cosignature(forged, now=T0) is CosignResult.BAD_SIGNATURE
    rogue = NodeKey.generate()
    bad = Cosignature(a, cp.size, cp.head, cp.root, rogue.feed, 1, rogue.sign(b"x"))
    assert r["h"].add_cosignature(bad, now=T0) is CosignResult.UNTRUSTED_WITNESS
    own = Cosignature(a, cp.size, cp.head, cp.root, a, 1, "0" * 128)
    assert r["h"].add_cosignature(own, now=T0) is CosignResult.SELF_WITNESS
    # a witness that vouches for another history at a seq we hold: kept, and a fork record owed
    ts = 7
    other = "d" * 64
    lie = Cosignature(
        a,
        cp.size,
        other,
        cp.root,
        keys["c"].feed,
        ts,
        keys["c"].sign(cosignature_message(a, cp.size, other, cp.root, ts)),
    )
    assert r["h"].add_cosignature(lie, now=T0) is CosignResult.CONFLICT
    assert [p.type for p in r["h"].pending_records()] == ["ledger.fork"]
    assert r["h"].stats()["cosignatures_rejected"] == 3


def test_cosign_refuses_a_checkpoint_not_held(site) -> None:  # type: ignore[no-untyped-def]
    tmp_path, keys, r = site
    raws = feed_raws(tmp_path / "a.db", keys["a"].feed)
    first_checkpoint = next(x for x in raws if b'"type":"checkpoint"' in x)
    assert r["b"].cosign(first_checkpoint, now=T0) is not None  # held: an earlier one is fine
    assert r["b"].cosign(b"not a checkpoint", now=T0) is None
    from .replica_helpers import continue_feed

    unseen = continue_feed(raws, keys["a"], 2)[-1]
    assert r["b"].cosign(unseen, now=T0) is None


def test_verify_witnesses_k(site) -> None:  # type: ignore[no-untyped-def]
    tmp_path, keys, r = site
    a = keys["a"].feed
    cp = r["h"].head(a).checkpoint  # type: ignore[union-attr]
    for w in "bc":
        cos = r[w].cosign(cp.raw, now=T0)  # type: ignore[union-attr]
        assert cos is not None
        r["h"].add_cosignature(cos, now=T0)
    # H's own feed: cosigned by A
    own = r["a"]
    replicate(r["h"], own, keys["h"].feed)
    h_cp = own.head(keys["h"].feed).checkpoint  # type: ignore[union-attr]
    for w in "bc":
        replicate(r["h"], r[w], keys["h"].feed)
        r["h"].add_cosignature(r[w].cosign(h_cp.raw, now=T0), now=T0)  # type: ignore[union-attr,arg-type]
    db = str(tmp_path / "h.db")
    # only A's and H's feeds are in question: B's and C's own feeds are not on H
    two = _edge("ledger", "verify", "--db", db, *_trust_args(keys), "--witnesses", "2", "--json")
    assert two.returncode == 0, two.stdout + two.stderr
    three = _edge("ledger", "verify", "--db", db, *_trust_args(keys), "--witnesses", "3", "--json")
    assert three.returncode == 1
    problems = json.loads(three.stdout)["problems"]
    assert {(p["feed"], p["kind"]) for p in problems} == {
        (a, "too few witnesses"),
        (keys["h"].feed, "too few witnesses"),
    }
    assert "cosigned by 2 of 3" in problems[0]["detail"]
    # A goes on: its new head is not cosigned yet; the report says how far it is witnessed
    r["a"].close()
    with Ledger.open(tmp_path / "a.db", keys["a"]) as ledger:
        grow(ledger, 3, t0=T0 + 90_000)
    r["a"] = Replica.open(tmp_path / "a.db", keys["a"], trust(*keys.values(), own=keys["a"]))
    replicate(r["a"], r["h"], a)
    later = _edge("ledger", "verify", "--db", db, *_trust_args(keys), "--witnesses", "2", "--json")
    assert later.returncode == 1
    (problem,) = json.loads(later.stdout)["problems"]
    assert problem["feed"] == a
    assert f"witnessed by 2 up to checkpoint {cp.seq}" in problem["detail"]  # type: ignore[union-attr]
    # a witness that is not trusted does not count
    untrusting = [x for k in ("a", "h", "b") for x in ("--trust", keys[k].feed)]
    one = _edge("ledger", "verify", "--db", db, *untrusting, "--witnesses", "1", "--json")
    assert one.returncode == 1


def test_status_per_feed(site) -> None:  # type: ignore[no-untyped-def]
    tmp_path, keys, r = site
    a = keys["a"].feed
    head = r["a"].head(a)
    assert head is not None
    assert head.checkpoint is not None
    r["h"].record_peer_head(keys["a"].feed, head.checkpoint.raw, now=T0)
    r["h"].add_cosignature(r["b"].cosign(head.checkpoint.raw, now=T0), now=T0)  # type: ignore[arg-type]
    r["a"].close()
    with Ledger.open(tmp_path / "a.db", keys["a"]) as ledger:  # A goes on; H lags behind
        grow(ledger, 3, t0=T0 + 90_000)
    r["a"] = Replica.open(tmp_path / "a.db", keys["a"], trust(*keys.values(), own=keys["a"]))
    newer = r["a"].head(a)
    assert newer is not None
    assert newer.checkpoint is not None
    r["h"].record_peer_head(keys["a"].feed, newer.checkpoint.raw, now=T0)
    done = _edge("ledger", "status", "--db", str(tmp_path / "h.db"), *_trust_args(keys), "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    feeds = {f["feed"]: f for f in status["feeds"]}
    assert set(feeds) == {a, keys["h"].feed}
    fa = feeds[a]
    assert fa["end"] == head.end
    assert fa["lag"] == newer.end - head.end > 0
    assert [(p["end"]) for p in fa["peers"]] == [newer.end]
    assert fa["cosigners"] == [keys["b"].feed[:16]]
    assert fa["forked"] is False
    text = _edge("ledger", "status", "--db", str(tmp_path / "h.db"), *_trust_args(keys))
    assert text.returncode == 0
    assert a[:16] in text.stdout
    assert "(this node)" in text.stdout
    missing = _edge("ledger", "status", "--db", str(tmp_path / "none.db"))
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr


def test_a_lot_across_two_gateways_is_one_timeline_on_the_hub(tmp_path: Path) -> None:
    filler, weigher, hub = NodeKey.generate(), NodeKey.generate(), NodeKey.generate()
    start = {"node_id": "", "site": "plant-1", "version": "1", "config_hash": "0" * 64}
    with Ledger.open(tmp_path / "filler.db", filler) as ledger:
        ledger.append("node.start", {**start, "node_id": "filler-gw"}, ts=T0)
        ledger.append(
            "lot.start", {"lot": "LOT-9", "station": "filler"}, ts=T0 + 10, lots=["LOT-9"]
        )
        ledger.append(
            "lot.end",
            {"lot": "LOT-9", "station": "filler", "aggregates": {}, "checks": []},
            ts=T0 + 20,
            lots=["LOT-9"],
        )
        ledger.commit(now=T0 + 21)
    with Ledger.open(tmp_path / "weigher.db", weigher) as ledger:
        ledger.append("node.start", {**start, "node_id": "weigher-gw"}, ts=T0 + 1)
        ledger.append(
            "lot.start", {"lot": "LOT-9", "station": "checkweigher"}, ts=T0 + 30, lots=["LOT-9"]
        )
        ledger.append(
            "lot.end",
            {"lot": "LOT-9", "station": "checkweigher", "aggregates": {}, "checks": []},
            ts=T0 + 40,
            lots=["LOT-9"],
        )
        ledger.commit(now=T0 + 41)
    with Ledger.open(tmp_path / "hub.db", hub) as ledger:
        ledger.append("node.start", {**start, "node_id": "hub"}, ts=T0 + 2)
        ledger.commit(now=T0 + 3)
    every = trust(filler, weigher, hub, own=hub)
    with Replica.open(tmp_path / "hub.db", hub, every, take_lock=True) as rh:
        for key, name in ((filler, "filler"), (weigher, "weigher")):
            with Replica.open(
                tmp_path / f"{name}.db", key, trust(hub, own=key), take_lock=True
            ) as src:
                replicate(src, rh, key.feed)
    args = [x for k in (filler, weigher, hub) for x in ("--trust", k.feed)]
    done = _edge("ledger", "trace", "LOT-9", "--db", str(tmp_path / "hub.db"), *args, "--json")
    assert done.returncode == 0, done.stderr
    trace = json.loads(done.stdout)
    text = json.dumps(trace)
    assert filler.feed in text
    assert weigher.feed in text
    stations = [
        e for e in _walk(trace) if isinstance(e, dict) and e.get("type") in ("lot.start", "lot.end")
    ]
    # one timeline, in time order, both gateways' records interleaved by time
    assert [(e["type"], e["feed"]) for e in stations] == [
        ("lot.start", filler.feed),
        ("lot.end", filler.feed),
        ("lot.start", weigher.feed),
        ("lot.end", weigher.feed),
    ]


def _walk(node: object):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)
