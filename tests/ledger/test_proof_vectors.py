"""The standalone verifier's Merkle code against every RFC 6962 vector in ../shared/vectors/merkle,
and its isolation: it imports nothing but the standard library and ``cryptography``."""

from __future__ import annotations

import ast
import base64
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.ledger import merkle, proof_verifier

REPO = Path(__file__).resolve().parents[2]
# CI runs from a clean clone with ``shared`` beside it, as in the workspace.
VECTORS = REPO.parent / "shared" / "vectors" / "merkle"


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def test_vectors_are_there() -> None:
    # every file of the vector set: a missing checkout must fail, not pass with no cases
    assert len(_files("inclusion")) + len(_files("consistency")) == 196


@pytest.mark.parametrize("path", _files("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        case["leafIdx"],
        case["treeSize"],
        _b64(case["leafHash"]),
        [_b64(h) for h in case["proof"] or []],
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(proof_verifier.ProofError):
            proof_verifier.verify_inclusion(*args)
    else:
        proof_verifier.verify_inclusion(*args)


@pytest.mark.parametrize("path", _files("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        case["size1"],
        case["size2"],
        [_b64(h) for h in case["proof"] or []],
        _b64(case["root1"]),
        _b64(case["root2"]),
    )
    if case["wantErr"]:
        with pytest.raises(proof_verifier.ProofError):
            proof_verifier.verify_consistency(*args)
    else:
        proof_verifier.verify_consistency(*args)


def test_tree_roots_match_the_vectors() -> None:
    trees = json.loads((VECTORS / "trees.json").read_text())
    leaves = [proof_verifier.leaf_hash(bytes.fromhex(h)) for h in trees["leaf_inputs_hex"]]
    for size in range(1, len(leaves) + 1):
        want = bytes.fromhex(trees["root_by_size_hex"][size])
        for index in range(size):
            proof = merkle.inclusion_proof(leaves[:size], index)
            assert proof_verifier.root_from_inclusion(index, size, leaves[index], proof) == want


@given(st.integers(1, 80), st.data())
def test_proofs_of_the_ledger_verify_and_altered_ones_do_not(n: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    m = data.draw(st.integers(1, n))
    old, new = merkle.root(leaves[:m]), merkle.root(leaves)
    proof = merkle.consistency_proof(leaves, m)
    proof_verifier.verify_consistency(m, n, proof, old, new)
    index = data.draw(st.integers(0, n - 1))
    path = merkle.inclusion_proof(leaves, index)
    proof_verifier.verify_inclusion(index, n, leaves[index], path, new)
    if path:
        at = data.draw(st.integers(0, len(path) - 1))
        bad = [*path[:at], bytes([path[at][0] ^ 1]) + path[at][1:], *path[at + 1 :]]
        with pytest.raises(proof_verifier.ProofError):
            proof_verifier.verify_inclusion(index, n, leaves[index], bad, new)
    if proof:
        with pytest.raises(proof_verifier.ProofError):
            proof_verifier.verify_consistency(m, n, proof[:-1], old, new)


def test_canonical_form_matches_the_ledger() -> None:
    from edge.ledger.canonical import canonical

    value = {"b": [1, 'x\n\u0001"\\é', None, True], "a": {"\ue000": 1, "\U0001f600": 2}, "": -7}
    assert proof_verifier.canonical(value) == canonical(value)
    assert proof_verifier.load_json(canonical(value)) == value
    for bad in (b'{"a":1,"a":2}', b'{"a":1.5}', b'{"a":NaN}', b"\xff"):
        with pytest.raises((ValueError, UnicodeError)):
            proof_verifier.load_json(bad)


def test_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse((REPO / "ledger" / "proof_verifier.py").read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            roots.add((node.module or "").split(".")[0])
    outside = roots - set(sys.stdlib_module_names) - {"__future__", "cryptography"}
    assert outside == set()
    assert "cryptography" in roots


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",))), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(_JSON)
def test_canonical_bytes_agree_with_the_ledgers_for_any_content(value: object) -> None:
    from edge.ledger.canonical import canonical

    raw = canonical(value)
    assert proof_verifier.canonical(value) == raw
    assert proof_verifier.canonical(proof_verifier.load_json(raw)) == raw
