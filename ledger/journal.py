"""The commit journal: small commits appended to a flat file, moved into SQLite in bulk.

Why (issue 12, SD-card wear; measurements in docs/design.md): an SQLite commit of one alarm
touches some twenty B-tree pages (each index's right edge, the checkpoint row, the frontier,
page 1), 56,500 bytes written per entry at 2 KiB pages; no setting brings it near 8 KiB. An
append of the batch's frame to a flat file and one ``fdatasync`` dirties one or two 4 KiB
pages. The journal's records are moved into SQLite many at a time, in ONE transaction, so the
twenty pages are paid once per move instead of once per alarm.

The file ``<ledger>.eqj`` (``ledger.db-journal`` is SQLite's) is a sequence of records::

    b"EQJ1" | length (4 bytes, big-endian) | CRC-32 of the frame (4 bytes) | frame

each starting at a multiple of 4 KiB (zeros pad the rest of a record's last page), where the
frame is the commit process's ``write`` request exactly as it arrived (a pickle of
plain values: tuples, bytes, str, int, None). Frames are loaded by an unpickler that refuses
every class, so a forged journal cannot run code.

A record is durable once :meth:`Journal.append` returns (``write`` then ``fdatasync``); only
then does the commit process reply. Why pages of their own: the kernel (and the card) writes
whole 4 KiB pages, and an fdatasync'd append dirties every page it touches; a ~2 KB record
packed behind the previous one straddles two pages half the time (measured: 6,200 bytes
written per record packed, 4,096 aligned). A last record that is short or fails its CRC is a crash
in the middle of an append: it was never acknowledged, and it is dropped (with a log line).
A damaged record with good ones after it is not a torn append: the journal is refused.

Small batches are journaled *unsigned* (no checkpoint of their own; a later batch's checkpoint
signs them all: :mod:`edge.ledger.signing`), and a move happens only when the journal's last
entries are signed, or together with the batch that signs them, or with an opener's seal
(:mod:`edge.ledger.seal`): the database never ends in unsigned entries.

Moving (:func:`move`) applies every record with the code that writes a live batch, in one
transaction, skipping the entries of a record the database already holds (a crash between the
COMMIT and the truncate; its keyed readings and state are written again, so the replay ends in
the last record's state), then truncates the file. Every writer of the ledger (the node and
its commit process) holds the journal's ``flock`` while appending, moving, or writing to SQLite
directly, so records and direct writes land in the order they were made.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import pickle
import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from edge.errors import StorageError
from edge.failpoints import hit

__all__ = [
    "JOURNAL_SUFFIX",
    "Journal",
    "JournalContents",
    "journal_end",
    "journal_entries",
    "journal_path",
    "load_frame",
    "move",
    "read_journal",
    "unsigned_tail",
    "write_journaled",
]

log = logging.getLogger("edge.ledger")

#: The journal's file name is the ledger's with this appended.
JOURNAL_SUFFIX = ".eqj"
_MAGIC = b"EQJ1"
_HEADER = struct.Struct(">4sII")  # magic, frame length, CRC-32 of the frame
_MAX_FRAME = 64 << 20  # a length above this is damage, not a frame
_PAGE = 4096  # records start on page boundaries (see the module docstring)


def _aligned(offset: int) -> int:
    return -(-offset // _PAGE) * _PAGE


_loads = orjson.loads


def journal_path(db: str | os.PathLike[str]) -> Path:
    """The commit journal of the ledger at ``db``."""
    return Path(f"{os.fspath(db)}{JOURNAL_SUFFIX}")


class _NoClasses(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"journal frames hold plain values, not {module}.{name}")


def load_frame(frame: bytes) -> Any:
    """Unpickle a journal frame, refusing every class (plain values only).

    Raises:
        pickle.UnpicklingError: the frame names a class or is not a pickle.
    """
    return _NoClasses(io.BytesIO(frame)).load()


@dataclass(frozen=True, slots=True)
class JournalContents:
    """What a journal file holds.

    Attributes:
        frames: the complete records' frames, oldest first.
        torn: bytes of a torn last record (a crash mid-append; never acknowledged), else 0.
    """

    frames: tuple[bytes, ...]
    torn: int


def read_journal(path: Path) -> JournalContents:
    """Read the journal at ``path`` (missing: empty). For readers; writers use :class:`Journal`.

    Raises:
        StorageError: a damaged record that is not the last one (see the module docstring).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JournalContents((), 0)
    except OSError as exc:
        raise StorageError(f"commit journal {path}: cannot read: {exc.strerror}") from exc
    return _parse(path, data)


