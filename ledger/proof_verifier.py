#!/usr/bin/env python3
"""Check an edge-qc lot proof bundle without edge-qc: Python 3.11+ and ``cryptography`` only.

    python verify_proof.py LOT.proof.zip [--trust KEY]...

KEY is a feed's public key (64 hex digits), or a file holding one (a node's ``node.key.pub``,
or a PEM public key). It prints what it checked and ``OK``, or names every failure and exits 1
(2 when the bundle cannot be read at all). What it checks, per feed of the bundle:

* the key is the feed's: a feed is named by its Ed25519 public key, and every entry names it;
  with ``--trust``, the key must be one you trust (without, the keys are the bundle's word);
* every entry (a line of ``entries/<feed>.jsonl``) is canonical JSON (RFC 8785: one byte form
  per content, so no two readers can see different content) of that feed, and hashes (SHA-256)
  to its entry id; consecutive entries link (``prev`` is the id of the entry before);
* every signed checkpoint (feed, size, head, Merkle root) carries the feed key's Ed25519
  signature, and is consistent (RFC 9162 2.1.4) with the feed's latest head checkpoint;
* every listed entry is in its checkpoint's RFC 6962 Merkle tree (inclusion proof, RFC 9162
  2.1.3); a range's last entry is the head its checkpoint signed;
* completeness: every entry in each covered range is present, and each one that names the lot
  (in ``lots`` or as ``body.lot``) is listed as the lot's; names given to a key are those of a
  proven ``node.start`` entry.

This file is ``ledger/proof_verifier.py`` of edge-qc, copied into each bundle; it imports
nothing of edge-qc. The bundle format is described in edge-qc's docs/reference/ledger.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import zipfile
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

FORMAT = "edge-qc-lot-proof"
VERSION = 1
MANIFEST = "proof.json"
MAX_INT = 2**53 - 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = {"actor", "body", "feed", "lots", "prev", "refs", "seq", "ts", "type"}


class ProofError(ValueError):
    """A Merkle proof is malformed or does not prove what it claims."""


# --- RFC 6962 / RFC 9162 Merkle trees ---------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data). A ledger leaf's data is the 32-byte entry id."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hashes(proof: Sequence[bytes]) -> None:
    if any(len(h) != 32 for h in proof):
        raise ProofError("a proof hash is not 32 bytes")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof implies for ``leaf`` at ``index`` in a tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is outside a tree of {size}")
    if len(leaf) != 32:
        raise ProofError("the leaf hash is not 32 bytes")
    _check_hashes(proof)
    inner = (index ^ (size - 1)).bit_length()  # levels where the path has siblings both sides
    border = bin(index >> inner).count("1")  # levels on the right border: siblings on the left
    if len(proof) != inner + border:
        raise ProofError(f"the proof has {len(proof)} hashes, not {inner + border}")
    node = leaf
    for level, sibling in enumerate(proof[:inner]):
        node = node_hash(node, sibling) if (index >> level) & 1 == 0 else node_hash(sibling, node)
    for sibling in proof[inner:]:
        node = node_hash(sibling, node)
    return node


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless ``leaf`` is leaf ``index`` of the tree (``size``, ``root``)."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError("the inclusion proof does not lead to the root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise ProofError unless the tree (size1, root1) is a prefix of (size2, root2)."""
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof goes from size {size1} to size {size2}")
    if size1 == size2:
        if proof or root1 != root2:
            raise ProofError("equal sizes need equal roots and an empty proof")
        return
    _check_hashes(proof)
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = bin((size1 - 1) >> inner).count("1")
    shift = (size1 & -size1).bit_length() - 1  # levels the old tree's last subtree spans
    inner -= shift
    # When size1 is a power of two its root is a node of the new tree; otherwise the proof's
    # first hash is the node the two paths start from.
    if not proof:
        raise ProofError("the consistency proof is empty")
    if size1 == 1 << shift:
        start, rest = root1, proof
    else:
        start, rest = proof[0], proof[1:]
    if len(rest) != inner + border:
        raise ProofError(f"the proof has {len(proof)} hashes, which does not fit the sizes")
    mask = (size1 - 1) >> shift
    old = new = start
    for level, sibling in enumerate(rest[:inner]):
        if (mask >> level) & 1:
            old = node_hash(sibling, old)
            new = node_hash(sibling, new)
        else:
            new = node_hash(new, sibling)
    for sibling in rest[inner:]:
        old = node_hash(sibling, old)
        new = node_hash(sibling, new)
    if old != root1 or new != root2:
        raise ProofError("the consistency proof does not lead to both roots")


