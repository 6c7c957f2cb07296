"""The trust list: the feeds (Ed25519 public keys) a node accepts and vouches for, by name.

A feed names itself by its key, so a file can hold a feed signed by any key at all: a whole
ledger re-chained under a new key verifies as well as the real one, and a forged feed added
beside a real one looks like another gateway. What is trusted must therefore be pinned outside
the ledger file: ``trust.toml`` in the node's data directory, managed with ``edge trust
add/list/remove``. The node's own key is always trusted and is not written in the file.

``edge ledger verify --trust``/``-c`` reports feeds whose key is not trusted; ``trace`` and the
exports show trusted feeds only; sync (issue 13) accepts trusted feeds only. The file::

    # edge-qc trust list (edge trust add/remove). The node's own key is always trusted.
    [[trusted]]
    name = "packer-gw"
    key = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
    added = "2026-12-04T22:30:00Z"

Python API (for sync and the CLI): :func:`load_trust`, :func:`add_trusted`,
:func:`remove_trusted`, :meth:`TrustList.contains`, :meth:`TrustList.name_of`,
:attr:`TrustList.names`; :func:`parse_key` turns ``KEYFILE|HEX`` into a feed id.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
import tomllib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.errors import TrustError

__all__ = [
    "OWN_NAME",
    "TRUST_FILE",
    "TrustList",
    "Trusted",
    "add_trusted",
    "load_trust",
    "own_feed",
    "parse_key",
    "remove_trusted",
    "trust_for",
]

#: File name of the trust list inside the node's data directory.
TRUST_FILE = "trust.toml"
#: The name the node's own key goes by when no node id is known.
OWN_NAME = "self"

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
_HEADER = "# edge-qc trust list (edge trust add/remove). The node's own key is always trusted.\n"


@dataclass(frozen=True, slots=True)
class Trusted:
    """One trusted key: its name, the feed id (hex public key) and when it was added."""

    name: str
    key: str
    added: str = ""


@dataclass(frozen=True, slots=True)
class TrustList:
    """The keys a node trusts: those in its ``trust.toml``, and its own (``own``)."""

    entries: tuple[Trusted, ...] = ()
    own: Trusted | None = None

    @property
    def all(self) -> tuple[Trusted, ...]:
        """Every trusted key, the node's own first."""
        return ((self.own,) if self.own is not None else ()) + self.entries

    @property
    def feeds(self) -> frozenset[str]:
        """Every trusted feed id."""
        return frozenset(t.key for t in self.all)

    @property
    def names(self) -> dict[str, str]:
        """Feed id -> name, for every trusted key."""
        return {t.key: t.name for t in self.all}

    def contains(self, feed: str) -> bool:
        """True when ``feed`` (hex public key) is trusted."""
        return any(t.key == feed for t in self.all)

    __contains__ = contains

    def name_of(self, feed: str) -> str | None:
        """The trust-list name of ``feed`` (None when not trusted)."""
        for t in self.all:
            if t.key == feed:
                return t.name
        return None

    def find(self, name_or_key: str) -> Trusted | None:
        """The entry of the file (never the node's own key) named or keyed ``name_or_key``."""
        wanted = name_or_key.strip()
        for t in self.entries:
            if t.name == wanted or t.key == wanted.lower():
                return t
        return None

    def with_keys(self, feeds: Iterable[str]) -> TrustList:
        """This list plus ``feeds`` (e.g. ``--trust`` on the command line), named by short key."""
        extra = [Trusted(f[:16], f) for f in feeds if not self.contains(f)]
        return TrustList((*self.entries, *extra), self.own)


