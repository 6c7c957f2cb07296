"""Proof bundles of real ledgers, checked by the shipped verifier in a Python without edge-qc.

The bundle is built from ledgers written through the real Ledger (the two-gateway scenario of
tests/helpers/ledger_scenario.py, and a feed of many batches); each check runs the
``verify_proof.py`` taken out of the bundle as a subprocess whose only non-stdlib package is
``cryptography`` (``-E -s -S``: no site-packages, no PYTHONPATH; the script's folder holds the
verifier and links to cryptography and its cffi backend, nothing else).
"""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _cffi_backend
import cryptography
import ledger_scenario as sc
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cli import main
from edge.errors import StorageError
from edge.ledger import merkle
from edge.ledger.keys import NodeKey
from edge.ledger.proof import _Tree, build_proof
from edge.ledger.query import open_ledger_db
from edge.ledger.store import Ledger
from edge.ledger.trace import trace_lot

Files = dict[str, bytes]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> sc.Scenario:
    return sc.build(tmp_path_factory.mktemp("proof") / "ledger.db")


@pytest.fixture(scope="module")
def bundle(scenario: sc.Scenario) -> bytes:
    conn = open_ledger_db(scenario.db)
    try:
        data, _ = build_proof(conn, trace_lot(conn, sc.LOT), now=sc.T0 + 3 * 86400)
    finally:
        conn.close()
    return data


@pytest.fixture(scope="module")
def auditor(tmp_path_factory: pytest.TempPathFactory, bundle: bytes) -> Path:
    """A folder with the shipped verifier and links to cryptography: the auditor's machine."""
    folder = tmp_path_factory.mktemp("auditor")
    (folder / "verify_proof.py").write_bytes(_unzip(bundle)["verify_proof.py"])
    (folder / "cryptography").symlink_to(Path(cryptography.__file__).parent)
    backend = Path(str(_cffi_backend.__file__))
    (folder / backend.name).symlink_to(backend)
    return folder


def _unzip(data: bytes) -> Files:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _explode(files: Files) -> Files:
    """``entries/<feed>.jsonl`` split into ``entries/<feed>/<seq>.json``, for easy tampering."""
    out = {}
    for name, data in files.items():
        if name.startswith("entries/") and name.endswith(".jsonl"):
            for line in data.split(b"\n")[:-1]:
                out[f"{name[: -len('.jsonl')]}/{json.loads(line)['seq']}.json"] = line
        else:
            out[name] = data
    return out


def _join(files: Files) -> Files:
    """The inverse of :func:`_explode`: one line per entry, in seq order."""
    out: Files = {}
    lines: dict[str, list[tuple[int, bytes]]] = {}
    for name, data in files.items():
        match = re.fullmatch(r"entries/(\w+)/(\d+)\.json", name)
        if match:
            lines.setdefault(match[1], []).append((int(match[2]), data))
        else:
            out[name] = data
    for feed, items in lines.items():
        out[f"entries/{feed}.jsonl"] = b"".join(data + b"\n" for _, data in sorted(items))
    return out


