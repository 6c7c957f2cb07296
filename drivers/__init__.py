"""Acquisition: Modbus RTU, Modbus TCP and serial-line drivers, one poller per bus.

The runtime's contract::

    pollers = build_pollers(config)          # ConfigError for maps that cannot work
    async with asyncio.TaskGroup() as tg:
        for p in pollers:
            tg.create_task(p.run(emit), name=f"bus:{p.name}")
    p.stats()                                # frozen BusStats snapshot
    p.take_gaps()                            # cycles not polled since the last call (Gap)

``emit(readings)`` receives one :class:`~edge.readings.Reading` per point per device poll cycle.
"""

from edge.drivers.base import BusPoller, Emit
from edge.drivers.build import build_pollers, check_config
from edge.drivers.codec import (
    decode_point,
    decode_registers,
    encode_point,
    encode_registers,
    register_count,
)
from edge.drivers.health import BreakerState
from edge.drivers.planner import ReadRequest, minimum_requests, plan_reads
from edge.drivers.stats import BusStats, DeviceStats, Gap, gaps_body

__all__ = [
    "BreakerState",
    "BusPoller",
    "BusStats",
    "DeviceStats",
    "Emit",
    "Gap",
    "ReadRequest",
    "build_pollers",
    "check_config",
    "decode_point",
    "decode_registers",
    "encode_point",
    "encode_registers",
    "gaps_body",
    "minimum_requests",
    "plan_reads",
    "register_count",
]
