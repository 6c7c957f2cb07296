"""The ledger: a durable, tamper-evident, hash-chained record of every quality event.

One feed per node (named by its Ed25519 public key); entries are canonical JSON (RFC 8785)
hashed with SHA-256 and chained by ``prev``; every committed batch ends with a checkpoint entry
that signs (feed, size, head, RFC 6962 Merkle root). See docs/reference/ledger.md.
"""

from typing import TYPE_CHECKING, Any

# Bound here, not lazily: importing the submodule ``canonical`` would otherwise leave the
# package attribute ``canonical`` naming the module instead of the function.
from edge.ledger.canonical import canonical, decimal

if TYPE_CHECKING:
    from edge.ledger.entry import (
        CHECKPOINT,
        ENTRY_TYPES,
        Entry,
        format_ts,
        make_entry,
        parse_entry,
        parse_ts,
    )
    from edge.ledger.keys import KEY_FILE, NodeKey, create_key_file, load_key, verify_signature
    from edge.ledger.proof import ProofSummary, build_proof, export_proof
    from edge.ledger.readings_store import ReadingsBlock, make_block
    from edge.ledger.replica import Replica
    from edge.ledger.replica_types import AcceptResult, Checkpoint, Cosignature, Outcome, Reason
    from edge.ledger.schema import MIGRATIONS, migrate
    from edge.ledger.store import DB_FILE, Batch, Ledger, connect
    from edge.ledger.trust import TRUST_FILE, Trusted, TrustList, load_trust, parse_key
    from edge.ledger.verify import FeedReport, Kind, Problem, Report, verify_db, verify_feed
    from edge.ledger.writer import LedgerWriter

# The other submodules load on first use: a verify worker process needs verify, not the writer.
_HOMES = {
    # entry (hashlib, datetime) too: the commit process imports this package and needs neither
    "CHECKPOINT": "entry",
    "ENTRY_TYPES": "entry",
    "Entry": "entry",
    "format_ts": "entry",
    "make_entry": "entry",
    "parse_entry": "entry",
    "parse_ts": "entry",
    "KEY_FILE": "keys",
    "NodeKey": "keys",
    "create_key_file": "keys",
    "load_key": "keys",
    "verify_signature": "keys",
    "ProofSummary": "proof",
    "build_proof": "proof",
    "export_proof": "proof",
    "ReadingsBlock": "readings_store",
    "make_block": "readings_store",
    "Replica": "replica",
    "AcceptResult": "replica_types",
    "Checkpoint": "replica_types",
    "Cosignature": "replica_types",
    "Outcome": "replica_types",
    "Reason": "replica_types",
    "MIGRATIONS": "schema",
    "migrate": "schema",
    "DB_FILE": "store",
    "Batch": "store",
    "Ledger": "store",
    "connect": "store",
    "TRUST_FILE": "trust",
    "TrustList": "trust",
    "Trusted": "trust",
    "load_trust": "trust",
    "parse_key": "trust",
    "FeedReport": "verify",
    "Kind": "verify",
    "Problem": "verify",
    "Report": "verify",
    "verify_db": "verify",
    "verify_feed": "verify",
    "LedgerWriter": "writer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edge.ledger' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"edge.ledger.{home}"), name)


__all__ = [
    "CHECKPOINT",
    "DB_FILE",
    "ENTRY_TYPES",
    "KEY_FILE",
    "MIGRATIONS",
    "TRUST_FILE",
    "AcceptResult",
    "Batch",
    "Checkpoint",
    "Cosignature",
    "Entry",
    "FeedReport",
    "Kind",
    "Ledger",
    "LedgerWriter",
    "NodeKey",
    "Outcome",
    "Problem",
    "ProofSummary",
    "ReadingsBlock",
    "Reason",
    "Replica",
    "Report",
    "TrustList",
    "Trusted",
    "build_proof",
    "canonical",
    "connect",
    "create_key_file",
    "decimal",
    "export_proof",
    "format_ts",
    "load_key",
    "load_trust",
    "make_block",
    "make_entry",
    "migrate",
    "parse_entry",
    "parse_key",
    "parse_ts",
    "verify_db",
    "verify_feed",
    "verify_signature",
]
