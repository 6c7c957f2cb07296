"""What a block stores and hashes does not change when the code that writes it gets faster.

Closing a block (columns, digest, summaries) was made cheaper for issue 18 (per-value and
per-time caches, a per-point summary loop). The round-trip properties would not notice a change
of the stored columns or of the summaries' last bits that still decodes; these fixed blocks
would. The expected figures were computed by the code before the change (commit ef25310) from
the same blocks: SHA-256 of the block's columns before compression (the compressor's output may
differ between liblzma versions; what we write into it may not), of a staged piece's JSON, the
block digest itself, and SHA-256 of the summary rows' repr (floats to the bit).
"""

from __future__ import annotations

import hashlib
import lzma
import random
import zlib

import pytest

from edge.ledger.readings_codec import LZMA, PIECE, ZLIB, Item, decode, encode, encode_piece
from edge.ledger.readings_store import items_digest
from edge.ledger.readings_summary import summarize

T0 = 1_795_000_000_000_000  # microseconds


def job_block() -> list[Item]:
    """25 polls of the 40-point job: a square wave (int) and 39 scaled registers (0.1 steps)."""
    rng = random.Random(18)
    items: list[Item] = []
    vals, t = [100.0 + i for i in range(40)], T0
    for poll in range(25):
        for i in range(40):
            if i == 0:
                v: object = 20 if poll % 20 < 10 else 80
            else:
                vals[i] += rng.choice([-0.1, 0.0, 0.1])
                v = round(int(vals[i] * 10) * 0.1, 1)
            items.append((f"p{i:02d}", "", t, v, "good"))
        t += rng.randint(99_000, 101_000)
    return items


def zoo_block() -> list[Item]:
    """Every kind of value (0.0 beside -0.0, 1 beside 1.0 and True), repeats, times going back."""
    rng = random.Random(12)
    pool: list[object] = [0.0, -0.0, 1, 1.0, True, False, 0, 2.5, 1e-7, 1e300, -5e-324, None,
                          "x", "", 10**30, -(2**70), 502.3125061035156, 0.1 + 0.2, 3.0]  # fmt: skip
    items: list[Item] = []
    t = T0
    for _ in range(600):
        v = rng.choice(pool) if rng.random() < 0.8 else rng.gauss(500.0, 3.0)
        t += rng.choice([0, 0, 100_000, -3_000_000, 61_000_000, 3_600_000_000])
        items.append((rng.choice(["a", "b", "t\u00fcr"]), rng.choice(["", "g"]), t, v,
                      rng.choice(["good", "good", "stale", "comm_fail"])))  # fmt: skip
    return items


BLOCKS = {"job": job_block, "zoo": zoo_block}
#: block -> (columns, staged piece, digest, summaries): what commit ef25310 computed
EXPECTED = {
    "job": (
        "480fc8ab2a61bdcef8a82c332ac73637",
        "0937ff09a5f200f6147de62a3631618a",
        "fa36185a7968ea7c38302f03e5b0c01a",
        "afb4927427d173b17877b7698a0e2deb",
    ),
    "zoo": (  # its staged piece holds columns too (integers beyond 64 bits)
        "3c30ad667927ac2c51973ba057c85e46",
        "3c30ad667927ac2c51973ba057c85e46",
        "10fad32cbe35bc9ddcaf4ccbd3cb7218",
        "82cdb955888422e9a586ab4abcb23cb6",
    ),
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def figures(items: list[Item]) -> tuple[str, str, str, str]:
    blob = encode(items)
    assert blob[0] == LZMA
    columns = lzma.decompress(blob[1:], format=lzma.FORMAT_RAW,
                              filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 16}])  # fmt: skip
    piece = encode_piece(items)
    assert decode(piece) == items
    # JSON, or for the zoo's integers beyond 64 bits the columns, behind zlib
    assert piece[0] in (PIECE, ZLIB)
    return (
        _sha(columns),
        _sha(zlib.decompress(piece[1:])),
        items_digest(items)[:32],
        _sha(repr(summarize(items)).encode()),
    )


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_a_block_stores_and_hashes_what_it_did_before(name: str) -> None:
    assert figures(BLOCKS[name]()) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(BLOCKS))
@pytest.mark.parametrize("preset", [6, 9, 0])
def test_blocks_compressed_at_any_preset_read_back(name: str, preset: int) -> None:
    """Blocks are written at preset 3 since issue 18's CPU work (preset 6 before): a database
    holds both, and the reader takes the columns whatever preset compressed them."""
    items = BLOCKS[name]()
    ours = encode(items)
    columns = lzma.decompress(ours[1:], format=lzma.FORMAT_RAW,
                              filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 16}])  # fmt: skip
    other = bytes((LZMA,)) + lzma.compress(
        columns, format=lzma.FORMAT_RAW,
        filters=[{"id": lzma.FILTER_LZMA2, "preset": preset, "dict_size": 1 << 16}],
    )  # fmt: skip
    assert other != ours
    assert decode(other) == decode(ours) == items
