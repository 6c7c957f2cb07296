"""The node's Ed25519 key pair: its public key names the node's feed; it signs checkpoints."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.errors import KeyFileError

__all__ = ["KEY_FILE", "NodeKey", "create_key_file", "load_key", "verify_signature"]

#: File name of the private key inside the node's data directory.
KEY_FILE = "node.key"


@dataclass(frozen=True, slots=True)
class NodeKey:
    """A loaded private key.

    Attributes:
        private: the Ed25519 private key.
        feed: hex of the raw 32-byte public key: the id of this node's feed.
    """

    private: Ed25519PrivateKey
    feed: str

    @classmethod
    def generate(cls) -> NodeKey:
        """A fresh key held only in memory (tests, tools)."""
        return cls._wrap(Ed25519PrivateKey.generate())

    @classmethod
    def _wrap(cls, private: Ed25519PrivateKey) -> NodeKey:
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(private, public.hex())

    def sign(self, message: bytes) -> str:
        """Hex Ed25519 signature of ``message``."""
        return self.private.sign(message).hex()


def verify_signature(feed: str, message: bytes, signature: str) -> bool:
    """True when ``signature`` (hex) is ``feed``'s Ed25519 signature of ``message``."""
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(feed))
        public.verify(bytes.fromhex(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def create_key_file(path: Path) -> NodeKey:
    """Generate a key pair and write the private key to ``path`` (PEM PKCS#8, mode 0600).

    The public key goes beside it as ``<path>.pub`` (hex, one line) for trust lists.

    Raises:
        KeyFileError: ``path`` exists (a node key is never overwritten: it names the feed), or
            cannot be written.
    """
    key = NodeKey.generate()
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: refuse to overwrite even if another process creates it between check and write;
        # mode 0600 from the start, so the key is never readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path}: a node key already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # the umask may have narrowed it further, never widened; be exact
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    Path(f"{path}.pub").write_text(key.feed + "\n")
    return key


def load_key(path: Path) -> NodeKey:
    """Read the node's private key.

    Raises:
        KeyFileError: missing, unreadable, not an Ed25519 PEM key, or readable by others.
    """
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path}: no node key; create one with `edge keys init`") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc.strerror}") from exc
    if mode & 0o077:
        raise KeyFileError(
            f"{path}: key file mode is {mode:04o}; it must be 0600 (chmod 600 {path})"
        )
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM private key") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key ({type(private).__name__})")
    return NodeKey._wrap(private)
