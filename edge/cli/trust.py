"""``edge trust add|list|remove``: the keys a node trusts; and how other commands find that list.

A ledger file names its feeds' keys itself, so which feeds to believe must come from outside it
(:mod:`edge.ledger.trust`). ``verify``, ``trace`` and ``export`` take it from, in order:

1. ``--trust KEYFILE|HEX`` (repeatable) and/or ``-c node.toml`` (that node's ``trust.toml`` and
   its own key);
2. else the data directory the database is in, when it holds a ``trust.toml`` or a node key
   (``node.key.pub`` / ``node.key``): the node's own list;
3. else nothing: ``verify`` says trust was not checked; ``trace`` and ``export`` show the feed the
   file says it belongs to (``owner``), and say how many feeds they left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import orjson

from edge.cli.output import fail
from edge.errors import EdgeError

__all__ = ["COMMANDS", "ResolvedTrust", "resolve_trust", "trust_options"]

F = TypeVar("F", bound=Callable[..., Any])


def trust_options(func: F) -> F:
    """``--trust KEYFILE|HEX`` (repeatable) and ``-c/--config node.toml``."""
    func = click.option(
        "-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="A node's config: trust its trust list and its own key (and use its ledger).",
    )(func)  # fmt: skip
    func = click.option(
        "--trust", "trust_keys", multiple=True, metavar="KEYFILE|HEX",
        help="Trust this key (64 hex digits, a .pub file or a PEM key file); repeatable.",
    )(func)  # fmt: skip
    return func


@dataclass(frozen=True, slots=True)
class ResolvedTrust:
    """The trust list a command runs with, and where it came from.

    Attributes:
        names: trusted feed id -> name; None when no trust information was found.
        node_feed: the node's own feed when ``-c`` named a node (its file must be its own).
        source: where the list came from, for people.
    """

    names: dict[str, str] | None
    node_feed: str | None
    source: str


def resolve_trust(db: Path, keys: Sequence[str], config_path: Path | None) -> ResolvedTrust:
    """The trust list for a command on ``db`` (see the module docstring for the order).

    Raises:
        TrustError: a ``--trust`` key or the trust file is malformed.
        ConfigError: the node config is wrong.
    """
    from edge.ledger.keys import KEY_FILE
    from edge.ledger.trust import TRUST_FILE, TrustList, parse_key, trust_for

    trust: TrustList | None = None
    node_feed: str | None = None
    sources: list[str] = []
    if config_path is not None:
        from edge.config import load_config

        cfg = load_config(config_path)
        trust = trust_for(cfg.data_dir, cfg.key_path, cfg.node_id)
        node_feed = trust.own.key if trust.own is not None else None
        sources.append(f"{cfg.data_dir / TRUST_FILE} and the node key")
    if keys:
        trust = (trust or TrustList()).with_keys(parse_key(k) for k in keys)
        sources.append("--trust")
    if trust is None:
        here = db.parent
        if any((here / name).exists() for name in (TRUST_FILE, KEY_FILE, f"{KEY_FILE}.pub")):
            trust = trust_for(here)
            # A node's data directory: its key says whose file this is, not the file's owner row.
            node_feed = trust.own.key if trust.own is not None else None
            sources.append(f"{here / TRUST_FILE} and the node key beside the database")
    if trust is None:
        return ResolvedTrust(None, None, "none")
    return ResolvedTrust(trust.names, node_feed, " + ".join(sources))


def _data_dir_options(func: F) -> F:
    func = click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="The node's data directory (default: node.data_dir of -c, else var).",
    )(func)  # fmt: skip
    func = click.option(
        "-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
        default=None, help="The node's config file (its data directory and key).",
    )(func)  # fmt: skip
    return func


def _where(config_path: Path | None, data_dir: Path | None) -> tuple[Path, Path, str]:
    """(trust file, key file, own name) of the node named by -c or --data-dir."""
    from edge.ledger.keys import KEY_FILE
    from edge.ledger.trust import OWN_NAME, TRUST_FILE

    if config_path is not None:
        from edge.config import load_config

        cfg = load_config(config_path)
        base = data_dir or cfg.data_dir
        return base / TRUST_FILE, cfg.key_path, cfg.node_id
    base = data_dir or Path("var")
    return base / TRUST_FILE, base / KEY_FILE, OWN_NAME


def _fail(exc: EdgeError, as_json: bool) -> NoReturn:
    fail("; ".join(getattr(exc, "problems", None) or [str(exc)]), as_json=as_json)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.group()
def trust() -> None:
    """Manage the keys this node trusts (trust.toml in its data directory)."""


@trust.command("add")
@click.argument("key", metavar="KEYFILE|HEX")
@click.option("--name", required=True, help="A name for the key (node id, site, ...).")
@_data_dir_options
@_json_option
def add_command(
    key: str, name: str, config_path: Path | None, data_dir: Path | None, as_json: bool
) -> None:
    """Trust KEY (64 hex digits, a .pub file, or a PEM key file) under NAME."""
    from edge.ledger.trust import add_trusted, own_feed

    try:
        path, key_path, own_name = _where(config_path, data_dir)
        added = add_trusted(path, key, name, own=own_feed(key_path), own_name=own_name)
    except EdgeError as exc:
        _fail(exc, as_json)
    if as_json:
        click.echo(orjson.dumps({"ok": True, "name": added.name, "key": added.key,
                                 "added": added.added, "file": str(path)}).decode())  # fmt: skip
        return
    click.echo(f"trusted {added.name}: {added.key} ({path})")


@trust.command("remove")
@click.argument("name_or_key", metavar="NAME|KEY")
@_data_dir_options
@_json_option
def remove_command(
    name_or_key: str, config_path: Path | None, data_dir: Path | None, as_json: bool
) -> None:
    """Stop trusting the key named (or keyed) NAME|KEY."""
    from edge.ledger.trust import own_feed, remove_trusted

    try:
        path, key_path, _ = _where(config_path, data_dir)
        gone = remove_trusted(path, name_or_key, own=own_feed(key_path))
    except EdgeError as exc:
        _fail(exc, as_json)
    if as_json:
        click.echo(orjson.dumps({"ok": True, "name": gone.name, "key": gone.key,
                                 "file": str(path)}).decode())  # fmt: skip
        return
    click.echo(f"removed {gone.name}: {gone.key} ({path})")


@trust.command("list")
@_data_dir_options
@click.option("--json", "as_json", is_flag=True, help="JSON: one object per trusted key.")
def list_command(config_path: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Show every trusted key: the node's own first, then the trust list."""
    from edge.ledger.trust import load_trust, own_feed

    try:
        path, key_path, own_name = _where(config_path, data_dir)
        listed = load_trust(path, own=own_feed(key_path), own_name=own_name)
    except EdgeError as exc:
        _fail(exc, as_json)
    rows: list[dict[str, Any]] = [
        {"name": t.name, "key": t.key, "added": t.added, "own": t is listed.own} for t in listed.all
    ]
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        click.echo(f"no trusted keys ({path} is empty and no node key was found)")
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        note = "  (this node)" if r["own"] else f"  added {r['added']}" if r["added"] else ""
        click.echo(f"{r['name']:<{width}}  {r['key']}{note}")


COMMANDS: list[click.Command] = [trust]
