"""Merkle trees against the RFC 6962 vectors from transparency-dev/merkle (shared/vectors/merkle)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.ledger import merkle

# CI runs from a clean clone with ``shared`` beside it, as in the workspace.
VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "merkle"
TREES = json.loads((VECTORS / "trees.json").read_text())
LEAVES = [merkle.leaf_hash(bytes.fromhex(h)) for h in TREES["leaf_inputs_hex"]]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


@pytest.mark.parametrize("size", range(len(TREES["root_by_size_hex"])))
def test_root_matches_vector_for_every_size(size: int) -> None:
    want = bytes.fromhex(TREES["root_by_size_hex"][size])
    assert merkle.root(LEAVES[:size]) == want
    frontier = merkle.Frontier()
    for leaf in LEAVES[:size]:
        frontier.append(leaf)
    assert frontier.root() == want
    at_once = merkle.Frontier()
    at_once.extend(LEAVES[:size])
    assert at_once.root() == want


@pytest.mark.parametrize("path", _files("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        case["leafIdx"],
        case["treeSize"],
        _b64(case["leafHash"]),
        _proof(case["proof"]),
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _files("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        case["size1"],
        case["size2"],
        _proof(case["proof"]),
        _b64(case["root1"]),
        _b64(case["root2"]),
    )
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_vector_files_include_accepted_and_rejected_cases() -> None:
    wants = [
        json.loads(p.read_text())["wantErr"] for p in _files("inclusion") + _files("consistency")
    ]
    assert len(wants) == 196  # every file but trees.json
    assert wants.count(False) >= 10
    assert wants.count(True) >= 100


@given(st.integers(min_value=1, max_value=70), st.data())
def test_generated_proofs_verify_and_frontier_agrees(n: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    frontier = merkle.Frontier()
    for i, leaf in enumerate(leaves):
        frontier.append(leaf)
        assert frontier.root() == merkle.root(leaves[: i + 1])
    top = merkle.root(leaves)
    index = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(leaves, index)
    merkle.verify_inclusion(index, n, leaves[index], proof, top)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, n, merkle.leaf_hash(b"other"), proof, top)
    size1 = data.draw(st.integers(1, n))
    cproof = merkle.consistency_proof(leaves, size1)
    merkle.verify_consistency(size1, n, cproof, merkle.root(leaves[:size1]), top)
    if size1 < n:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(size1, n, cproof, merkle.root(leaves[: size1 - 1]), top)


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=6))
def test_frontier_extend_builds_the_tree_append_builds(runs: list[int]) -> None:
    """Level-by-level extend, from any size, equals leaf-by-leaf append and the recursive root."""
    extended, appended = merkle.Frontier(), merkle.Frontier()
    leaves: list[bytes] = []
    for run in runs:
        new = [merkle.leaf_hash(len(leaves).to_bytes(4, "big") + bytes([k])) for k in range(run)]
        leaves += new
        extended.extend(new)
        for leaf in new:
            appended.append(leaf)
        assert extended.size == appended.size == len(leaves)
        assert extended._stack == appended._stack
        assert extended.root() == merkle.root(leaves)


@given(st.lists(st.binary(max_size=70), max_size=40))
def test_leaf_hashes_are_leaf_hash_of_each(items: list[bytes]) -> None:
    assert merkle.leaf_hashes(items) == [merkle.leaf_hash(item) for item in items]
