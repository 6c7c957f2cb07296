"""The ``edge`` command line: one click group, each area's commands in a module of its own.

| module     | commands                              |
|------------|---------------------------------------|
| node.py    | run, demo, config check               |
| sim.py     | sim run, sim list                     |
| acquire.py | read, probe                           |
| rules.py   | rules check, rules test, rules explain|
| ledger.py  | ledger verify/query/trace/export, keys|
| alarm.py   | alarm list/ack/shelve/... (running node)|
"""

from __future__ import annotations

import click

from edge import __version__
from edge.cli import acquire, alarm, ledger, node, rules, sim

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge")
def main() -> None:
    """edge-qc: sensor acquisition, quality rules and a tamper-evident ledger for the factory edge."""


for module in (node, sim, acquire, rules, ledger, alarm):
    for command in module.COMMANDS:
        main.add_command(command)
