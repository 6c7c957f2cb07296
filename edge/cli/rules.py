"""``edge rules check|test|explain``: the integrator's tools for rule files.

Every failure is reported as one line per problem (``file:line:col: message``) and exit code 1;
usage mistakes exit 2 (click). With ``--json`` the failure is one JSON object on stdout instead
(``{"ok": false, "error": ..., "problems": [{"file", "line", "col", "message"}]}``, the shape
of :func:`edge.cli.output.fail` plus the problems). No command prints a
traceback for bad input.

Point names and units are checked against the node config given with ``--config``, or else
against a ``node.toml`` found beside the rule files (in a rule file's folder or the one above,
as in ``examples/node.toml`` + ``examples/rules/*.yaml``); ``check`` warns when neither exists.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

# heavy imports (rich, orjson, the rules package) happen inside the commands, so that
# `edge rules --help` starts as fast as the rest of the CLI (edge/cli/__init__.py)
if TYPE_CHECKING:
    from rich.table import Table

    from edge.readings import Reading
    from edge.rules.model import RuleSet

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


_POSITION = re.compile(r"(?P<file>.+?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<message>.*)")


def _problem_dict(line: str) -> dict[str, Any]:
    """A ``file:line[:col]: message`` line as JSON fields (``message`` alone when unplaced)."""
    match = _POSITION.fullmatch(line)
    if match is None:
        return {"message": line}
    return {
        "file": match["file"],
        "line": int(match["line"]),
        "col": int(match["col"] or 1),
        "message": match["message"],
    }


def _fail(lines: Sequence[str], as_json: bool = False, error: str = "") -> NoReturn:
    """Report a failed command: one line each on stderr, or one JSON object on stdout."""
    import orjson

    if as_json:
        body = {
            "ok": False,
            "error": error or (lines[0] if len(lines) == 1 else f"{len(lines)} problems"),
            "problems": [_problem_dict(line) for line in lines],
        }
        click.echo(orjson.dumps(body))
    else:
        for line in lines:
            click.echo(line, err=True)
    sys.exit(1)


@dataclass(frozen=True, slots=True)
class _Points:
    """The points rule files are checked against, and where they came from."""

    known: dict[str, str] | None  #: name -> unit; None = point names not checked
    config: Path | None  #: the node config they came from
    found: bool = False  #: the config was found beside the rule files (not given)
    warning: str = ""  #: why point names are not checked


def _beside(files: Sequence[Path]) -> Path | None:
    """A ``node.toml`` in a rule file's folder or the folder above it (first found)."""
    for file in files:
        for folder in (file.parent, file.parent.parent):
            candidate = folder / "node.toml"
            if candidate.is_file():
                return candidate
    return None


def _known_points(
    config_path: Path | None, files: Sequence[Path] = (), as_json: bool = False
) -> _Points:
    from edge.config import load_config
    from edge.errors import ConfigError

    found = False
    if config_path is None:
        config_path = _beside(files)
        found = config_path is not None
    if config_path is None:
        return _Points(
            None,
            None,
            warning="point names not checked: give --config node.toml "
            "(no node.toml beside the rule files)",
        )
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        if found:  # not asked for: its problems are its own command's business
            return _Points(
                None,
                config_path,
                found,
                warning=f"point names not checked: {config_path} (found beside the rule files) "
                f"has {len(exc.problems)} problem(s); see edge config check",
            )
        _fail(exc.problems, as_json, f"cannot read the node config {config_path}")
    return _Points({name: point.unit for name, point in cfg.points.items()}, config_path, found)


def _load(files: Sequence[Path], config_path: Path | None, as_json: bool = False) -> RuleSet:
    from edge.rules.loader import check_rules

    points = _known_points(config_path, files, as_json)
    ruleset, problems = check_rules(files, points.known)
    if ruleset is None:
        _fail([str(p) for p in problems] or ["no rule files given"], as_json, "bad rule files")
    if points.warning and not as_json:
        click.echo(f"warning: {points.warning}", err=True)
    return ruleset


def _readings(data_path: Path, ruleset: RuleSet, as_json: bool = False) -> list[Reading]:
    from edge.errors import ConfigError
    from edge.rules.recorded import read_csv

    try:
        return read_csv(data_path, text_points={ruleset.lot} if ruleset.lot else ())
    except ConfigError as exc:
        _fail(exc.problems, as_json, f"bad data file {data_path}")


