"""A simulated Modbus unit: its register bank, its faults and how it answers a request.

Transport-neutral: the RTU slave and the TCP server both ask :meth:`ModbusDevice.handle` for a
:class:`Reply` and then frame it their own way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from edge.firmware_sim.faults import Fault, FaultSet, deterministic_random
from edge.firmware_sim.pdu import WRITE_FUNCTIONS, exception_pdu, handle_pdu
from edge.firmware_sim.registers import RegisterBank

__all__ = ["ModbusDevice", "Reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What a device sends back for one request.

    Attributes:
        pdu: the reply PDU, or None for no reply at all (the master will time out).
        unit: the unit id to put in the reply (another one under the ``wrong_unit`` fault).
        corrupt: spoil the frame's check (CRC on RTU, transaction id on TCP).
        delay: extra seconds before replying (``slow_response``).
        at: reply complete this many seconds after the request arrived (``slow_response``
            with ``at``; None: line time plus ``delay``).
    """

    pdu: bytes | None
    unit: int
    corrupt: bool = False
    delay: float = 0.0
    at: float | None = None


@dataclass(slots=True)
class ModbusDevice:
    """One Modbus unit.

    Attributes:
        name: device name (scenario key).
        unit: unit id 1..247 it answers to.
        bank: its register tables.
        faults: faults in force.
        refresh: called with the current time before each request, to write process-model
            values into the bank (None for a plain register memory).
        seed: seeds the draws of probabilistic faults.
        requests: requests handled (including unanswered ones).
    """

    name: str
    unit: int
    bank: RegisterBank = field(default_factory=RegisterBank.create)
    faults: FaultSet = field(default_factory=FaultSet)
    refresh: Callable[[float], None] | None = None
    seed: int = 0
    requests: int = 0

    def _hit(self, fault: Fault) -> bool:
        """Whether a probabilistic fault strikes this request (deterministic per request number)."""
        probability = float(fault.params.get("probability", 1.0))
        if probability >= 1.0:
            return True
        return (
            deterministic_random(self.seed, self.name, fault.kind, self.requests).random()
            < probability
        )

    def handle(self, pdu: bytes, now: float, *, broadcast: bool = False) -> Reply:
        """Answer one request PDU at simulation time ``now``.

        Broadcast requests (unit 0) are applied if they are writes and never answered.
        """
        self.requests += 1
        faults = self.faults
        if broadcast:
            if pdu and pdu[0] in WRITE_FUNCTIONS and faults.active("no_response", now) is None:
                handle_pdu(self.bank, pdu)
            return Reply(None, self.unit)
        silent = faults.active("no_response", now)
        if silent is not None and self._hit(silent):
            return Reply(None, self.unit)
        if self.refresh is not None:
            self.refresh(now)
        failing = faults.active("exception", now)
        function = pdu[0] if pdu else 0
        if failing is not None and failing.params.get("function") in (None, function):
            reply_pdu = exception_pdu(function, int(failing.params["code"]))
        else:
            reply_pdu = handle_pdu(self.bank, pdu)
        unit = self.unit
        wrong = faults.active("wrong_unit", now)
        if wrong is not None:
            other = wrong.params.get("unit")
            unit = int(other) if other is not None else self.unit % 247 + 1
        corrupt = faults.active("corrupt_crc", now)
        slow = faults.active("slow_response", now)
        at = slow.params.get("at") if slow is not None else None
        at = float(at) if at is not None else None
        return Reply(
            reply_pdu,
            unit,
            corrupt=corrupt is not None and self._hit(corrupt),
            delay=float(slow.params["delay"]) if slow is not None and at is None else 0.0,
            at=at,
        )