def _zip(files: Files) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def _python(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-E", "-s", "-S", *args],
        cwd=folder,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _verify(folder: Path, data: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    path = folder / "bundle.zip"
    path.write_bytes(data)
    return _python(folder, "verify_proof.py", str(path), *args)


def _tampered(bundle: bytes, change: Callable[[Files, dict[str, Any]], None]) -> bytes:
    files = _explode(_unzip(bundle))
    manifest = json.loads(files["proof.json"])
    change(files, manifest)
    files["proof.json"] = json.dumps(manifest).encode()
    return _zip(_join(files))


def _feed(manifest: dict[str, Any], feed: str) -> dict[str, Any]:
    return next(f for f in manifest["feeds"] if f["feed"] == feed)


def _flip(hex_text: str) -> str:
    return ("1" if hex_text[0] != "1" else "2") + hex_text[1:]


def test_the_verifier_runs_where_edge_is_not_importable(auditor: Path) -> None:
    probe = _python(auditor, "-c", "import edge")
    assert probe.returncode != 0
    assert "No module named 'edge'" in probe.stderr
    probe = _python(auditor, "-c", "import cryptography, sys; print(sys.flags.no_site)")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "1"


def test_real_lot_bundle_verifies(auditor: Path, bundle: bytes, scenario: sc.Scenario) -> None:
    result = _verify(auditor, bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.rstrip().endswith("OK")
    assert "NOT PINNED" in out
    assert "WARNING keys not pinned" in out
    assert "named filler-gw at plant-1" in out
    assert "named packer-gw at plant-1" in out
    assert "FAIL" not in out
    # the lot's six entries on two feeds (4 on the filler, 2 on the packer), all proven
    assert "entries of the lot: 4" in out
    assert "entries of the lot: 2" in out


def test_pinned_keys_verify_and_a_wrong_pin_fails(
    auditor: Path, bundle: bytes, scenario: sc.Scenario, tmp_path: Path
) -> None:
    pub = tmp_path / "filler.pub"
    pub.write_text(scenario.filler + "\n")
    third = NodeKey.generate().feed  # a gateway that recorded nothing of the lot (or was left out)
    result = _verify(
        auditor, bundle, "--trust", str(pub), "--trust", scenario.packer, "--trust", third
    )
    assert result.returncode == 0, result.stdout
    assert f"trusted key {third}: no feed in this bundle" in result.stdout
    assert "NOT PINNED" not in result.stdout
    assert "WARNING keys not pinned" not in result.stdout
    result = _verify(auditor, bundle, "--trust", str(pub))
    assert result.returncode == 1
    assert (
        f"FAIL feed {scenario.packer[:16]}: this key is not among the keys given" in result.stdout
    )


def test_every_entry_line_hashes_to_its_listed_id(bundle: bytes) -> None:
    # each line is the hashed bytes themselves (what `sha256sum` of it would show)
    import hashlib

    files = _explode(_unzip(bundle))
    manifest = json.loads(files["proof.json"])
    for part in manifest["feeds"]:
        for item in part["entries"]:
            raw = files[f"entries/{part['feed']}/{item['seq']}.json"]
            assert hashlib.sha256(raw).hexdigest() == item["id"]


def test_one_byte_of_a_lot_entry_changed_fails(
    auditor: Path, bundle: bytes, scenario: sc.Scenario
) -> None:
    alarm = scenario.entries["a_alarm_on"]
    name = f"entries/{scenario.filler}/{alarm.seq}.json"

    def change(files: Files, manifest: dict[str, Any]) -> None:
        raw = files[name]
        files[name] = raw.replace(b'"value":"498.2"', b'"value":"499.2"')
        assert files[name] != raw

    result = _verify(auditor, _tampered(bundle, change))
    assert result.returncode == 1
    assert f"FAIL feed {scenario.filler[:16]} seq {alarm.seq}: its bytes hash to" in result.stdout
    assert f"seq {alarm.seq + 1}: prev is not the id of the entry before" in result.stdout


def test_one_byte_of_an_unlisted_range_entry_changed_fails(
    auditor: Path, bundle: bytes, scenario: sc.Scenario
) -> None:
    # the other lot's start sits inside the covered range: no inclusion proof of its own, but
    # the hash chain up to the signed head catches it
    other = scenario.entries["a_other_start"]
    name = f"entries/{scenario.filler}/{other.seq}.json"

    def change(files: Files, manifest: dict[str, Any]) -> None:
        files[name] = files[name].replace(b"L-OTHER", b"L-OTHEQ")

    result = _verify(auditor, _tampered(bundle, change))
    assert result.returncode == 1
    assert f"checkpoint {other.seq + 1}: signed head" in result.stdout


def test_non_canonical_bytes_of_the_same_content_fail(
    auditor: Path, bundle: bytes, scenario: sc.Scenario
) -> None:
    end = scenario.entries["a_lot_end"]
    name = f"entries/{scenario.filler}/{end.seq}.json"

    def change(files: Files, manifest: dict[str, Any]) -> None:
        files[name] = json.dumps(json.loads(files[name])).encode()  # ", " and ": "

    result = _verify(auditor, _tampered(bundle, change))
    assert result.returncode == 1
    assert f"seq {end.seq}: entry bytes rejected: not in canonical form" in result.stdout


@pytest.mark.parametrize("how", ["file and listing", "listing only", "file only"])
def test_an_entry_of_the_lot_left_out_fails(
    auditor: Path, bundle: bytes, scenario: sc.Scenario, how: str
) -> None:
    ack_end = scenario.entries["a_lot_end"]

    def change(files: Files, manifest: dict[str, Any]) -> None:
        part = _feed(manifest, scenario.filler)
        if how != "file only":
            part["entries"] = [e for e in part["entries"] if e["seq"] != ack_end.seq]
        if how != "listing only":
            del files[f"entries/{scenario.filler}/{ack_end.seq}.json"]

    result = _verify(auditor, _tampered(bundle, change))
    assert result.returncode == 1
    want = {
        "file and listing": "entries missing from the range: [9]",
        "listing only": "names lot 'L-2611-A' but is not listed as the lot's (left out)",
        "file only": "listed, but the entry is not in the bundle",
    }[how]
    assert f"FAIL feed {scenario.filler[:16]}" in result.stdout
    assert want.replace("[9]", f"[{ack_end.seq}]") in result.stdout


def test_a_range_not_ending_at_a_signed_head_fails(
    auditor: Path, bundle: bytes, scenario: sc.Scenario
) -> None:
    start = scenario.entries["b_lot_start"]
    end = scenario.entries["b_lot_end"]

    def change(files: Files, manifest: dict[str, Any]) -> None:
        part = _feed(manifest, scenario.packer)
        part["entries"] = [e for e in part["entries"] if e["seq"] != end.seq]
        part["ranges"] = [{"first": start.seq, "last": start.seq, "checkpoint": start.seq + 1}]
        del files[f"entries/{scenario.packer}/{end.seq}.json"]

    result = _verify(auditor, _tampered(bundle, change))
    assert result.returncode == 1  # the packer's lot ran inside one batch: no head after start
    assert "does not end at the head signed by checkpoint" in result.stdout


def _two_batch_lot(path: Path) -> dict[str, int]:
    """lot.start in one batch, lot.end in the next, then another batch."""
    seqs = {}
    with Ledger.open(path, NodeKey.generate()) as led:
        led.append("node.start", {"node_id": "gw", "site": "s"}, ts=sc.T0)
        seqs["start"] = led.append(
            "lot.start", {"lot": "L-2", "station": "st"}, lots=["L-2"], ts=sc.T0
        ).seq
        led.commit(now=sc.T0 + 1)
        end = led.append("lot.end", {"lot": "L-2", "station": "st"}, lots=["L-2"], ts=sc.T0 + 1)
        seqs["end"] = end.seq
        led.commit(now=sc.T0 + 2)
        led.append("alarm", {"rule": "other"}, ts=sc.T0 + 3)
        led.commit(now=sc.T0 + 4)
    return seqs


def test_a_range_cut_at_an_earlier_signed_head_is_named_not_hidden(
    auditor: Path, tmp_path: Path
) -> None:
    """The documented limit: the bundle's maker chooses where a range ends. Cut at an earlier
    signed head, with the lot's end dropped, nothing in the bundle is false, so it verifies;
    the verifier names the open station visit and the entries past the range."""
    seqs = _two_batch_lot(tmp_path / "two.db")
    conn = open_ledger_db(tmp_path / "two.db")
    try:
        bundle, _ = build_proof(conn, trace_lot(conn, "L-2"))
        whole, _ = build_proof(conn, trace_lot(conn, "L-2"), through_head=True)
    finally:
        conn.close()

    def cut(files: Files, manifest: dict[str, Any]) -> None:
        (part,) = manifest["feeds"]
        keep = seqs["start"] + 1  # the first batch's checkpoint
        part["entries"] = [e for e in part["entries"] if e["seq"] <= seqs["start"]]
        part["checkpoints"] = [c for c in part["checkpoints"] if c["size"] <= keep]
        part["ranges"] = [{"first": seqs["start"], "last": keep - 1, "checkpoint": keep}]
        for name in [n for n in files if n.startswith("entries/")]:
            if int(name.rsplit("/", 1)[1].split(".")[0]) > seqs["start"]:
                del files[name]

    result = _verify(auditor, _tampered(bundle, cut))
    assert result.returncode == 0, result.stdout
    assert "station st: lot.start without lot.end in the bundle" in result.stdout
    assert f"entries {seqs['start'] + 1}.." in result.stdout
    assert "are not" in result.stdout
    result = _verify(auditor, bundle)
    assert result.returncode == 0
    assert "WARNING feed" not in result.stdout
    assert "are not (a later entry naming the lot" in result.stdout
    result = _verify(auditor, whole)
    assert result.returncode == 0
    assert "whole; through the head" in result.stdout


@pytest.mark.parametrize("which", ["inclusion", "consistency", "head root", "checkpoint root"])
def test_a_proof_element_changed_fails(
    auditor: Path, bundle: bytes, scenario: sc.Scenario, which: str
) -> None:
    def change(files: Files, manifest: dict[str, Any]) -> None:
        part = _feed(manifest, scenario.filler)
        if which == "inclusion":
            item = next(e for e in part["entries"] if e["inclusion"])
            item["inclusion"][-1] = _flip(item["inclusion"][-1])
        elif which == "consistency":
            cp = next(c for c in part["checkpoints"] if c["consistency"])
            cp["consistency"][0] = _flip(cp["consistency"][0])
        elif which == "head root":
            part["head"]["root"] = _flip(part["head"]["root"])
        else:
            part["checkpoints"][0]["root"] = _flip(part["checkpoints"][0]["root"])

    result = _verify(auditor, _tampered(bundle, change))
    assert result.returncode == 1, result.stdout
    assert f"FAIL feed {scenario.filler[:16]}" in result.stdout
    assert "OK" not in result.stdout.splitlines()


def test_a_checkpoint_signature_changed_fails(
    auditor: Path, bundle: bytes, scenario: sc.Scenario
) -> None:
    def change(files: Files, manifest: dict[str, Any]) -> None:
        cp = _feed(manifest, scenario.packer)["checkpoints"][0]
        cp["sig"] = _flip(cp["sig"])

    result = _verify(auditor, _tampered(bundle, change))
    assert result.returncode == 1
    assert "the signature is not the feed key's over (feed, size, head, root)" in result.stdout


def test_a_key_not_the_feeds_fails_even_with_matching_signatures(
    auditor: Path, bundle: bytes, scenario: sc.Scenario
) -> None:
    """Another key, with every checkpoint re-signed by it: the signatures verify under that key,
    but a feed is named by its key, and every entry names the feed."""
    from edge.ledger.entry import checkpoint_message

    other = NodeKey.generate()

    def change(files: Files, manifest: dict[str, Any]) -> None:
        part = _feed(manifest, scenario.filler)
        part["key"]["public"] = other.feed
        for cp in [*part["checkpoints"], part["head"]]:
            cp["sig"] = other.sign(
                checkpoint_message(other.feed, cp["size"], cp["head"], cp["root"])
            )

    result = _verify(auditor, _tampered(bundle, change))
    assert result.returncode == 1
    assert f"key '{other.feed}' is not the feed's" in result.stdout
    assert "the signature is not the feed key's" in result.stdout


def test_a_whole_forged_ledger_fails_only_against_pinned_keys(
    auditor: Path, scenario: sc.Scenario, tmp_path: Path
) -> None:
    """A ledger re-made under new keys is self-consistent: pinning the plant's keys catches it."""
    forged = sc.build(tmp_path / "forged.db")
    conn = open_ledger_db(forged.db)
    try:
        data, _ = build_proof(conn, trace_lot(conn, sc.LOT))
    finally:
        conn.close()
    assert _verify(auditor, data).returncode == 0
    result = _verify(auditor, data, "--trust", scenario.filler, "--trust", scenario.packer)
    assert result.returncode == 1
    assert result.stdout.count("this key is not among the keys given with --trust") == 2


def test_stray_files_and_unknown_versions_are_refused(auditor: Path, bundle: bytes) -> None:
    def stray(files: Files, manifest: dict[str, Any]) -> None:
        feed = manifest["feeds"][0]["feed"]
        files[f"entries/{feed}/999.json"] = files[f"entries/{feed}/0.json"].replace(
            b'"seq":0', b'"seq":999'
        )
        files["entries/notes.txt"] = b"trust me"

    result = _verify(auditor, _tampered(bundle, stray))
    assert result.returncode == 1
    assert "seq 999: an entry the manifest does not account for" in result.stdout
    assert "FAIL entries/notes.txt: a file the manifest does not account for" in result.stdout

    def future(files: Files, manifest: dict[str, Any]) -> None:
        manifest["version"] = 2

    result = _verify(auditor, _tampered(bundle, future))
    assert result.returncode == 2
    assert "format version 2; this verifier reads 1" in result.stdout
    result = _verify(auditor, b"not a zip")
    assert result.returncode == 2
    assert "cannot check this bundle" in result.stdout
    assert result.stderr == ""


def test_an_unzipped_bundle_verifies_too(auditor: Path, bundle: bytes, tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        archive.extractall(tmp_path / "unzipped")
    result = _python(auditor, "verify_proof.py", str(tmp_path / "unzipped"))
    assert result.returncode == 0, result.stdout


def _many_batches(path: Path, key: NodeKey) -> tuple[int, int]:
    """A feed of ~700 entries in batches of 37 with lot L-MANY on some; returns (first, last)."""
    with Ledger.open(path, key) as led:
        led.append("node.start", {"node_id": "gw", "site": "s"}, ts=sc.T0)
        seqs = []
        for i in range(700):
            lots = ["L-MANY"] if 200 <= i <= 520 and i % 17 == 0 else []
            entry = led.append("alarm", {"rule": f"r{i % 5}", "n": i}, ts=sc.T0 + i, lots=lots)
            if lots:
                seqs.append(entry.seq)
            if i % 37 == 36:
                led.commit(now=sc.T0 + i)
        led.commit(now=sc.T0 + 800)
    return seqs[0], seqs[-1]


def test_a_lot_over_many_batches(auditor: Path, tmp_path: Path) -> None:
    first, last = _many_batches(tmp_path / "many.db", NodeKey.generate())
    conn = open_ledger_db(tmp_path / "many.db")
    try:
        data, summary = build_proof(conn, trace_lot(conn, "L-MANY"))
    finally:
        conn.close()
    manifest = json.loads(_unzip(data)["proof.json"])
    (part,) = manifest["feeds"]
    (rng,) = part["ranges"]
    assert rng["first"] == first
    assert rng["last"] >= last
    assert len(part["checkpoints"]) > 5  # each entry proven to the checkpoint of its batch
    assert summary.entries == rng["last"] - rng["first"] + 2  # the range and the node.start
    result = _verify(auditor, data)
    assert result.returncode == 0, result.stdout


def test_export_refuses_a_ledger_that_no_longer_matches_its_signatures(
    scenario: sc.Scenario, tmp_path: Path
) -> None:
    db = tmp_path / "changed.db"
    db.write_bytes(scenario.db.read_bytes())
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entries_no_update")
    seq = scenario.entries["a_alarm_on"].seq
    conn.execute(
        "UPDATE entries SET raw = CAST(replace(CAST(raw AS TEXT), '498.2', '499.9') AS BLOB) "
        "WHERE feed = ? AND seq = ?",
        (scenario.filler, seq),
    )
    conn.commit()
    conn.close()
    result = CliRunner().invoke(
        main,
        ["ledger", "export", "--db", str(db), "--lot", sc.LOT, "--format", "proof", "-o",
         str(tmp_path / "p.zip")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"seq {seq}: the stored entry no longer hashes to its id" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "p.zip").exists()
    ro = open_ledger_db(db)
    trace = trace_lot(ro, sc.LOT)
    with pytest.raises(StorageError, match="no longer hashes to its id"):
        build_proof(ro, trace)
    ro.close()


def test_cli_export_writes_a_bundle_that_verifies(
    auditor: Path, scenario: sc.Scenario, tmp_path: Path
) -> None:
    out = tmp_path / "lot.proof.zip"
    args = ["ledger", "export", "--db", str(scenario.db), "--lot", sc.LOT, "--format", "proof"]
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "proof bundle of lot 'L-2611-A': 2 feed(s)" in result.output
    assert {"README.txt", "verify_proof.py", "proof.json"} <= set(_unzip(out.read_bytes()))
    assert _python(auditor, "verify_proof.py", str(out)).returncode == 0
    # to a pipe: the zip itself on stdout
    piped = CliRunner().invoke(main, args)
    assert piped.exit_code == 0
    assert piped.stdout_bytes.startswith(b"PK\x03\x04")
    assert "proof.json" in _unzip(piped.stdout_bytes)
    unknown = CliRunner().invoke(main, [*args[:-3], "NO-SUCH-LOT", "--format", "proof"])
    assert unknown.exit_code == 1
    assert "no entries" in unknown.output
    # like the other exports, the bundle holds the trusted feeds only
    pinned = CliRunner().invoke(main, [*args, "--trust", scenario.filler, "-o", str(out)])
    assert pinned.exit_code == 0, pinned.output
    assert "proof bundle of lot 'L-2611-A': 1 feed(s)" in pinned.output
    feeds = [f["feed"] for f in json.loads(_unzip(out.read_bytes())["proof.json"])["feeds"]]
    assert feeds == [scenario.filler]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_tree_proofs_equal_the_reference_merkle_code(n: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = _Tree(leaves)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    assert tree.root(0, size) == merkle.root(leaves[:size])
    assert tree.inclusion(index, size) == merkle.inclusion_proof(leaves[:size], index)
    assert tree.consistency(old, size) == merkle.consistency_proof(leaves[:size], old)


def _first_feed(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["feeds"][0]  # type: ignore[no-any-return]


_FORGED_MANIFESTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "feeds an object": lambda m: m.update(feeds={"a": 1}),
    "feed a number": lambda m: m.update(feeds=[1]),
    "feed listed twice": lambda m: m.update(feeds=[m["feeds"][0], m["feeds"][0]]),
    "huge range": lambda m: _first_feed(m)["ranges"][0].update(last=10**15),
    "negative range": lambda m: _first_feed(m)["ranges"][0].update(first=-5),
    "seq a string": lambda m: _first_feed(m)["entries"][0].update(seq="x"),
    "no head": lambda m: _first_feed(m).pop("head"),
    "proof not hex": lambda m: _first_feed(m)["entries"][1].update(inclusion=["zz"]),
    "sig a list": lambda m: _first_feed(m)["checkpoints"][0].update(sig=[1]),
    "names forged": lambda m: _first_feed(m)["names"][0].update(node_id="\x1b[2Jroot"),
    "lot with escapes": lambda m: m.update(lot="\x1b[31mL"),
}


@pytest.mark.parametrize("how", sorted(_FORGED_MANIFESTS))
def test_forged_manifests_fail_in_one_line_each(auditor: Path, bundle: bytes, how: str) -> None:
    result = _verify(
        auditor, _tampered(bundle, lambda files, manifest: _FORGED_MANIFESTS[how](manifest))
    )
    assert result.returncode in (1, 2), result.stdout
    assert result.stderr == ""  # no traceback
    assert "\x1b" not in result.stdout  # nothing from the bundle reaches the terminal raw
    assert "OK" not in result.stdout.splitlines()


def test_the_bundle_ships_the_repositorys_verifier_and_says_its_hash(bundle: bytes) -> None:
    import hashlib

    files = _unzip(bundle)
    source = (Path(__file__).resolve().parents[2] / "ledger" / "proof_verifier.py").read_bytes()
    assert files["verify_proof.py"] == source
    digest = hashlib.sha256(source).hexdigest()
    assert json.loads(files["proof.json"])["verifier"]["sha256"] == digest
    assert digest in files["README.txt"].decode()


def test_an_entry_listed_as_the_lots_that_does_not_name_it_fails(
    auditor: Path, bundle: bytes, scenario: sc.Scenario
) -> None:
    rules = scenario.entries["a_rules2"]  # related to the lot (a rule change during it)

    def change(files: Files, manifest: dict[str, Any]) -> None:
        item = next(e for e in _feed(manifest, scenario.filler)["entries"] if e["seq"] == rules.seq)
        item["roles"] = ["lot"]

    result = _verify(auditor, _tampered(bundle, change))
    assert result.returncode == 1
    assert f"seq {rules.seq}: listed as the lot's but does not name lot" in result.stdout


def test_a_trust_file_that_is_not_a_key_is_one_line(
    auditor: Path, bundle: bytes, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key\n")
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0 not text")
    for value in (str(bad), str(tmp_path / "missing.pub"), str(binary), "00", "ab" * 33):
        result = _verify(auditor, bundle, "--trust", value)
        assert result.returncode == 2
        assert result.stdout.startswith("--trust: ")
        assert len(result.stdout.splitlines()) == 1
        assert result.stderr == ""
        assert "not a" in result.stdout
        assert "Errno" not in result.stdout
        assert "codec" not in result.stdout