def run_replay(
    ruleset: RuleSet,
    readings: Sequence[Reading],
    until: float | None = None,
    signals: list[tuple[float, dict[str, Any]]] | None = None,
) -> list[Any]:
    """Stream ``readings`` (sorted) through the engine on a clock driven by their timestamps.

    The engine is stepped once per distinct timestamp with ``now`` = that timestamp, then once
    more to ``until`` (if later), so delays and stale timers that come due after the last
    reading still fire. ``signals``, when given, gets every SPC rule signal (each reading at
    which a selected Nelson rule signals, an alarm already active or not), in time order.
    """
    from edge.rules.engine import Engine  # the engine is heavier than check needs
    from edge.rules.stat_evals import SpcEval

    engine = Engine(ruleset)
    spc = [ev for ev in engine.evaluators if isinstance(ev, SpcEval)]
    if signals is not None:
        for ev in spc:
            ev.signals = []
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
    if signals is not None:
        signals.extend(_signal_entries(spc))
    return events


def _signal_entries(spc: Sequence[Any]) -> list[tuple[float, dict[str, Any]]]:
    from edge.rules.nelson import RULE_NAMES, rules_in
    from edge.rules.recorded import format_time

    out: list[tuple[float, int, dict[str, Any]]] = []
    for ev in spc:
        for t, value, mask, active in ev.signals or ():
            rules = rules_in(mask)
            entry = {
                "type": "signal",
                "at": format_time(t),
                "rule": ev.rule.id,
                "point": ev.point,
                "value": value,
                "nelson": list(rules),
                "names": [RULE_NAMES[k] for k in rules],
                "alarm_active": active,  # True: the alarm was already on; no transition shows it
            }
            out.append((t, ev.idx, entry))
    out.sort(key=lambda item: (item[0], item[1]))
    return [(t, entry) for t, _, entry in out]


@click.group("rules")
def rules() -> None:
    """Check rule files, test them on recorded data, explain why a rule did (not) fire."""


