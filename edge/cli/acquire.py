"""The technician's commissioning and recording commands, one module each.

| module      | command                                          |
|-------------|--------------------------------------------------|
| read.py     | read: poll a node's points, diagnose each device |
| probe.py    | probe: raw registers/bits decoded every way      |
| scan.py     | scan: which unit ids answer on a bus             |
| write.py    | write: FC05/06/15/16, typed, confirmed           |
| record.py   | record: live readings to a rules-test CSV        |
| readings.py | readings export: stored readings to the same CSV |

Each module imports only click at load time (the drivers, pymodbus and SQLite when its command
runs), so ``edge --help`` stays fast.
"""

from __future__ import annotations

import click

from edge.cli.probe import probe
from edge.cli.read import read
from edge.cli.readings import readings
from edge.cli.record import record
from edge.cli.scan import scan
from edge.cli.write import write

__all__ = ["COMMANDS", "probe", "read", "readings", "record", "scan", "write"]

#: every command of this area, for the CLI's registration (``edge.cli.acquire:read`` also names
#: the read command itself, as a lazy registry of "module:function" expects)
COMMANDS: list[click.Command] = [read, probe, scan, write, record, readings]
