"""A device's Modbus data model and how engineering values map onto it.

:class:`RegisterBank` holds the four Modbus tables of one unit (coils, discrete inputs, holding
and input registers). :func:`encode` / :func:`decode` turn an engineering value into register
words for a declared data type, byte/word order and scale, the same vocabulary as a node's
register map (``edge.config.PointConfig``): ``value = raw * scale + offset``.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DATA_TYPES",
    "ORDERS",
    "TABLES",
    "RegisterBank",
    "decode",
    "encode",
    "word_count",
]

TABLES = ("holding", "input", "coil", "discrete")
ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")
# struct code and register count per type; strings and bits are handled separately.
_NUMERIC: dict[str, tuple[str, int]] = {
    "int16": ("h", 1), "uint16": ("H", 1), "int32": ("i", 2), "uint32": ("I", 2),
    "int64": ("q", 4), "uint64": ("Q", 4), "float32": ("f", 2), "float64": ("d", 4),
}  # fmt: skip
DATA_TYPES = (*_NUMERIC, "bool", "string")


def word_count(data_type: str, length: int = 1) -> int:
    """Registers a value of ``data_type`` occupies (``length`` registers for strings)."""
    if data_type == "string":
        return length
    if data_type == "bool":
        return 1
    return _NUMERIC[data_type][1]


def _reorder(raw: bytes, order: str) -> bytes:
    """Map big-endian ``raw`` (ABCD...) to the wire order; the mapping is its own inverse.

    ABCD: big-endian words, big-endian bytes. DCBA: fully little-endian. BADC: bytes swapped
    inside each word. CDAB: words swapped, bytes big-endian ("word swap", common on PLCs).
    """
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order in ("DCBA", "CDAB"):
        words.reverse()
    if order in ("DCBA", "BADC"):
        words = [w[::-1] for w in words]
    return b"".join(words)


def encode(
    value: float | int | bool | str,
    data_type: str,
    order: str = "ABCD",
    *,
    scale: float = 1.0,
    offset: float = 0.0,
    length: int = 1,
) -> list[int]:
    """Encode an engineering value to register words.

    Integers are rounded after ``raw = (value - offset) / scale`` and clamped to the type's
    range, as a transmitter saturates at the end of its output span.
    """
    if data_type == "string":
        text = str(value).encode("ascii", "replace")[: 2 * length].ljust(2 * length, b"\0")
        return [int.from_bytes(text[i : i + 2], "big") for i in range(0, 2 * length, 2)]
    if data_type == "bool":
        return [1 if value else 0]
    code, words = _NUMERIC[data_type]
    # exact integers stay exact (a float has 53 bits: int64 counters would lose their low bits)
    exact = isinstance(value, int) and scale == 1.0 and offset == 0.0
    raw_value: float | int = int(value) if exact else (float(value) - offset) / scale
    if code in "fd":
        raw = struct.pack(">" + code, raw_value)
    else:
        bits = 16 * words
        low, high = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if code.islower() else (0, (1 << bits) - 1)
        )
        raw = struct.pack(">" + code, max(low, min(high, round(raw_value))))
    wire = _reorder(raw, order)
    return [int.from_bytes(wire[i : i + 2], "big") for i in range(0, len(wire), 2)]


def decode(
    words: list[int],
    data_type: str,
    order: str = "ABCD",
    *,
    scale: float = 1.0,
    offset: float = 0.0,
) -> float | int | str:
    """Decode register words back to an engineering value (the inverse of :func:`encode`)."""
    if data_type == "string":
        return (
            b"".join(w.to_bytes(2, "big") for w in words).rstrip(b"\0").decode("ascii", "replace")
        )
    if data_type == "bool":
        return int(bool(words[0]))
    code, count = _NUMERIC[data_type]
    raw = _reorder(b"".join(w.to_bytes(2, "big") for w in words[:count]), order)
    number = struct.unpack(">" + code, raw)[0]
    if scale == 1.0 and offset == 0.0 and code not in "fd":
        return int(number)
    return float(number) * scale + offset


@dataclass(slots=True)
class RegisterBank:
    """The four Modbus tables of one unit; every address below the table size exists.

    Thread-safe: tests read and write it from their own thread while the simulator serves it.

    Attributes:
        holding: holding registers (FC03 read, FC06/FC16 write), 16-bit unsigned words.
        input: input registers (FC04), read-only for the master.
        coils: coils (FC01 read, FC05/FC15 write).
        discrete: discrete inputs (FC02), read-only for the master.
    """

    holding: list[int]
    input: list[int]
    coils: list[bool]
    discrete: list[bool]
    lock: threading.RLock

    @classmethod
    def create(
        cls, holding: int = 100, input: int = 100, coils: int = 64, discrete: int = 64
    ) -> RegisterBank:
        """A bank of zeros with the given table sizes."""
        return cls(
            [0] * holding, [0] * input, [False] * coils, [False] * discrete, threading.RLock()
        )

    def table(self, name: str) -> list[int] | list[bool]:
        """The table called ``holding``, ``input``, ``coil`` or ``discrete``."""
        match name:
            case "holding":
                return self.holding
            case "input":
                return self.input
            case "coil" | "coils":
                return self.coils
            case "discrete":
                return self.discrete
        raise KeyError(f"no register table {name!r}; expected one of {', '.join(TABLES)}")

    def get(self, table: str, address: int, count: int = 1) -> list[int]:
        """Read ``count`` entries (bits as 0/1) starting at ``address``."""
        with self.lock:
            data = self.table(table)
            if address < 0 or address + count > len(data):
                raise IndexError(
                    f"{table} {address}..{address + count - 1} outside 0..{len(data) - 1}"
                )
            return [int(v) for v in data[address : address + count]]

    def set(self, table: str, address: int, values: list[int] | list[bool]) -> None:
        """Write entries starting at ``address`` (words masked to 16 bits, bits to bool)."""
        with self.lock:
            data = self.table(table)
            if address < 0 or address + len(values) > len(data):
                raise IndexError(
                    f"{table} {address}..{address + len(values) - 1} outside 0..{len(data) - 1}"
                )
            bits = table in ("coil", "coils", "discrete")
            stored: list[Any] = data
            for i, v in enumerate(values):
                stored[address + i] = bool(v) if bits else int(v) & 0xFFFF

    def set_value(
        self,
        table: str,
        address: int,
        value: float | int | bool | str,
        data_type: str,
        order: str = "ABCD",
        *,
        scale: float = 1.0,
        offset: float = 0.0,
        length: int = 1,
    ) -> None:
        """Encode an engineering value into the table (bit tables take a truth value)."""
        if table in ("coil", "coils", "discrete"):
            self.set(table, address, [bool(value)])
        else:
            self.set(
                table,
                address,
                encode(value, data_type, order, scale=scale, offset=offset, length=length),
            )

    def get_value(
        self,
        table: str,
        address: int,
        data_type: str,
        order: str = "ABCD",
        *,
        scale: float = 1.0,
        offset: float = 0.0,
        length: int = 1,
    ) -> float | int | str:
        """Decode an engineering value from the table."""
        if table in ("coil", "coils", "discrete"):
            return self.get(table, address)[0]
        words = self.get(table, address, word_count(data_type, length))
        return decode(words, data_type, order, scale=scale, offset=offset)
