# noqa: N999  (the folder name is fixed by the design card; it installs as edge.firmware_sim)
"""firmware-sim: simulated sensor firmware on real transports, for demos, tests and benchmarks.

Real Modbus RTU frames (with CRC) on pseudo-terminals, Modbus TCP on loopback ports and ASCII
serial-line devices, driven by deterministic process models and fault injection, all described
by scenario files. Full documentation with every shipped register map: docs/reference/simulator.md.

Whole scenarios::

    from edge.firmware_sim import Simulator, SimulatorThread, load_scenario

    async with Simulator(load_scenario("demo"), run_dir, seed=0) as sim:
        sim.serial_paths["tunnel-bus"]     # Path: <run_dir>/tunnel-bus.tty -> /dev/pts/N
        sim.tcp_endpoints                  # {"bus": ("127.0.0.1", port)} for tcp buses
        sim.inject("tunnel", "no_response", duration=2.0)
        sim.inject("tunnel", "port_gone", duration=1.0)   # PTY closed, re-created at same path
        sim.clear("tunnel")                # every fault of the device (and plugs it back)
        sim.registers("tunnel").get("holding", 0, 4)      # RegisterBank, refreshed to now
        sim.value("tunnel", "temperature") # engineering value now
        sim.set_model("tunnel", "temperature", setpoint=12.0)
        # <run_dir>/ports.json lists paths, /dev/pts names, baud rates, unit ids and TCP ports

    with SimulatorThread("demo", run_dir, seed=0) as sim:  # same API, loop in a thread
        ...

Building blocks, usable without a scenario::

    port = PtyPort(tmp_path / "bus.tty")                 # PTY + stable symlink, unplug/replug
    slave = RtuSlave(port, {1: RegisterBank.create(), 2: RegisterBank.create()}, baudrate=9600)
    async with asyncio.TaskGroup() as tg:                # multi-drop: units 1 and 2 on one PTY
        tg.create_task(slave.serve(), name="rtu")
    ModbusDevice("meter", 1, bank).faults.add(Fault.make("exception", 0.0, {"code": 4}))
    TcpServer([ModbusDevice("plc", 1)])                  # await server.plug(); server.address

Pure helpers: :func:`crc16`, :func:`append_crc`, :func:`encode`/:func:`decode` (data type,
byte/word order, scale), :func:`exchange_time` (theoretical RTU line time), :class:`Plant`
(models and faults of a scenario, values at any time without ports).
"""

from edge.firmware_sim.crc import append_crc, check_crc, crc16
from edge.firmware_sim.device import ModbusDevice, Reply
from edge.firmware_sim.faults import COMM_FAULTS, FAULTS, VALUE_FAULTS, Fault, FaultSet
from edge.firmware_sim.line import LineDevice
from edge.firmware_sim.models import Model
from edge.firmware_sim.pdu import handle_pdu
from edge.firmware_sim.plant import Plant
from edge.firmware_sim.ptyport import PtyPort
from edge.firmware_sim.registers import RegisterBank, decode, encode
from edge.firmware_sim.rtu import RequestFramer, RtuSlave
from edge.firmware_sim.scenario import Scenario, list_scenarios, load_scenario, parse_scenario
from edge.firmware_sim.simulator import Simulator, SimulatorThread
from edge.firmware_sim.tcp import TcpServer
from edge.firmware_sim.timing import exchange_time, frame_time, t35

__all__ = [
    "COMM_FAULTS",
    "FAULTS",
    "VALUE_FAULTS",
    "Fault",
    "FaultSet",
    "LineDevice",
    "ModbusDevice",
    "Model",
    "Plant",
    "PtyPort",
    "RegisterBank",
    "Reply",
    "RequestFramer",
    "RtuSlave",
    "Scenario",
    "Simulator",
    "SimulatorThread",
    "TcpServer",
    "append_crc",
    "check_crc",
    "crc16",
    "decode",
    "encode",
    "exchange_time",
    "frame_time",
    "handle_pdu",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
    "t35",
]