def _parse(path: Path, data: bytes) -> JournalContents:
    frames: list[bytes] = []
    offset = 0
    end = len(data)
    while offset < end:
        if end - offset < _HEADER.size:
            return JournalContents(tuple(frames), end - offset)
        magic, length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if magic != _MAGIC or length > _MAX_FRAME:
            if not data[offset:].strip(b"\0"):
                # zeros: the file grew but the append's data never reached the disk
                return JournalContents(tuple(frames), end - offset)
            raise StorageError(
                f"commit journal {path}: damaged record at byte {offset} (bad header) "
                f"with data after it; {len(frames)} good records before it"
            )
        if start + length > end:
            return JournalContents(tuple(frames), end - offset)
        frame = data[start : start + length]
        if zlib.crc32(frame) != crc:
            if _aligned(start + length) >= end:  # the last record (its padding after it)
                return JournalContents(tuple(frames), end - offset)
            raise StorageError(
                f"commit journal {path}: damaged record at byte {offset} (CRC mismatch) "
                f"with records after it; {len(frames)} good records before it"
            )
        frames.append(frame)
        offset = min(_aligned(start + length), end)
    return JournalContents(tuple(frames), 0)


def journal_entries(path: Path) -> list[bytes]:
    """The raw entries (canonical bytes) the journal at ``path`` holds, oldest first (readers).

    A reader of a running node's ledger sees the database only; this says what the commit
    journal adds (``edge ledger verify`` reports their number).

    Raises:
        StorageError: a damaged journal, or a record that is not a batch.
    """
    out: list[bytes] = []
    for frame in read_journal(path).frames:
        try:
            request = load_frame(frame)
            params = request[1]
            if params is None:
                continue
            raws, meta = params[2], _loads(params[3])
            out.extend(raws[start - 1 : start - 1 + size] for start, size, *_ in meta)
        except Exception as exc:
            raise StorageError(f"commit journal {path}: a record is not a batch: {exc}") from exc
    return out


