"""``edge sim run`` and ``edge sim list``: the simulated factory line (firmware-sim)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from edge.errors import EdgeError


def _fail(exc: EdgeError) -> None:
    """Print an edge error as plain lines (never a traceback) and exit 1."""
    for line in str(exc).splitlines():
        click.echo(f"edge: {line}", err=True)
    sys.exit(1)


@click.group()
def sim() -> None:
    """Simulated sensor firmware: Modbus RTU on PTYs, Modbus TCP, serial-line devices."""


@sim.command("run")
@click.argument("scenario")
@click.option(
    "--seed", default=0, show_default=True, help="Seed of every process model and fault draw."
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where <bus>.tty links and ports.json go (default: ./sim-<scenario>).",
)
@click.option(
    "--no-line-timing", is_flag=True, help="Answer at once instead of at RS-485 wire speed."
)
@click.option("--tcp-port", "tcp_ports", multiple=True, metavar="BUS=PORT",
              help="Serve a tcp bus on a fixed loopback port (repeatable), e.g. plc=5020.")  # fmt: skip
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this long (default: run until SIGINT/SIGTERM).")  # fmt: skip
def run(
    scenario: str,
    seed: int,
    run_dir: Path | None,
    no_line_timing: bool,
    tcp_ports: tuple[str, ...],
    seconds: float | None,
) -> None:
    """Run SCENARIO (a shipped name or a .yaml path) until stopped.

    Prints the serial links and TCP ports it serves and writes them to <run-dir>/ports.json.
    """
    from edge.firmware_sim import Simulator, load_scenario

    try:
        loaded = load_scenario(scenario)
    except EdgeError as exc:
        _fail(exc)
    directory = run_dir if run_dir is not None else Path(f"sim-{loaded.name}")
    fixed: dict[str, int] = {}
    for item in tcp_ports:
        bus, _, port = item.partition("=")
        if bus not in loaded.buses or loaded.buses[bus].kind != "tcp":
            tcp = [b for b, spec in loaded.buses.items() if spec.kind == "tcp"]
            _fail(
                EdgeError(
                    f"--tcp-port {item}: no tcp bus {bus!r} (tcp buses: {', '.join(tcp) or 'none'})"
                )
            )
        if not port.isdigit() or not 0 < int(port) < 65536:
            _fail(EdgeError(f"--tcp-port {item}: expected BUS=PORT with a port 1..65535"))
        fixed[bus] = int(port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        async with Simulator(
            loaded, directory, seed=seed, line_timing=not no_line_timing, tcp_ports=fixed
        ) as simulator:
            click.echo(
                f"scenario {loaded.name} (seed {seed}), line timing {'off' if no_line_timing else 'on'}"
            )
            for bus, path in simulator.serial_paths.items():
                b = loaded.buses[bus]
                units = ", ".join(
                    f"{n}" + (f" unit {d.unit}" if d.kind == "modbus" else f" ({d.kind})")
                    for n, d in loaded.devices.items()
                    if d.bus == bus
                )
                framing = f"{b.baudrate} {b.bytesize}{b.parity}{b.stopbits}"
                click.echo(f"  {bus:<16} {b.kind:<4} {path} {framing}  {units}")
            for bus, (host, port) in simulator.tcp_endpoints.items():
                units = ", ".join(
                    f"{n} unit {d.unit}" for n, d in loaded.devices.items() if d.bus == bus
                )
                click.echo(f"  {bus:<16} tcp  {host}:{port}  {units}")
            click.echo(f"ports: {simulator.ports_file}")
            sys.stdout.flush()
            try:
                async with asyncio.timeout(seconds):
                    await stop.wait()
            except TimeoutError:
                pass

    try:
        asyncio.run(main())
    except EdgeError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(EdgeError(f"{directory}: {exc.strerror or exc}"))


@sim.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON object: name -> description.")
def list_(as_json: bool) -> None:
    """List the shipped scenarios."""
    from edge.cli.output import dump_json
    from edge.firmware_sim import list_scenarios

    scenarios = list_scenarios()
    if as_json:
        click.echo(dump_json(scenarios, indent=True))
        return
    for name, description in scenarios.items():
        click.echo(f"{name:<12} {description}")


COMMANDS: list[click.Command] = [sim]
