"""The ledger: a durable, tamper-evident, hash-chained record of every quality event.

One feed per node (named by its Ed25519 public key); entries are canonical JSON (RFC 8785)
hashed with SHA-256 and chained by ``prev``; every committed batch ends with a checkpoint entry
that signs (feed, size, head, RFC 6962 Merkle root). See the README (ledger).
"""

from edge.ledger.canonical import canonical, decimal
from edge.ledger.entry import CHECKPOINT, Entry, format_ts, make_entry, parse_entry, parse_ts
from edge.ledger.keys import KEY_FILE, NodeKey, create_key_file, load_key, verify_signature
from edge.ledger.readings_store import ReadingsBlock, make_block
from edge.ledger.schema import MIGRATIONS, migrate
from edge.ledger.store import DB_FILE, Batch, Ledger, connect
from edge.ledger.verify import FeedReport, Kind, Problem, Report, verify_db, verify_feed
from edge.ledger.writer import LedgerWriter

__all__ = [
    "CHECKPOINT",
    "DB_FILE",
    "KEY_FILE",
    "MIGRATIONS",
    "Batch",
    "Entry",
    "FeedReport",
    "Kind",
    "Ledger",
    "LedgerWriter",
    "NodeKey",
    "Problem",
    "ReadingsBlock",
    "Report",
    "canonical",
    "connect",
    "create_key_file",
    "decimal",
    "format_ts",
    "load_key",
    "make_block",
    "make_entry",
    "migrate",
    "parse_entry",
    "parse_ts",
    "verify_db",
    "verify_feed",
    "verify_signature",
]