class Journal:
    """One process's handle on a ledger's commit journal (append, lock, read, truncate)."""

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.path = journal_path(db)
        try:
            self._fd: int | None = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            raise StorageError(f"commit journal {self.path}: cannot open: {exc.strerror}") from exc
        #: Bytes in the file as this process last saw it (appends and moves of its own).
        self.size = os.fstat(self._fd).st_size

    @property
    def fd(self) -> int:
        """The open file (its lock is this process's)."""
        if self._fd is None:
            raise StorageError(f"commit journal {self.path} is closed")
        return self._fd

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the journal's lock: no other writer appends, moves or writes SQLite meanwhile."""
        fd = self.fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def append(self, frame: bytes) -> None:
        """Append one record and make it durable (call with the lock held).

        Raises:
            StorageError: it could not be written or synced (a partial record is a torn tail:
                the next move drops it, and it was never acknowledged).
        """
        record = _HEADER.pack(_MAGIC, len(frame), zlib.crc32(frame)) + frame
        record += bytes(_aligned(len(record)) - len(record))
        fd = self.fd
        self.size = os.fstat(fd).st_size  # another writer may have moved (emptied) it
        if self.size % _PAGE:
            # A torn record (a crash mid-append) is dropped by the move every opener makes
            # before appending; one left here would sit under the next record.
            raise StorageError(f"commit journal {self.path}: ends in a torn record; move it first")
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(fd, view) :]
            hit("journal.appended")
            os.fdatasync(fd)
        except OSError as exc:
            # Whatever part of the record reached the file must not sit under the next one.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self.size)
            raise StorageError(f"commit journal {self.path}: cannot append: {exc}") from exc
        self.size += len(record)
        hit("journal.synced")

    def read(self) -> JournalContents:
        """The records in the file (call with the lock held)."""
        fd = self.fd
        size = os.fstat(fd).st_size
        chunks = []
        offset = 0
        while offset < size:
            chunk = os.pread(fd, size - offset, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return _parse(self.path, b"".join(chunks))

    def truncate(self) -> None:
        """Empty the file, durably (call with the lock held, after its records are moved)."""
        fd = self.fd
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        except OSError as exc:
            raise StorageError(f"commit journal {self.path}: cannot truncate: {exc}") from exc
        self.size = 0

    def close(self) -> None:
        """Close the file (its lock goes with it). Idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _requests(journal: Journal, frames: tuple[bytes, ...]) -> list[Any]:
    requests = []
    for frame in frames:
        try:
            request = load_frame(frame)
            if not isinstance(request, tuple) or len(request) != 5 or request[0] != "write":
                raise ValueError(f"not a write request: {str(request)[:40]}")
        except Exception as exc:  # CRC-good but not ours: a forged or foreign file
            raise StorageError(
                f"commit journal {journal.path}: a record is not a batch: {exc}"
            ) from exc
        requests.append(request)
    return requests


def unsigned_tail(requests: Sequence[Any]) -> bool:
    """Whether the last of ``requests`` that carries entries carries no checkpoint.

    Such entries are durable in the journal but not yet covered by a signature: they may reach
    the database only together with the checkpoint that signs them (a database never ends in
    unsigned entries: ``verify`` would rightly call them appended behind the writer's back).
    """
    for request in reversed(requests):
        params = request[1]
        if params is not None:
            return params[8] is None
    return False


def journal_end(path: Path, feed: str) -> int | None:
    """Where ``feed`` ends counting the journal's records (None: the journal has none of it).

    Raises:
        StorageError: a damaged journal, or a record that is not a batch.
    """
    end: int | None = None
    for frame in read_journal(path).frames:
        try:
            params = load_frame(frame)[1]
            if params is not None and params[0] == feed:
                end = max(end or 0, int(params[1]) + len(_loads(params[3])))
        except Exception as exc:
            raise StorageError(f"commit journal {path}: a record is not a batch: {exc}") from exc
    return end


def write_journaled(
    journal: Journal, conn: sqlite3.Connection, request: Sequence[Any], signed: bool
) -> None:
    """Make one batch durable the way a writer with a journal does (call with the lock held).

    Unsigned entries wait in the journal for the checkpoint that signs them, and so does
    whatever follows them (to keep the order); the rest lands in SQLite after the journal, in
    one transaction with it. ``request``: :func:`~edge.ledger.commit.write_batch`'s arguments.
    """
    params = request[0]
    if not signed and (
        params is not None or unsigned_tail(_requests(journal, journal.read().frames))
    ):
        journal.append(pickle.dumps(("write", *request), pickle.HIGHEST_PROTOCOL))
    else:
        move(journal, conn, extra=request)


#: A function run inside a move's transaction after its records (see :func:`move`).
Seal = Callable[[sqlite3.Connection], object]


def move(
    journal: Journal,
    conn: sqlite3.Connection,
    *,
    extra: Sequence[Any] | None = None,
    seal: Seal | None = None,
) -> int:
    """Move the journal's records into SQLite in one transaction, then truncate it.

    Call with the journal's lock held. A record whose entries the database already holds is
    skipped (moved before, the truncate did not happen); a torn last record is dropped.

    Entries the journal holds unsigned (:func:`unsigned_tail`) move only with what signs them:
    ``extra``, a signed batch written in the same transaction after the records (the commit
    process's and :meth:`Ledger.write`'s way), or ``seal``, run in that transaction to append
    a checkpoint over them (the writer opening the ledger after a crash). Without either the
    journal is left as it is (0): the writer signs it within seconds.

    Args:
        journal: the journal (its lock held).
        conn: the writer's connection (with :func:`~edge.ledger.commit.prepare` run on it).
        extra: the arguments of :func:`~edge.ledger.commit.write_batch` for one more batch,
            written after the records, in the same transaction (or alone when there are none).
        seal: called with the connection inside the transaction, after the records.

    Returns:
        The number of records applied (skipped ones not counted).

    Raises:
        StorageError: a damaged journal, a record that is not next in its feed, or SQLite
            failed (the transaction was rolled back; the journal is kept).
        sqlite3.Error: SQLite failed.
    """
    from edge.ledger.commit import apply_batch, transaction, write_batch  # imports none of ours

    contents = journal.read()
    if contents.torn:
        log.warning(
            "commit journal %s: dropped a torn last record (%d bytes): a crash in the middle "
            "of an append, never acknowledged",
            journal.path,
            contents.torn,
        )
    if not contents.frames:
        if extra is not None:
            write_batch(conn, *extra)
        elif seal is not None:
            with transaction(conn):
                seal(conn)
        if contents.torn or journal.size or os.fstat(journal.fd).st_size:
            journal.truncate()
        return 0
    requests = _requests(journal, contents.frames)
    signed_by_extra = extra is not None and extra[0] is not None and extra[0][8] is not None
    if seal is None and not signed_by_extra and unsigned_tail(requests):
        if extra is not None:
            raise StorageError(
                f"commit journal {journal.path}: a batch without a checkpoint cannot be written "
                "behind unsigned journal records"
            )
        return 0
    applied = 0
    # The commit.* failpoints fire here too: a move is the batch path's transaction.
    with transaction(conn):
        hit("commit.begin")
        for request in requests:
            if apply_batch(conn, *request[1:5]):
                applied += 1
        if extra is not None:
            apply_batch(conn, *extra)
        if seal is not None:
            seal(conn)
        hit("commit.before_commit")
    hit("commit.after_commit")
    hit("journal.moved")
    journal.truncate()
    return applied