@rules.command("check")
@_files
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: ok, rules, hash, config, points_checked, problems "
    "[{file,line,col,message}], warnings.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default=None,
    hidden=True,
    help="Deprecated: --format json is --json.",
)
@_config
def check(
    files: tuple[Path, ...], as_json: bool, fmt: str | None, config_path: Path | None
) -> None:
    """Validate rule FILES together; print every problem, exit 1 if there is any.

    Point names and units are checked against --config, or a node.toml beside the rule
    files (their folder or the one above); without either, a warning says they are not.

    \b
    Example:
      edge rules check examples/rules/bottling.yaml --config node.toml
    """  # noqa: D301
    import orjson

    from edge.rules.loader import check_rules

    as_json = as_json or fmt == "json"
    points = _known_points(config_path, files, as_json)
    ruleset, problems = check_rules(files, points.known)
    warnings = [points.warning] if points.warning else []
    if as_json:
        body = {
            "ok": not problems,
            "files": [str(f) for f in files],
            "rules": None if ruleset is None else len(ruleset.rules),
            "hash": None if ruleset is None else ruleset.hash,
            "config": None if points.config is None else str(points.config),
            "points_checked": points.known is not None,
            "problems": [p.as_dict() for p in problems],
            "warnings": warnings,
        }
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2))
        sys.exit(1 if problems else 0)
    for p in problems:
        click.echo(str(p))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if points.found and points.known is not None:
        click.echo(f"points checked against {points.config} (found beside the rules)", err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {len(files)} file(s)", err=True)
        sys.exit(1)
    assert ruleset is not None
    click.echo(
        f"ok: {len(ruleset.rules)} rules in {len(files)} file(s), set hash {ruleset.hash[:16]}"
    )


def _events_table(events: Sequence[Any]) -> Table:
    from rich.table import Table

    from edge.rules.alarms import Transition
    from edge.rules.recorded import format_time

    table = Table(show_lines=False, header_style="bold")
    for name in ("time", "rule", "point", "event", "state", "value", "limit", "lot", "message"):
        table.add_column(name, overflow="fold")
    for ev in events:
        if isinstance(ev, dict):  # an SPC signal
            table.add_row(
                ev["at"], ev["rule"], ev["point"], "signal",
                "(alarm already active)" if ev["alarm_active"] else "",
                f"{ev['value']:.6g}", "", "",
                "; ".join(f"Nelson {k}: {n}" for k, n in zip(ev["nelson"], ev["names"], strict=True)),
            )  # fmt: skip
        elif isinstance(ev, Transition):
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
    import orjson

    from edge.rules.alarms import Transition
    from edge.rules.recorded import format_time

    body = orjson.loads(orjson.dumps(ev, default=_json_default))
    kind = "transition" if isinstance(ev, Transition) else "lot"
    return orjson.dumps({"type": kind, "at": format_time(ev.ts), **body})


@rules.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Recorded readings, CSV: ts,point,value[,quality]. Without it, FILES are test files "
    "(input series and expected alarms, promtool-style).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print events as JSON lines, with every SPC rule signal (type 'signal').",
)
@click.option(
    "--signals",
    "show_signals",
    is_flag=True,
    help="Also list every SPC rule signal in the table, those during an active alarm too.",
)
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
    data_path: Path | None,
    as_json: bool,
    show_signals: bool,
    expect_path: Path | None,
    update: bool,
    until_text: str | None,
    config_path: Path | None,
) -> None:
    """Replay --data through rule FILES and print every alarm, or run test FILES (no --data).

    Test files hold input series and expected alarms (promtool-style); a missing or an
    unexpected alarm fails the test, printed as a diff, and the command exits 1.

    The CSV has rows ts,point,value[,quality]; ts is ISO-8601 (UTC if no offset) or epoch
    seconds. The engine's clock follows the CSV's timestamps.

    \b
    Examples:
      edge rules test examples/rules/tunnel.yaml --data recorded.csv
      edge rules test tunnel.yaml --data recorded.csv --expect expected.yaml [--update]
      edge rules test tests/rules/inline/tunnel_test.yaml
    """  # noqa: D301
    import orjson
    from rich.console import Console

    from edge.errors import ConfigError, EdgeError
    from edge.rules import timeline
    from edge.rules.recorded import parse_time

    if data_path is None:
        if expect_path is not None or until_text is not None:
            raise click.UsageError("--expect and --until go with --data (test files set their own)")
        _run_test_files(files, config_path, as_json)
        return
    if update and expect_path is None:
        raise click.UsageError("--update needs --expect FILE (the timeline to rewrite)")
    ruleset = _load(files, config_path, as_json)
    readings = _readings(data_path, ruleset, as_json)
    until = None
    if until_text is not None:
        try:
            until = parse_time(until_text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--until") from None
    signals: list[tuple[float, dict[str, Any]]] = []
    try:
        events = run_replay(ruleset, readings, until, signals)
    except EdgeError as exc:
        _fail([f"{data_path}: {exc}"], as_json)
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
        for item in _merged(events, signals):
            click.echo(item if isinstance(item, bytes) else orjson.dumps(item))
        return
    if not events and not (show_signals and signals):
        click.echo(f"no events ({len(readings)} readings replayed)")
        return
    shown = _merged(events, signals if show_signals else [], raw=True)
    Console(width=160).print(_events_table(shown))
    extra = f" and {len(signals)} SPC signals" if show_signals else ""
    click.echo(f"{len(events)} events{extra} from {len(readings)} readings")


def _merged(
    events: Sequence[Any], signals: Sequence[tuple[float, dict[str, Any]]], raw: bool = False
) -> list[Any]:
    """Events and signals in time order; a signal before the transition it caused."""
    keyed: list[tuple[float, int, int, Any]] = [
        (t, 0, i, entry) for i, (t, entry) in enumerate(signals)
    ]
    keyed += [(ev.ts, 1, i, ev if raw else _json_line(ev)) for i, ev in enumerate(events)]
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    return [item for *_, item in keyed]


def _run_test_files(files: Sequence[Path], config_path: Path | None, as_json: bool) -> None:
    """``edge rules test TESTFILE...``: run every inline test, print results, exit 1 on failure."""
    import orjson

    from edge.rules.inline_tests import load_suite, load_tests, run_test

    failed = total = 0
    problems: list[str] = []
    for path in files:
        rule_files = load_tests(path)[0]
        points = _known_points(config_path, [*rule_files, path], as_json)
        if points.warning and not as_json:
            click.echo(f"warning: {points.warning}", err=True)
        ruleset, tests, found = load_suite(path, points.known)
        if found or ruleset is None:
            problems += [str(p) for p in found]
            continue
        for case in tests:
            result = run_test(ruleset, case, run_replay)
            total += 1
            failed += not result.passed
            where = f"{case.file}:{case.line}"
            if as_json:
                click.echo(
                    orjson.dumps(
                        {
                            "type": "test",
                            "file": case.file,
                            "line": case.line,
                            "name": case.name,
                            "passed": result.passed,
                            "diff": list(result.diff),
                            "actual": list(result.actual),
                        }
                    )
                )
            elif result.passed:
                click.echo(f"ok      {where}: {case.name}")
            else:
                click.echo(f"FAILED  {where}: {case.name}")
                click.echo("        expected alarms (-) missing, actual (+) not expected:")
                for line in result.diff:
                    click.echo(f"          {line}")
    if problems:
        _fail(problems, as_json, "bad test files")
    if not as_json:
        click.echo(f"{total} test(s), {failed} failed", err=bool(failed))
    sys.exit(1 if failed else 0)


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
    from edge.errors import EdgeError
    from edge.rules.explain import explain
    from edge.rules.expressions import did_you_mean
    from edge.rules.recorded import parse_time

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
