"""``edge rules check|test|explain``: the integrator's tools for rule files.

Every failure is reported as one line per problem (``file:line:col: message``) and exit code 1;
usage mistakes exit 2 (click). No command prints a traceback for bad input.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson
from rich.console import Console
from rich.table import Table

from edge.config import load_config
from edge.errors import ConfigError, EdgeError
from edge.readings import Reading
from edge.rules.expressions import did_you_mean
from edge.rules.loader import check_rules, load_rules
from edge.rules.model import RuleSet
from edge.rules.recorded import format_time, parse_time, read_csv

COMMANDS: list[click.Command] = []

_files = click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
_config = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Node config (TOML): check point names and units against its points.",
)
_data = click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Recorded readings, CSV: ts,point,value[,quality].",
)


def _fail(lines: Sequence[str]) -> NoReturn:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(1)


def _known_points(config_path: Path | None) -> dict[str, str] | None:
    if config_path is None:
        return None
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        _fail(exc.problems)
    return {name: point.unit for name, point in cfg.points.items()}


def _load(files: Sequence[Path], config_path: Path | None) -> RuleSet:
    try:
        return load_rules(files, _known_points(config_path))
    except ConfigError as exc:
        _fail(exc.problems)


def _readings(data_path: Path, ruleset: RuleSet) -> list[Reading]:
    try:
        return read_csv(data_path, text_points={ruleset.lot} if ruleset.lot else ())
    except ConfigError as exc:
        _fail(exc.problems)


def run_replay(
    ruleset: RuleSet, readings: Sequence[Reading], until: float | None = None
) -> list[Any]:
    """Stream ``readings`` (sorted) through the engine on a clock driven by their timestamps.

    The engine is stepped once per distinct timestamp with ``now`` = that timestamp, then once
    more to ``until`` (if later), so delays and stale timers that come due after the last
    reading still fire.
    """
    from edge.rules.engine import Engine  # the engine is heavier than check needs

    engine = Engine(ruleset)
    state = engine.initial_state()
    events: list[Any] = []
    i, n = 0, len(readings)
    while i < n:
        ts = readings[i].ts
        j = i
        while j < n and readings[j].ts == ts:
            j += 1
        state, out = engine.step(state, readings[i:j], ts)
        events.extend(out)
        i = j
    if until is not None and (not readings or until > readings[-1].ts):
        state, out = engine.step(state, [], until)
        events.extend(out)
    return events


@click.group("rules")
def rules() -> None:
    """Check rule files, test them on recorded data, explain why a rule did (not) fire."""


@rules.command("check")
@_files
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one 'file:line:col: message' per line; json: a list of {file,line,col,message}.",
)
@_config
def check(files: tuple[Path, ...], fmt: str, config_path: Path | None) -> None:
    """Validate rule FILES together; print every problem, exit 1 if there is any.

    \b
    Example:
      edge rules check examples/rules/bottling.yaml --config node.toml
    """  # noqa: D301
    ruleset, problems = check_rules(files, _known_points(config_path))
    if fmt == "json":
        click.echo(orjson.dumps([p.as_dict() for p in problems], option=orjson.OPT_INDENT_2))
    else:
        for p in problems:
            click.echo(str(p))
    if problems:
        if fmt == "text":
            click.echo(f"{len(problems)} problem(s) in {len(files)} file(s)", err=True)
        sys.exit(1)
    assert ruleset is not None
    if fmt == "text":
        click.echo(
            f"ok: {len(ruleset.rules)} rules in {len(files)} file(s), set hash {ruleset.hash[:16]}"
        )


def _events_table(events: Sequence[Any]) -> Table:
    from edge.rules.alarms import Transition

    table = Table(show_lines=False, header_style="bold")
    for name in ("time", "rule", "point", "event", "state", "value", "limit", "lot", "message"):
        table.add_column(name, overflow="fold")
    for ev in events:
        if isinstance(ev, Transition):
            table.add_row(
                format_time(ev.ts), ev.rule, ev.point, ev.event,
                f"{ev.from_state} -> {ev.to_state}",
                "" if ev.value is None else f"{ev.value:.6g}",
                "" if ev.limit is None else f"{ev.limit:.6g}",
                ev.lot or "", ev.message,
            )  # fmt: skip
        else:
            failed = [f"{c.rule}: {c.text} (got {c.value})" for c in ev.checks if not c.passed]
            verdict = "" if ev.kind != "lot_end" else ("passed" if ev.passed else "FAILED")
            table.add_row(
                format_time(ev.ts), "", "", ev.kind, verdict, "", "", ev.lot, "; ".join(failed)
            )
    return table


def _json_default(value: object) -> object:
    if isinstance(value, (frozenset, set, tuple)):
        return list(value)
    if hasattr(value, "items"):
        return dict(value.items())  # mappingproxy and other read-only mappings
    raise TypeError(f"cannot encode {type(value).__name__}")


def _json_line(ev: Any) -> bytes:
    from edge.rules.alarms import Transition

    body = orjson.loads(orjson.dumps(ev, default=_json_default))
    kind = "transition" if isinstance(ev, Transition) else "lot"
    return orjson.dumps({"type": kind, "at": format_time(ev.ts), **body})


@rules.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_data
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.option(
    "--expect",
    "expect_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Saved timeline (YAML) to compare with; exit 1 with a diff on any difference.",
)
@click.option("--update", is_flag=True, help="With --expect: rewrite the saved timeline.")
@click.option(
    "--until",
    "until_text",
    default=None,
    help="Run the clock on to this time (ISO-8601 or epoch s) after the last reading.",
)
@_config
def test(
    files: tuple[Path, ...],
    data_path: Path,
    as_json: bool,
    expect_path: Path | None,
    update: bool,
    until_text: str | None,
    config_path: Path | None,
) -> None:
    """Replay recorded CSV data through rule FILES and print every alarm and lot event.

    The CSV has rows ts,point,value[,quality]; ts is ISO-8601 (UTC if no offset) or epoch
    seconds. The engine's clock follows the CSV's timestamps.

    \b
    Examples:
      edge rules test examples/rules/tunnel.yaml --data recorded.csv
      edge rules test tunnel.yaml --data recorded.csv --expect expected.yaml [--update]
    """  # noqa: D301
    from edge.rules import timeline

    if update and expect_path is None:
        raise click.UsageError("--update needs --expect FILE (the timeline to rewrite)")
    ruleset = _load(files, config_path)
    readings = _readings(data_path, ruleset)
    until = None
    if until_text is not None:
        try:
            until = parse_time(until_text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--until") from None
    try:
        events = run_replay(ruleset, readings, until)
    except EdgeError as exc:
        _fail([f"{data_path}: {exc}"])
    actual = timeline.entries(events)
    if expect_path is not None:
        if update:
            header = (
                "edge rules test timeline; regenerate with --update\n"
                f"rules: {' '.join(str(f) for f in files)}\ndata: {data_path}"
            )
            timeline.dump_timeline(actual, expect_path, header)
            click.echo(f"wrote {len(actual)} events to {expect_path}")
            return
        try:
            expected = timeline.load_timeline(expect_path)
        except ConfigError as exc:
            _fail(exc.problems)
        lines = timeline.diff(expected, actual, str(expect_path))
        if lines:
            for line in lines:
                click.echo(line)
            click.echo(
                f"timeline differs from {expect_path} "
                f"({len(expected)} expected, {len(actual)} actual events)",
                err=True,
            )
            sys.exit(1)
        click.echo(f"ok: {len(actual)} events match {expect_path}")
        return
    if as_json:
        for ev in events:
            click.echo(_json_line(ev))
        return
    if not events:
        click.echo(f"no events ({len(readings)} readings replayed)")
        return
    Console(width=160).print(_events_table(events))
    click.echo(f"{len(events)} events from {len(readings)} readings")


@rules.command("explain")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_data
@click.option("--rule", "rule_id", required=True, help="Id of the rule to explain.")
@click.option("--at", "at_text", required=True, help="The moment to explain (ISO-8601 or epoch s).")
@_config
def explain_cmd(
    files: tuple[Path, ...], data_path: Path, rule_id: str, at_text: str, config_path: Path | None
) -> None:
    """Say why rule --rule was (not) active at --at, replaying --data up to then.

    \b
    Example:
      edge rules explain tunnel.yaml --data recorded.csv --rule tunnel-temp-high
        --at 2026-11-23T10:00:03Z
    """  # noqa: D301
    from edge.rules.explain import explain

    ruleset = _load(files, config_path)
    ids = ruleset.by_id()
    if rule_id not in ids:
        _fail([f"unknown rule {rule_id!r}{did_you_mean(rule_id, ids)}"])
    try:
        at = parse_time(at_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None
    readings = _readings(data_path, ruleset)
    try:
        text = explain(ruleset, readings, rule_id, at)
    except (EdgeError, ValueError, KeyError) as exc:
        _fail([str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)])
    click.echo(text)


COMMANDS.append(rules)
