"""``edge serve``: the quality office's read-only web view of a ledger (see :mod:`edge.web`).

Which feeds are shown follows ``edge ledger trace``: the trust list (``--trust``, ``-c``'s
node, or the one beside the database), else the feed that owns the file. A node config (``-c``)
also gives the rules (spec limits: Cp/Cpk and the charts' spec lines) and the points'
resolutions (numbers shown to the step the sensor resolves).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge.cli.options import db_option, tz_option
from edge.cli.trust import trust_options

if TYPE_CHECKING:
    from edge.web.app import Settings

__all__ = ["serve"]


@click.command("serve")
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to listen on; other than localhost needs --token.",
)
@db_option("Ledger database file (env EDGE_LEDGER_DB); -c uses the node's.")
@trust_options
@click.option(
    "--token",
    envvar="EDGE_SERVE_TOKEN",
    default=None,
    help="Access token (password) every request must carry (env EDGE_SERVE_TOKEN).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the access token from FILE (first line), kept out of the process list.",
)
@tz_option(
    "Site time zone for the pages, e.g. Europe/Berlin "
    "(default: -c's [node] timezone, else this machine's)."
)
@click.option(
    "--verify-every",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Verify the whole database this often in the background; 0: once, at start.",
)
@click.option("--log-level", default="info", show_default=True, help="Log level.")
def serve(
    listen: str,
    db: Path,
    trust_keys: tuple[str, ...],
    config_path: Path | None,
    token: str | None,
    token_file: Path | None,
    tz_name: str | None,
    verify_every: str,
    log_level: str,
) -> None:
    """Serve a read-only web view of the ledger: lots, charts, alarms, feeds, downloads."""
    import asyncio
    import signal

    from edge.errors import EdgeError
    from edge.log import configure, event

    configure(log_level)
    try:
        settings, host, port, every = _settings(
            listen, db, trust_keys, config_path, token, token_file, tz_name, verify_every
        )
        from edge.web.app import WebApp
        from edge.web.serve import run_server

        app = WebApp(settings)
        app.conn()  # fails now, in one line, on a missing or foreign file
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(h: str, p: int) -> None:
            where = f"[{h}]" if ":" in h else h
            click.echo(f"edge serve: http://{where}:{p}/ ({app.settings.db})", err=True)

        await run_server(app, host, port, verify_every=every, ready=ready, stop=stop)

    try:
        asyncio.run(main())
    except OSError as exc:  # the port is taken, the address is not ours
        raise click.ClickException(f"--listen {listen}: {exc.strerror or exc}") from None
    event("web.stopped")


def _settings(
    listen: str,
    db: Path,
    trust_keys: tuple[str, ...],
    config_path: Path | None,
    token: str | None,
    token_file: Path | None,
    tz_name: str | None,
    verify_every: str,
) -> tuple[Settings, str, int, float]:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from edge.cli.ledger_query import db_for
    from edge.cli.trust import resolve_trust
    from edge.durations import parse_duration
    from edge.errors import ConfigError
    from edge.ledger.owner import read_owner
    from edge.ledger.query import open_ledger_db
    from edge.web.app import Settings
    from edge.web.serve import check_access, parse_listen

    host, port = parse_listen(listen)
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--token-file {token_file}: cannot read a token: {exc}") from None
    check_access(host, token)
    cfg = None
    if config_path is not None:
        from edge.config import load_config

        cfg = load_config(config_path)
        tz_name = tz_name or cfg.timezone or None  # --tz wins over the config's [node] timezone
    zone = None
    if tz_name:
        try:
            zone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"--tz: {tz_name!r} is not a time zone (Europe/Berlin, UTC)"
            ) from None
    try:
        every = 0.0 if verify_every.strip() == "0" else parse_duration(verify_every)
    except Exception:
        raise ConfigError(
            f"--verify-every: {verify_every!r} is not a duration (30min, 1h)"
        ) from None
    path = db_for(db, config_path)
    trust = resolve_trust(path, trust_keys, config_path)
    conn = open_ledger_db(path)
    try:
        if trust.names is not None:
            feeds: frozenset[str] | None = frozenset(trust.names)
        else:  # no trust list anywhere: the file's own feed, by the file's word (as trace)
            owner = read_owner(conn)
            feeds = frozenset({owner}) if owner is not None else None
    finally:
        conn.close()
    ruleset = None
    resolutions: dict[str, float] = {}
    if cfg is not None:
        from edge.office import point_resolutions
        from edge.rules.loader import load_rules

        if cfg.rules.files:
            ruleset = load_rules(cfg.rules.files, {n: p.unit for n, p in cfg.points.items()})
        resolutions = point_resolutions(cfg)
    settings = Settings(
        db=path,
        token=token,
        zone=zone,
        feeds=feeds,
        names=dict(trust.names or {}),
        node_feed=trust.node_feed,
        ruleset=ruleset,
        resolutions=resolutions,
        trust_source=trust.source,
        control_socket=cfg.control_socket if cfg is not None else path.parent / "control.sock",
    )
    return settings, host, port, every
