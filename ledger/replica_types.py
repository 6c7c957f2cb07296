"""What the replica API (:mod:`edge.ledger.replica`) takes and returns: plain values, no I/O.

Checkpoints travel as their checkpoint ENTRY (the raw canonical bytes): its id ties the signed
fields to a place in the chain, so a peer's announced head is self-verifying. Cosignatures are a
witness's Ed25519 signature over a versioned text message naming the checkpoint's signed fields
(C2SP ``tlog-cosignature`` style, our own format: :func:`cosignature_message`).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from edge.errors import NotCanonical
from edge.ledger.entry import CHECKPOINT, checkpoint_message
from edge.ledger.keys import verify_signature

__all__ = [
    "AcceptResult",
    "Checkpoint",
    "CosignResult",
    "Cosignature",
    "FeedHead",
    "FeedStatus",
    "Outcome",
    "OwnCheck",
    "OwnStatus",
    "PeerHead",
    "PeerHeadResult",
    "PendingRecord",
    "Reason",
    "cosignature_message",
    "is_hex64",
]

_HEX = frozenset("0123456789abcdef")
#: First line of every cosignature message; the version changes when the format does.
COSIGNATURE_HEADER = "edge-qc cosignature/v1"


def is_hex64(value: object) -> bool:
    """True for a 64-digit lowercase hex string (a feed id, an entry id, a Merkle root)."""
    return isinstance(value, str) and len(value) == 64 and _HEX.issuperset(value)


def cosignature_message(feed: str, size: int, head: str, root: str, ts: int) -> bytes:
    """The bytes a witness signs to cosign checkpoint (feed, size, head, root) at time ``ts``.

    Text, one field per line, each line ending in a newline; documented in
    docs/reference/ledger.md ("Witnessing").
    """
    return (
        f"{COSIGNATURE_HEADER}\ntime {ts}\nfeed {feed}\nsize {size}\nhead {head}\nroot {root}\n"
    ).encode()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint entry, parsed (its signature not yet checked: :meth:`signed`).

    Attributes:
        feed: the feed (hex public key) whose key signed it.
        seq: its position in the feed; it covers entries 0..seq-1, so ``size == seq``.
        size: entries covered (signed).
        head: id of entry ``size - 1`` (signed).
        root: RFC 6962 root over ids 0..size-1 (signed).
        sig: hex Ed25519 signature of :func:`~edge.ledger.entry.checkpoint_message`.
        id: hex SHA-256 of ``raw``: the entry's id.
        raw: the checkpoint entry's canonical bytes.
    """

    feed: str
    seq: int
    size: int
    head: str
    root: str
    sig: str
    id: str
    raw: bytes

    @property
    def end(self) -> int:
        """Entries a node holding this checkpoint as its last entry holds."""
        return self.seq + 1

    @classmethod
    def from_raw(cls, raw: bytes) -> Checkpoint:
        """Parse a checkpoint entry.

        Raises:
            NotCanonical: ``raw`` is not a well-formed checkpoint entry.
        """
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise NotCanonical(f"not a ledger entry: {exc}") from exc
        body = data.get("body") if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("type") != CHECKPOINT
            or not isinstance(body, Mapping)
        ):
            raise NotCanonical("not a checkpoint entry")
        feed, seq = data.get("feed"), data.get("seq")
        size, head, root, sig = (body.get(k) for k in ("size", "head", "root", "sig"))
        if (
            not is_hex64(feed)
            or type(seq) is not int
            or size != seq
            or not is_hex64(head)
            or data.get("prev") != head
            or not is_hex64(root)
            or not isinstance(sig, str)
        ):
            raise NotCanonical("malformed checkpoint entry")
        return cls(
            str(feed), seq, seq, str(head), str(root), sig, hashlib.sha256(raw).hexdigest(), raw
        )

    def signed(self) -> bool:
        """True when the feed's key signed (feed, size, head, root)."""
        message = checkpoint_message(self.feed, self.size, self.head, self.root)
        return verify_signature(self.feed, message, self.sig)


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A witness's signature over a checkpoint's signed fields (see :func:`cosignature_message`)."""

    feed: str
    size: int
    head: str
    root: str
    witness: str
    ts: int
    sig: str

    def message(self) -> bytes:
        """The bytes :attr:`sig` signs."""
        return cosignature_message(self.feed, self.size, self.head, self.root, self.ts)

    def valid(self) -> bool:
        """True when :attr:`witness`'s key signed it."""
        return verify_signature(self.witness, self.message(), self.sig)

    def to_json(self) -> dict[str, Any]:
        """The wire form ``{"v": 1, feed, size, head, root, witness, ts, sig}``."""
        return {
            "v": 1,
            "feed": self.feed,
            "size": self.size,
            "head": self.head,
            "root": self.root,
            "witness": self.witness,
            "ts": self.ts,
            "sig": self.sig,
        }

    @classmethod
    def from_json(cls, data: object) -> Cosignature:
        """Parse the wire form (its signature not checked: :meth:`valid`).

        Raises:
            NotCanonical: wrong version or shape.
        """
        if not isinstance(data, Mapping) or data.get("v") != 1:
            raise NotCanonical("not a v1 cosignature")
        feed, size, head, root = (data.get(k) for k in ("feed", "size", "head", "root"))
        witness, ts, sig = data.get("witness"), data.get("ts"), data.get("sig")
        if not (
            is_hex64(feed)
            and type(size) is int
            and size >= 0
            and is_hex64(head)
            and is_hex64(root)
            and is_hex64(witness)
            and type(ts) is int
            and ts >= 0
            and isinstance(sig, str)
            and len(sig) == 128
        ):
            raise NotCanonical("malformed cosignature")
        return cls(str(feed), int(size), str(head), str(root), str(witness), int(ts), str(sig))


