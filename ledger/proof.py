"""Proof bundles: a lot's entries with everything an auditor needs to check them without us.

``edge ledger export --lot L --format proof`` writes one zip (format ``edge-qc-lot-proof``,
version 1; docs/reference/ledger.md describes every field)::

    README.txt                     the auditor's steps
    verify_proof.py                the standalone verifier (this package's proof_verifier.py)
    proof.json                     the manifest: feeds, keys, checkpoints, proofs, ranges
    entries/<feed>.jsonl           the feed's entries, one a line: each line's bytes (without
                                   the newline) are the entry's canonical bytes, as hashed

Entry bytes stay out of the manifest, so that they are the hashed bytes themselves, with no
decoding in between; one file per feed rather than per entry, because a zip's per-file headers
(~240 bytes with the feed id in the name) outweighed the entries and defeated compression
(measured: 80,000 entries made 41 MB one file each, 8.5 MB as lines).

What the manifest proves, per feed that holds entries of the lot:

* each listed entry (the lot's, the trace's related entries, the ``node.start`` naming the key,
  each range's last entry) is in the RFC 6962 tree of the first checkpoint that covers it, the
  checkpoint signed when the entry was committed;
* each such checkpoint is consistent with the feed's latest checkpoint (the head), so the
  history it signed is still the prefix of the feed;
* completeness: the feed's entries from the lot's first to past its last (up to the head of the
  checkpoint covering it) are all in the bundle, chained by ``prev`` up to that signed head, so
  an auditor sees every entry of that range and can check none naming the lot was left out.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from edge.errors import LedgerError, StorageError
from edge.ledger.entry import CHECKPOINT
from edge.ledger.merkle import leaf_hashes, node_hash
from edge.ledger.merkle import root as merkle_root
from edge.ledger.query import open_ledger_db
from edge.ledger.trace import LotTrace

__all__ = ["FORMAT", "VERSION", "ProofSummary", "build_proof", "export_proof", "verifier_source"]

FORMAT = "edge-qc-lot-proof"
VERSION = 1
#: Subtrees of at least this many leaves keep their root once computed: proofs of one feed share
#: them, so a bundle costs one pass over the feed's leaves, not one per proof.
_CACHE_MIN = 64


@dataclass(frozen=True, slots=True)
class ProofSummary:
    """What a bundle holds (for the export's one-line report)."""

    lot: str
    feeds: int
    listed: int  #: entries with an inclusion proof
    entries: int  #: entries in the bundle (listed ones and the covered ranges)
    size: int  #: bytes of the zip

    def __str__(self) -> str:
        return (
            f"proof bundle of lot {self.lot!r}: {self.feeds} feed(s), {self.listed} entries proven, "
            f"{self.entries} entries in all, {self.size} bytes"
        )


def verifier_source() -> bytes:
    """The standalone verifier's source, as shipped in every bundle."""
    return Path(__file__).with_name("proof_verifier.py").read_bytes()


class _Tree:
    """RFC 6962 proofs over one feed's leaves, with the roots of large subtrees cached."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self._roots: dict[tuple[int, int], bytes] = {}

    def root(self, start: int, end: int) -> bytes:
        n = end - start
        if n < _CACHE_MIN:
            return merkle_root(self.leaves[start:end])
        key = (start, end)
        cached = self._roots.get(key)
        if cached is None:
            k = 1 << ((n - 1).bit_length() - 1)
            cached = self._roots[key] = node_hash(
                self.root(start, start + k), self.root(start + k, end)
            )
        return cached

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of the first ``size`` leaves (RFC 6962 2.1.1)."""
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = 1 << ((end - start - 1).bit_length() - 1)
            if index < start + k:
                path.append(self.root(start + k, end))
                end = start + k
            else:
                path.append(self.root(start, start + k))
                start += k
        return path[::-1]

    def consistency(self, old: int, size: int) -> list[bytes]:
        """Proof that the first ``old`` leaves' tree is a prefix of the first ``size``'s (2.1.2)."""
        proof: list[bytes] = []
        start, end, m, complete = 0, size, old, True  # m: old leaves within start..end
        while m != end - start:
            k = 1 << ((end - start - 1).bit_length() - 1)
            if m <= k:
                proof.append(self.root(start + k, end))
                end = start + k
            else:
                proof.append(self.root(start, start + k))
                start += k
                m -= k
                complete = False
        if not complete:
            proof.append(self.root(start, end))
        return proof[::-1]


def _checkpoint(conn: sqlite3.Connection, feed: str, after: int | None) -> dict[str, Any] | None:
    """The first checkpoint entry of ``feed`` after seq ``after`` (None: the latest one)."""
    if after is None:
        sql = "SELECT seq, raw FROM entries WHERE feed = ? AND +type = ? ORDER BY seq DESC LIMIT 1"
        row = conn.execute(sql, (feed, CHECKPOINT)).fetchone()
    else:
        sql = "SELECT seq, raw FROM entries WHERE feed = ? AND seq > ? AND +type = ? ORDER BY seq LIMIT 1"
        row = conn.execute(sql, (feed, after, CHECKPOINT)).fetchone()
    if row is None:
        return None
    body = json.loads(row[1])["body"]
    if body.get("size") != row[0]:
        raise StorageError(f"feed {feed[:16]}: checkpoint entry {row[0]} is damaged")
    return {k: body[k] for k in ("size", "head", "root", "sig")} | {"cosignatures": []}


def _feed_part(
    conn: sqlite3.Connection, lot: str, feed: str, about: dict[int, str], through_head: bool
) -> tuple[dict[str, Any], dict[int, bytes]]:
    """The manifest part and the entry files of one feed; ``about`` is seq -> role."""
    head = _checkpoint(conn, feed, None)
    if head is None:
        raise StorageError(f"feed {feed[:16]}: no checkpoint signs its entries")
    lot_seqs = [s for s, role in about.items() if role == "lot"]
    ranges = []
    roles: dict[int, set[str]] = {s: {role} for s, role in about.items()}
    if lot_seqs:
        end = head if through_head else _checkpoint(conn, feed, max(lot_seqs))
        if end is None:
            raise StorageError(f"feed {feed[:16]}: entry {max(lot_seqs)} is not signed yet")
        ranges.append({"first": min(lot_seqs), "last": end["size"] - 1, "checkpoint": end["size"]})
        roles.setdefault(end["size"] - 1, set()).add("range end")
    start = conn.execute(  # the node.start naming the key when the lot came, and any during it
        "SELECT max(seq) FROM entries WHERE feed = ? AND +type = 'node.start' AND seq <= ?",
        (feed, min(about)),
    ).fetchone()[0]
    seqs = set(roles)
    for rng in ranges:
        seqs.update(range(rng["first"], rng["last"] + 1))
    if start is not None:
        seqs.add(start)
    spans = [(r["first"], r["last"]) for r in ranges]
    spans += [(s, s) for s in sorted(seqs) if not any(a <= s <= b for a, b in spans)]
    rows = [
        row
        for a, b in spans
        for row in conn.execute(
            "SELECT seq, id, raw FROM entries WHERE feed = ? AND seq >= ? AND seq <= ? ORDER BY seq",
            (feed, a, b),
        )
    ]
    files: dict[int, bytes] = {}
    for seq, entry_id, raw in rows:
        raw = bytes(raw)
        if hashlib.sha256(raw).hexdigest() != entry_id:
            raise StorageError(
                f"feed {feed[:16]} seq {seq}: the stored entry no longer hashes to its id "
                "(run `edge ledger verify`)"
            )
        files[seq] = raw
        doc = json.loads(raw)
        if doc["type"] == "node.start" and (seq == start or seq > min(about)):
            roles.setdefault(seq, set()).add("name")
        if lot in doc["lots"] or (isinstance(doc["body"], dict) and doc["body"].get("lot") == lot):
            roles.setdefault(seq, set()).add("lot")  # in a range: listed whatever trace thinks
    if missing := sorted(seqs - set(files)):
        raise StorageError(f"feed {feed[:16]}: entries {missing[:5]} are missing")

    ids = [
        bytes.fromhex(i)
        for (i,) in conn.execute(
            "SELECT id FROM entries WHERE feed = ? AND seq < ? ORDER BY seq", (feed, head["size"])
        )
    ]
    if len(ids) != head["size"]:
        raise StorageError(f"feed {feed[:16]}: entries are missing below its head")
    tree = _Tree(leaf_hashes(ids))
    if tree.root(0, head["size"]).hex() != head["root"]:
        raise StorageError(
            f"feed {feed[:16]}: the stored entries do not give the root its head checkpoint "
            f"{head['size']} signed (run `edge ledger verify`)"
        )
    checkpoints: dict[int, dict[str, Any]] = {}
    entries = []
    for seq in sorted(roles):
        cp = _checkpoint(conn, feed, seq)
        if cp is None:
            raise StorageError(f"feed {feed[:16]}: entry {seq} is not signed yet")
        if cp["size"] not in checkpoints:
            if tree.root(0, cp["size"]).hex() != cp["root"]:
                raise StorageError(
                    f"feed {feed[:16]}: the stored entries do not give the root checkpoint "
                    f"{cp['size']} signed (run `edge ledger verify`)"
                )
            proof = tree.consistency(cp["size"], head["size"]) if cp["size"] < head["size"] else []
            checkpoints[cp["size"]] = cp | {"consistency": [h.hex() for h in proof]}
        entries.append(
            {
                "seq": seq,
                "id": ids[seq].hex(),
                "roles": sorted(roles[seq]),
                "checkpoint": cp["size"],
                "inclusion": [h.hex() for h in tree.inclusion(seq, cp["size"])],
            }
        )
    names = []
    for seq in sorted(s for s, r in roles.items() if "name" in r):
        body = json.loads(files[seq])["body"]
        names.append({"seq": seq, "node_id": body.get("node_id"), "site": body.get("site")})
    part = {
        "feed": feed,
        "key": {"type": "ed25519", "public": feed},
        "names": names,
        "head": head,
        "checkpoints": [checkpoints[s] for s in sorted(checkpoints)],
        "entries": entries,
        "ranges": ranges,
    }
    return part, files


def build_proof(
    conn: sqlite3.Connection,
    trace: LotTrace,
    *,
    through_head: bool = False,
    now: float | None = None,
    generator: str = "",
) -> tuple[bytes, ProofSummary]:
    """The proof bundle (zip bytes) of the lot of ``trace``, read from ``conn``'s database.

    Args:
        conn: the ledger database the trace was built from.
        trace: the lot's trace; its entries (and those it relates) are the ones proven.
        through_head: cover each feed from the lot's first entry up to its latest checkpoint
            (else up to the checkpoint after the lot's last entry): no later entry naming the
            lot, such as a correction, can then be left out, at the cost of every entry since.
        now: the bundle's creation time (epoch seconds; default: the clock).
        generator: the program making it (``edge-qc 0.1.0``), recorded in the manifest.

    Raises:
        LedgerError: the trace holds no entry.
        StorageError: the database cannot back the proof (an entry or checkpoint no longer
            matches what was signed: ``edge ledger verify`` names it).
    """
    lot = trace.lot
    about: dict[str, dict[int, str]] = {}
    for entry in [e.entry for e in trace.events] + [r.entry for r in trace.rule_sets]:
        names = lot in entry.lots or entry.body.get("lot") == lot  # as the verifier decides
        role = "lot" if names else "related"
        roles = about.setdefault(entry.feed, {})
        if roles.get(entry.seq) != "lot":
            roles[entry.seq] = role
    if not about:
        raise LedgerError(f"lot {lot!r}: nothing to prove")
    moment = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
    source = verifier_source()
    parts: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    count = 0
    began = not conn.in_transaction
    if began:
        conn.execute("BEGIN")  # one snapshot: a node may be appending meanwhile
    try:
        for feed in sorted(about):
            part, raws = _feed_part(conn, lot, feed, about[feed], through_head)
            parts.append(part)
            # canonical JSON holds no raw newline byte: each line is an entry's exact bytes
            files[f"entries/{feed}.jsonl"] = b"".join(raws[s] + b"\n" for s in sorted(raws))
            count += len(raws)
    except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"proof of lot {lot!r}: cannot read the ledger: {exc}") from exc
    finally:
        if began:
            conn.execute("ROLLBACK")
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "lot": lot,
        "created": stamp,
        "generator": generator,
        "verifier": {"file": "verify_proof.py", "sha256": hashlib.sha256(source).hexdigest()},
        "feeds": parts,
    }
    out = io.BytesIO()
    date = time.gmtime(moment)[:6]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in [
            ("README.txt", _readme(manifest).encode()),
            ("verify_proof.py", source),
            ("proof.json", json.dumps(manifest, indent=1, ensure_ascii=False).encode() + b"\n"),
            *sorted(files.items()),
        ]:
            archive.writestr(zipfile.ZipInfo(name, date), data, zipfile.ZIP_DEFLATED)
    bundle = out.getvalue()
    listed = sum(len(p["entries"]) for p in parts)
    return bundle, ProofSummary(lot, len(parts), listed, count, len(bundle))