# --- canonical JSON (RFC 8785, the subset edge-qc hashes: no floats) --------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _reject(text: str) -> Any:
    raise ValueError(f"{text} is not allowed")


def load_json(raw: bytes) -> Any:
    """Parse strict JSON: UTF-8, no duplicate keys, no floats or NaN (raises ValueError)."""
    return json.loads(
        raw.decode("utf-8"),
        object_pairs_hook=_no_duplicates,
        parse_float=_reject,
        parse_constant=_reject,
    )


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of ``value`` (keys in UTF-16 code unit order; integers up to 2**53-1)."""
    return _encode(value).encode("utf-8")


def _encode(value: Any) -> str:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(_string(k) + ":" + _encode(value[k]) for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise ValueError("integer beyond 2**53-1")
        return str(value)
    if isinstance(value, str):
        return _string(value)
    raise ValueError(f"{type(value).__name__} is not canonical")


def _string(text: str) -> str:
    # What json.dumps(text, ensure_ascii=False) returns, without its per-call overhead (a third
    # of the verifier's time): it escapes exactly ", \ and the C0 controls (b t n f r short,
    # the others as lowercase \u00xx), as RFC 8785 does.
    return encode_basestring(text)


# --- the bundle -------------------------------------------------------------------------------


def read_bundle(path: Path) -> dict[str, bytes]:
    """Every file of a bundle (a zip, or the folder it was unzipped into) by its name."""
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()
        }
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if len(set(names)) != len(names):
            raise ValueError("the zip holds two files of one name")
        return {name: archive.read(name) for name in names if not name.endswith("/")}


class Checker:
    """Runs every check of one bundle, collecting what passed and what failed."""

    def __init__(self, files: dict[str, bytes], trusted: set[str] | None) -> None:
        self.files = files
        self.trusted = trusted
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.warnings: list[str] = []

    def fail(self, where: str, what: str) -> None:
        """Record one failure: where (feed, seq, checkpoint, range) and what is wrong."""
        self.failures.append(_show(f"{where}: {what}"))

    def run(self) -> None:
        """Check the manifest, then each feed; raise ValueError when nothing can be checked."""
        try:
            manifest = load_json(self.files[MANIFEST])
        except KeyError:
            raise ValueError(f"no {MANIFEST} in the bundle") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(f"{MANIFEST} is not an {FORMAT} manifest")
        if manifest.get("version") != VERSION:
            raise ValueError(
                f"format version {manifest.get('version')!r}; this verifier reads {VERSION}"
            )
        self.lot = manifest["lot"]
        feeds = manifest["feeds"]
        if (
            not isinstance(self.lot, str)
            or not self.lot
            or not isinstance(feeds, list)
            or not feeds
        ):
            raise ValueError(f"{MANIFEST} names no lot or no feed")
        if not all(isinstance(f, dict) for f in feeds):
            raise ValueError(f"{MANIFEST}: a feed is not an object")
        ids = [f.get("feed") for f in feeds]
        if len(set(map(str, ids))) != len(ids):
            raise ValueError(f"{MANIFEST}: a feed is listed twice")
        self.notes.append(
            f"lot {self.lot!r}: {len(feeds)} feed(s), bundle made {_show(manifest.get('created'))}"
        )
        claimed: set[str] = set()
        for feed in feeds:
            where = f"feed {str(feed.get('feed'))[:16]}"
            try:
                claimed |= self.check_feed(feed)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.fail(where, f"malformed manifest entry ({type(exc).__name__}: {exc})")
        present = {str(f.get("feed")) for f in feeds}
        for key in sorted((self.trusted or set()) - present):
            self.notes.append(f"trusted key {key}: no feed in this bundle")
        for name in sorted(set(self.files) - claimed - {MANIFEST}):
            if name.startswith("entries/"):
                self.fail(name, "a file the manifest does not account for")

    def check_feed(self, spec: dict[str, Any]) -> set[str]:
        """Check one feed of the manifest; returns the entry files it accounts for."""
        feed = spec["feed"]
        where = f"feed {feed[:16]}"
        if not isinstance(feed, str) or not _HEX64.fullmatch(feed):
            raise ValueError("a feed id is 64 lowercase hex digits")
        key = spec["key"]
        if key.get("type") != "ed25519" or key.get("public") != feed:
            self.fail(
                where,
                f"key {key.get('public')!r} is not the feed's (a feed is named by its Ed25519 public key)",
            )
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(feed))
        if self.trusted is not None and feed not in self.trusted:
            self.fail(where, "this key is not among the keys given with --trust")

        # Entry lines: canonical, hashing to their ids, of this feed, in seq order, linked.
        raws: dict[int, bytes] = {}
        ids: dict[int, str] = {}
        data: dict[int, dict[str, Any]] = {}
        blob = self.files.get(f"entries/{feed}.jsonl", b"")
        lines = blob.split(b"\n")  # canonical JSON never holds a raw newline byte
        if lines.pop() != b"":
            self.fail(f"entries/{feed}.jsonl", "does not end with a newline")
        last_seq = -1
        for number, raw in enumerate(lines, 1):
            try:
                doc = load_json(raw)
                seq = doc["seq"] if isinstance(doc, dict) else None
            except (ValueError, UnicodeError) as exc:
                self.fail(f"{where} line {number}", f"entry bytes rejected: {exc}")
                continue
            if type(seq) is not int or seq <= last_seq:
                self.fail(f"{where} line {number}", "seq missing, repeated or out of order")
                continue
            raws[seq] = raw
            last_seq = seq
            try:
                if canonical(doc) != raw:
                    raise ValueError("not in canonical form")
                if set(doc) != _ENTRY_KEYS:
                    raise ValueError("not a ledger entry")
            except ValueError as exc:
                self.fail(f"{where} seq {seq}", f"entry bytes rejected: {exc}")
                continue
            ids[seq] = hashlib.sha256(raw).hexdigest()
            data[seq] = doc
            if doc["feed"] != feed:
                self.fail(f"{where} seq {seq}", f"the entry names feed {str(doc['feed'])[:16]}")
        links = 0
        for seq, doc in data.items():
            if seq == 0 and doc["prev"] is not None:
                self.fail(f"{where} seq 0", "the first entry has a prev")
            if seq - 1 in ids:
                links += 1
                if doc["prev"] != ids[seq - 1]:
                    self.fail(
                        f"{where} seq {seq}", "prev is not the id of the entry before (broken link)"
                    )

        # Checkpoints: signed by the feed's key, consistent with the head.
        head = spec["head"]
        checkpoints = {c["size"]: c for c in spec["checkpoints"]}
        checkpoints.setdefault(head["size"], {**head, "consistency": []})
        for size, cp in sorted(checkpoints.items()):
            at = f"{where} checkpoint {size}"
            same = {k: cp[k] for k in ("size", "head", "root", "sig")} == {
                k: head[k] for k in ("size", "head", "root", "sig")
            }
            if size == head["size"] and not same:
                self.fail(at, "differs from the head checkpoint of the same size")
            message = canonical(
                {"feed": feed, "head": cp["head"], "root": cp["root"], "size": size}
            )
            try:
                public.verify(bytes.fromhex(cp["sig"]), message)
            except (InvalidSignature, ValueError):
                self.fail(at, "the signature is not the feed key's over (feed, size, head, root)")
            if cp.get("cosignatures", []) != []:
                self.fail(at, f"cosignatures are not defined in format version {VERSION}")
            try:
                verify_consistency(
                    size, head["size"], [bytes.fromhex(h) for h in cp["consistency"]],
                    bytes.fromhex(cp["root"]), bytes.fromhex(head["root"]),
                )  # fmt: skip
            except (ProofError, ValueError) as exc:
                self.fail(at, f"not consistent with the head checkpoint {head['size']}: {exc}")
            if size - 1 in ids and ids[size - 1] != cp["head"]:
                self.fail(at, f"signed head {cp['head'][:16]} is not the id of entry {size - 1}")

        # Listed entries: ids re-derived, inclusion proofs to their checkpoints.
        roles: dict[int, list[str]] = {}
        for item in spec["entries"]:
            seq = item["seq"]
            at = f"{where} seq {seq}"
            roles[seq] = item["roles"]
            if seq not in raws:
                self.fail(at, "listed, but the entry is not in the bundle")
                continue
            if seq not in ids:
                continue  # already named above
            if item["id"] != ids[seq]:
                self.fail(
                    at,
                    f"its bytes hash to {ids[seq][:16]}, not to the listed id {str(item['id'])[:16]}",
                )
            cp = checkpoints.get(item["checkpoint"])
            if cp is None:
                self.fail(at, f"its checkpoint {item['checkpoint']} is not in the bundle")
                continue
            try:
                verify_inclusion(
                    seq, cp["size"], leaf_hash(bytes.fromhex(ids[seq])),
                    [bytes.fromhex(h) for h in item["inclusion"]], bytes.fromhex(cp["root"]),
                )  # fmt: skip
            except (ProofError, ValueError) as exc:
                self.fail(at, f"not in the Merkle tree of checkpoint {cp['size']}: {exc}")
        for seq, doc in data.items():
            named = self.names_lot(doc)
            if named and "lot" not in roles.get(seq, []):
                self.fail(
                    f"{where} seq {seq}",
                    f"names lot {self.lot!r} but is not listed as the lot's (left out)",
                )
            if not named and "lot" in roles.get(seq, []):
                self.fail(
                    f"{where} seq {seq}", f"listed as the lot's but does not name lot {self.lot!r}"
                )

        # Completeness: each range is whole, chained up to the head its checkpoint signed.
        covered: set[int] = set()
        for rng in spec["ranges"]:
            first, last, size = rng["first"], rng["last"], rng["checkpoint"]
            at = f"{where} range {first}..{last}"
            if not (isinstance(first, int) and isinstance(last, int) and 0 <= first <= last):
                raise ValueError(f"range {first!r}..{last!r} is not a range of seqs")
            if last - first >= len(raws):  # more seqs than entries: never walk a forged span
                missing = [next(s for s in range(first, last + 1) if s not in raws)]
            else:
                missing = [s for s in range(first, last + 1) if s not in raws]
            if missing:
                self.fail(at, f"entries missing from the range: {missing[:5]}")
            cp = checkpoints.get(size)
            if cp is None or size != last + 1 or ids.get(last) != cp["head"]:
                self.fail(at, f"does not end at the head signed by checkpoint {size}")
            elif last not in roles:
                self.fail(at, "its last entry has no inclusion proof")
            if last - first < len(raws):
                covered.update(range(first, last + 1))
        lot_seqs = sorted(s for s, r in roles.items() if "lot" in r)
        end = max((r["last"] for r in spec["ranges"]), default=-1)
        reach = (
            "through the head"
            if end == head["size"] - 1
            else f"entries {end + 1}..{head['size'] - 1} after it are not (a later entry naming "
            "the lot, such as a correction, would not show: ask for a bundle made --through-head)"
        )
        for seq in lot_seqs:
            if seq not in covered:
                self.fail(f"{where} seq {seq}", "an entry of the lot outside every covered range")

        # Visits: a range stopped short of a lot.end (or starting past a lot.start) cannot be
        # told from a lot still running; say so, so the auditor can ask.
        kinds: dict[str, set[str]] = {data[s]["type"]: set() for s in lot_seqs if s in data}
        for seq in lot_seqs:
            if seq in data and isinstance(data[seq]["body"], dict):
                kinds[data[seq]["type"]].add(_show(data[seq]["body"].get("station")))
        starts, ends = kinds.get("lot.start", set()), kinds.get("lot.end", set())
        for station in sorted(starts - ends):
            self.warnings.append(
                f"{where}: station {station}: lot.start without lot.end in the bundle "
                "(the lot is still running there, or the covered range stops short)"
            )
        for station in sorted(ends - starts):
            self.warnings.append(f"{where}: station {station}: lot.end without its lot.start")

        # Names: each is a proven node.start of this feed saying so.
        names = []
        for item in spec.get("names", []):
            doc = data.get(item["seq"])
            body = doc["body"] if doc else {}
            if (
                doc is None
                or doc["type"] != "node.start"
                or item["seq"] not in roles
                or body.get("node_id") != item["node_id"]
                or body.get("site") != item["site"]
            ):
                self.fail(
                    f"{where} seq {item['seq']}", "a name not backed by a proven node.start entry"
                )
            names.append(f"{_show(item['node_id'])} at {_show(item['site'])}")
        self.notes.append(
            f"feed {feed}\n"
            f"  key: Ed25519 {feed} ({'trusted' if self.trusted is not None else 'NOT PINNED'})"
            f"{'; named ' + ', '.join(dict.fromkeys(names)) if names else ''}\n"
            f"  entries: {len(raws)} canonical and hashed, {links} links checked\n"
            f"  checkpoints: {len(checkpoints)} signed and consistent with head {head['size']} "
            f"(root {head['root'][:16]})\n"
            f"  inclusion proofs: {len(spec['entries'])}; entries of the lot: {len(lot_seqs)}\n"
            f"  completeness: seq {', '.join(_span(r) for r in spec['ranges'])} whole; {reach}"
        )
        for seq in sorted(set(raws) - set(roles) - covered):
            self.fail(f"{where} seq {seq}", "an entry the manifest does not account for")
        return {f"entries/{feed}.jsonl"}

    def names_lot(self, doc: dict[str, Any]) -> bool:
        """True when an entry names the lot, in ``lots`` or as ``body.lot``."""
        lots = doc["lots"]
        body = doc["body"]
        return (isinstance(lots, list) and self.lot in lots) or (
            isinstance(body, dict) and body.get("lot") == self.lot
        )


def _show(value: object) -> str:
    """Text from the bundle made safe to print: no terminal control characters."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))