@dataclass(frozen=True, slots=True)
class FeedHead:
    """How far a feed is held here: its last entry (a checkpoint) and who cosigned it."""

    feed: str
    end: int
    head: str
    checkpoint: Checkpoint | None
    cosignatures: tuple[Cosignature, ...]
    forked_at: int | None


class Outcome(enum.StrEnum):
    """What :meth:`~edge.ledger.replica.Replica.accept` did with a batch."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    GAP = "gap"
    REJECTED = "rejected"
    FORK = "fork"


class Reason(enum.StrEnum):
    """Why a batch, a peer's head or a cosignature was rejected."""

    UNTRUSTED = "untrusted"
    MALFORMED = "malformed"
    WRONG_FEED = "wrong feed"
    WRONG_SEQ = "wrong seq"
    BAD_ID = "bad id"
    BROKEN_CHAIN = "broken chain"
    BAD_CHECKPOINT = "bad checkpoint"
    BAD_SIGNATURE = "bad signature"
    UNSIGNED_TAIL = "unsigned tail"
    TOO_LARGE = "too large"
    TIP_MISMATCH = "tip mismatch"


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """What :meth:`~edge.ledger.replica.Replica.accept` did, and what the caller should do next.

    Attributes:
        outcome: stored, duplicate, gap (request from ``need_from``), rejected (``reason``), fork.
        feed: the batch's feed.
        stored: new entries written.
        end: entries held of the feed after the call.
        need_from: for a gap, the seq to request from (our end).
        reason: why it was rejected.
        detail: one line for the log.
        alarm: raise an alarm: a fork, or a trusted feed's batch failing its checks (tampering).
        own_feed: the batch was of our own feed (a restore: reopen the writer if ``stored``).
    """

    outcome: Outcome
    feed: str
    stored: int = 0
    end: int = 0
    need_from: int | None = None
    reason: Reason | None = None
    detail: str = ""
    alarm: bool = False
    own_feed: bool = False


@dataclass(frozen=True, slots=True)
class PeerHead:
    """A peer's announced head of a feed, as recorded (``end``: entries it holds)."""

    peer: str
    feed: str
    end: int
    head: str
    seen: str


@dataclass(frozen=True, slots=True)
class PeerHeadResult:
    """What :meth:`~edge.ledger.replica.Replica.record_peer_head` found.

    Attributes:
        accepted: the announcement was verified and recorded.
        reason: why not.
        ahead: the peer holds more of the feed than we do: request from ``need_from``.
        need_from: our end of that feed.
        fork: the peer's checkpoint conflicts with the entry we hold at its seq (kept as proof).
        own_behind: it is our own feed and the peer holds more: we were rolled back or restored.
    """

    accepted: bool
    reason: Reason | None = None
    ahead: bool = False
    need_from: int | None = None
    fork: bool = False
    own_behind: bool = False


class CosignResult(enum.StrEnum):
    """What :meth:`~edge.ledger.replica.Replica.add_cosignature` did."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    UNTRUSTED_WITNESS = "untrusted witness"
    UNTRUSTED_FEED = "untrusted feed"
    BAD_SIGNATURE = "bad signature"
    SELF_WITNESS = "self witness"
    CONFLICT = "conflict"


class OwnStatus(enum.StrEnum):
    """Whether our own feed may be appended to."""

    OK = "ok"
    BEHIND = "behind"
    FORKED = "forked"


@dataclass(frozen=True, slots=True)
class OwnCheck:
    """Our feed against what peers announced or witnesses cosigned of it.

    Attributes:
        feed: our feed.
        end: entries we hold.
        highest_end: the most entries of our feed any peer announced or any witness cosigned.
        evidence: who (peer or witness key, shortened) and how, for the log.
        status: ok; behind (restore from ``end`` before appending); forked.
    """

    feed: str
    end: int
    highest_end: int
    evidence: str
    status: OwnStatus


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """A ledger entry the node owes its own feed about a sync event (a fork, a rollback)."""

    key: str
    type: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """One line of ``edge ledger status``."""

    feed: str
    name: str | None
    end: int
    head: str
    checkpoint_size: int | None
    peers: tuple[PeerHead, ...]
    lag: int
    cosigners: tuple[str, ...]
    forked_at: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "feed": self.feed,
            "name": self.name,
            "end": self.end,
            "head": self.head,
            "checkpoint_size": self.checkpoint_size,
            "peers": [
                {"peer": p.peer, "end": p.end, "head": p.head, "seen": p.seen} for p in self.peers
            ],
            "lag": self.lag,
            "cosigners": list(self.cosigners),
            "forked": self.forked_at is not None,
            "forked_at": self.forked_at,
        }