def export_proof(
    db: Path, trace: LotTrace, output: Path | BinaryIO, *, through_head: bool = False
) -> ProofSummary:
    """Build the bundle of ``trace``'s lot from the database ``db`` and write it to ``output``.

    A file is written whole or not at all (a temporary file renamed over it).

    Raises:
        StorageError: the database cannot back the proof, or ``output`` cannot be written.
    """
    from edge import __version__

    conn = open_ledger_db(db)
    try:
        data, summary = build_proof(
            conn, trace, through_head=through_head, generator=f"edge-qc {__version__}"
        )
    finally:
        conn.close()
    try:
        if not isinstance(output, Path):
            output.write(data)
            output.flush()
            return summary
        tmp = output.with_name(output.name + ".tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(output)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(f"{output}: cannot write: {exc.strerror or exc}") from exc
    return summary


def _readme(manifest: dict[str, Any]) -> str:
    keys: Sequence[str] = [
        f"  {p['feed']}  " + ", ".join(f"{n['node_id']} at {n['site']}" for n in p["names"])
        for p in manifest["feeds"]
    ]
    return f"""Proof bundle of lot {manifest["lot"]!r}, made {manifest["created"]} by {manifest["generator"] or "edge-qc"}.

Check it without edge-qc (Python 3.11+ with the `cryptography` package):

  1. Read verify_proof.py (a few hundred lines, standard library and cryptography only), or use
     the copy from edge-qc's source (ledger/proof_verifier.py); its SHA-256 is
     {manifest["verifier"]["sha256"]}.
  2. Get each node's public key from the plant, not from this bundle (node.key.pub beside the
     node's key). The bundle's feeds are signed by:
{chr(10).join(keys)}
  3. Run:  python verify_proof.py THIS.zip --trust filler.pub --trust packer.pub ...
     It prints what it checked and OK, or names each failure and exits non-zero.
  4. Keep each feed's head checkpoint it prints (size and root, signed by the node): it is the
     node's word on its whole history at that moment. A signed checkpoint of the same size
     with another root, in any later bundle, would prove that history was rewritten.

proof.json lists, per feed, the signed checkpoints, each proven entry with its RFC 6962
inclusion proof, and the covered ranges; entries/<feed>.jsonl hold the entries' canonical
bytes, one a line (line N without its newline hashes to the entry id:
sed -n Np FILE | tr -d '\\n' | sha256sum). Format: edge-qc-lot-proof version 1, described in
edge-qc's docs/reference/ledger.md.
"""