def _span(rng: dict[str, Any]) -> str:
    return f"{rng['first']}..{rng['last']}"


def load_trusted(values: Sequence[str]) -> set[str]:
    """Feed ids from --trust values: hex, or a file with hex (``node.key.pub``) or a PEM key."""
    keys = set()
    for value in values:
        text = value.strip().lower()
        if not _HEX64.fullmatch(text):
            if not Path(value).is_file():
                raise ValueError(f"{value!r}: not a key: give 64 hex digits or a key file")
            content = Path(value).read_bytes()
            if b"-----BEGIN PUBLIC KEY-----" in content:
                pem = load_pem_public_key(content)
                if not isinstance(pem, Ed25519PublicKey):
                    raise ValueError(f"{value}: not an Ed25519 public key")
                text = pem.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
            else:
                words = content.decode("ascii", "replace").split()
                text = words[0].lower() if words else ""
            if not _HEX64.fullmatch(text):
                raise ValueError(f"{value}: not a public key (64 hex digits)")
        keys.add(text)
    return keys


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    """Verify the bundle named on the command line; 0 OK, 1 failures, 2 unreadable."""
    parser = argparse.ArgumentParser(description="Verify an edge-qc lot proof bundle.")
    parser.add_argument("bundle", type=Path, help="the .zip (or the folder it was unzipped into)")
    parser.add_argument(
        "--trust", action="append", default=[], metavar="KEY",
        help="a feed key you trust: 64 hex digits, or a file (node.key.pub, PEM); repeatable",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        trusted = load_trusted(args.trust) if args.trust else None
    except (OSError, ValueError, UnicodeError) as exc:
        out(f"--trust: {_show(exc)}")
        return 2
    try:
        checker = Checker(read_bundle(args.bundle), trusted)
        checker.run()
    except (OSError, ValueError, LookupError, TypeError, AttributeError, zipfile.BadZipFile) as exc:
        out(f"{args.bundle}: cannot check this bundle: {_show(exc)}")
        return 2
    for note in checker.notes:
        out(note)
    if checker.failures:
        for failure in checker.failures:
            out(f"FAIL {failure}")
        out(f"FAILED: {len(checker.failures)} problem(s)")
        return 1
    for warning in checker.warnings:
        out(f"WARNING {warning}")
    if trusted is None:
        out("WARNING keys not pinned: compare each feed key above with the node's node.key.pub,")
        out("        obtained from the plant, not from this bundle (or rerun with --trust).")
    out("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
