"""``edge ledger query|trace|export`` (registered into the ``ledger`` group by edge/cli/ledger.py)."""

from __future__ import annotations

import click

QUERY_COMMANDS: list[click.Command] = []