def parse_key(text: str) -> str:
    """The feed id (64 lower-case hex digits) of ``text``: the hex itself, or a key file.

    A key file is a ``.pub`` file (the hex on one line, as ``edge keys init`` writes), a PEM
    public key, or a node's PEM private key (its public half is taken).

    Raises:
        TrustError: neither hex nor a readable Ed25519 key file.
    """
    text = text.strip()
    if _HEX_KEY.fullmatch(text):
        return _checked(bytes.fromhex(text), text)
    path = Path(text)
    if not path.is_file():
        raise TrustError(
            f"{text!r}: not a key: give 64 hex digits or a key file (.pub, PEM public or private)"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustError(f"{path}: cannot read key file: {exc.strerror}") from exc
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            if b"PRIVATE KEY" in data:
                private = serialization.load_pem_private_key(data, password=None)
                if not isinstance(private, Ed25519PrivateKey):
                    raise TrustError(f"{path}: not an Ed25519 key ({type(private).__name__})")
                public = private.public_key()
            else:
                loaded = serialization.load_pem_public_key(data)
                if not isinstance(loaded, Ed25519PublicKey):
                    raise TrustError(f"{path}: not an Ed25519 key ({type(loaded).__name__})")
                public = loaded
        except (ValueError, TypeError) as exc:
            raise TrustError(f"{path}: not a PEM Ed25519 key") from exc
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw.hex()
    line = data.decode("utf-8", "replace").strip()
    if not _HEX_KEY.fullmatch(line):
        raise TrustError(f"{path}: not a key file (expected 64 hex digits or a PEM key)")
    return _checked(bytes.fromhex(line), str(path))


def _checked(raw: bytes, where: str) -> str:
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise TrustError(f"{where}: not an Ed25519 public key") from exc
    return raw.hex()


def own_feed(key_path: Path) -> str | None:
    """The feed id of the node key at ``key_path`` (from ``<key>.pub``, else the key), or None."""
    for candidate in (Path(f"{key_path}.pub"), key_path):
        if candidate.is_file():
            try:
                return parse_key(str(candidate))
            except TrustError:
                continue
    return None


def load_trust(path: Path, *, own: str | None = None, own_name: str = OWN_NAME) -> TrustList:
    """Read the trust list at ``path`` (a missing file is an empty list).

    Args:
        path: the ``trust.toml`` file.
        own: the node's own feed id, always trusted.
        own_name: the name it goes by (the node id).

    Raises:
        TrustError: the file is unreadable or malformed, or an entry takes ``own_name`` for
            another key (one line naming the file and entry).
    """
    entries = _read(path)
    if own:
        # The node's own key is always trusted under the node's name: a list entry for the same
        # key (a list shared between nodes) adds nothing, and a list entry taking the node's name
        # for another key would show a foreign feed as this node's in every trace and export.
        entries = tuple(e for e in entries if e.key != own)
        for e in entries:
            if e.name == own_name:
                raise TrustError(
                    f"{path}: trusted entry {e.name!r} (key {e.key[:16]}..) takes this node's "
                    "own name for another key: rename it"
                )
    return TrustList(entries, Trusted(own_name, own) if own else None)


def trust_for(data_dir: Path, key_path: Path | None = None, own_name: str = OWN_NAME) -> TrustList:
    """The trust list of the node whose data directory is ``data_dir`` (its own key included)."""
    own = own_feed(key_path if key_path is not None else data_dir / "node.key")
    return load_trust(data_dir / TRUST_FILE, own=own, own_name=own_name)


def _read(path: Path) -> tuple[Trusted, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrustError(f"{path}: cannot read trust list: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TrustError(f"{path}: not valid TOML: {exc}") from exc
    items = data.get("trusted", [])
    if not isinstance(items, list):
        raise TrustError(f"{path}: trusted: must be a list of [[trusted]] tables")
    entries: list[Trusted] = []
    for n, item in enumerate(items, 1):
        where = f"{path}: trusted #{n}"
        if not isinstance(item, dict):
            raise TrustError(f"{where}: must be a table with name and key")
        name, key, added = item.get("name"), item.get("key"), item.get("added", "")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise TrustError(f"{where}: name: {name!r} is not a name ({_NAME.pattern})")
        if not isinstance(key, str) or not _HEX_KEY.fullmatch(key):
            raise TrustError(f"{where}: key: {key!r} is not 64 hex digits")
        _checked(bytes.fromhex(key), where)
        if any(e.name == name for e in entries):
            raise TrustError(f"{where}: name {name!r} is listed twice")
        if any(e.key == key.lower() for e in entries):
            raise TrustError(f"{where}: key {key[:16]}.. is listed twice")
        entries.append(Trusted(name, key.lower(), str(added)))
    return tuple(entries)


def add_trusted(
    path: Path, key: str, name: str, *, own: str | None = None, own_name: str | None = None
) -> Trusted:
    """Add ``key`` (``KEYFILE|HEX``, see :func:`parse_key`) as ``name`` to the list at ``path``.

    Raises:
        TrustError: a malformed key or name, a name or key already on the list, or the node's
            own key or name (``own``, ``own_name``).
    """
    feed = parse_key(key)
    if not _NAME.fullmatch(name):
        raise TrustError(
            f"name {name!r}: use 1-64 letters, digits and . _ : @ - (starting with a letter or digit)"
        )
    if own is not None and feed == own:
        raise TrustError(f"key {feed[:16]}.. is this node's own key: it is always trusted")
    if own is not None and name == (own_name or OWN_NAME):
        raise TrustError(f"name {name!r} is this node's own: give the key another name")
    with _locked(path):
        entries = _read(path)
        for e in entries:
            if e.name == name:
                raise TrustError(f"{path}: name {name!r} is taken (key {e.key[:16]}..)")
            if e.key == feed:
                raise TrustError(f"{path}: key {feed[:16]}.. is already trusted as {e.name!r}")
        added = Trusted(name, feed, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        _write(path, (*entries, added))
    return added


def remove_trusted(path: Path, name_or_key: str, *, own: str | None = None) -> Trusted:
    """Remove the entry named or keyed ``name_or_key`` from the list at ``path``.

    Raises:
        TrustError: no such entry, or it is the node's own key (always trusted).
    """
    wanted = name_or_key.strip()
    if own is not None and wanted.lower() == own:
        raise TrustError(f"key {own[:16]}.. is this node's own key: it cannot be removed")
    with _locked(path):
        entries = _read(path)
        gone = TrustList(entries).find(wanted)
        if gone is None:
            raise TrustError(f"{path}: no trusted key named or keyed {wanted!r}")
        _write(path, tuple(e for e in entries if e is not gone))
    return gone


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of the list (two ``edge trust add`` at once lose nothing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise TrustError(f"{path}: cannot lock trust list: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(path: Path, entries: Iterable[Trusted]) -> None:
    """Replace the file whole (temp file, fsync, rename): a crash leaves the old list or the new."""
    lines = [_HEADER]
    for e in entries:
        # Names and keys are checked against patterns without quotes or backslashes, and
        # ``added`` is our own timestamp: each fits a TOML basic string as it is.
        lines.append(f'\n[[trusted]]\nname = "{e.name}"\nkey = "{e.key}"\n')
        if e.added and _safe(e.added):
            lines.append(f'added = "{e.added}"\n')
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            out.write("".join(lines))
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise TrustError(f"{path}: cannot write trust list: {exc.strerror}") from exc


def _safe(text: str) -> bool:
    return text.isprintable() and '"' not in text and "\\" not in text
