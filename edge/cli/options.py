"""Click options several commands share, written once so their names, types and help agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["DB_OPTION", "OUTPUT_OPTION", "db_option", "tz_option"]

_F = TypeVar("_F", bound=Callable[..., Any])


def db_option(help: str) -> Callable[[_F], _F]:
    """``--db``: the ledger database, by default where a node keeps it (``var/ledger.db``)."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        # the node's default data_dir ("var") and DB name, as ``edge ledger verify`` uses
        default=Path("var") / "ledger.db",
        show_default=True,
        envvar="EDGE_LEDGER_DB",
        help=help,
    )


def tz_option(help: str) -> Callable[[_F], _F]:
    """``--tz ZONE`` into ``tz_name`` (None: the caller's fallback, said in ``help``)."""
    return click.option("--tz", "tz_name", default=None, metavar="ZONE", help=help)


DB_OPTION = db_option("Ledger database file (env EDGE_LEDGER_DB).")

#: ``-o/--output FILE`` into ``output`` (None: stdout)
OUTPUT_OPTION = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to FILE instead of stdout.",
)
