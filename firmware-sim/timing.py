"""Modbus RTU line timing: how long frames take on a real RS-485 wire.

A pseudo-terminal moves bytes instantly whatever baud rate is set, so the simulator delays each
reply by the time the exchange would take on the wire. The Modbus over serial line spec
(V1.02, §2.5.1.1) counts 11 bits per character (start + 8 data + parity or second stop + stop)
and requires 3.5 character times of silence after each frame; above 19200 baud the silence is
fixed at 1.75 ms.
"""

from __future__ import annotations

__all__ = ["BITS_PER_CHAR", "char_time", "exchange_time", "frame_time", "t35"]

BITS_PER_CHAR = 11


def char_time(baudrate: int) -> float:
    """Seconds one character takes on the wire."""
    return BITS_PER_CHAR / baudrate


def t35(baudrate: int) -> float:
    """Inter-frame silence in seconds: 3.5 characters, fixed at 1.75 ms above 19200 baud."""
    return 0.00175 if baudrate > 19200 else 3.5 * char_time(baudrate)


def frame_time(nbytes: int, baudrate: int) -> float:
    """Seconds a frame of ``nbytes`` takes to transmit, without the silence after it."""
    return nbytes * char_time(baudrate)


def exchange_time(
    request_bytes: int, reply_bytes: int, baudrate: int, turnaround: float = 0.0
) -> float:
    """Theoretical round trip of one transaction as the master sees it.

    Request on the wire, the 3.5-character silence that ends it, the slave's turnaround, the
    reply on the wire and the silence that ends the reply.
    """
    return (
        frame_time(request_bytes, baudrate)
        + t35(baudrate)
        + turnaround
        + frame_time(reply_bytes, baudrate)
        + t35(baudrate)
    )
