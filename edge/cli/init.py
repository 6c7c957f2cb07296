"""``edge init``: scaffold a gateway's node config, first rule, signing key and systemd unit."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from edge.cli.output import dump_json, fail

# The templates, the key code and the crypto library are imported where they are used:
# `edge --help` stays fast (edge/cli/__init__.py).

UNIT_NAME = "edge-qc.service"
_NODE_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True, slots=True)
class Scaffold:
    """Where ``edge init`` writes each file (all absolute)."""

    config: Path
    rules: Path
    unit: Path
    data_dir: Path

    @property
    def key(self) -> Path:
        """The node's signing key (``<data_dir>/node.key``, as the node looks for it)."""
        return self.data_dir / "node.key"

    def files(self) -> list[Path]:
        """Every file written, in order; none may exist beforehand."""
        return [self.config, self.rules, self.unit, self.key, Path(f"{self.key}.pub")]


def edge_command() -> str:
    """The absolute command line that runs this very ``edge`` (for the unit's ExecStart)."""
    beside = Path(sys.executable).parent / "edge"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    found = shutil.which("edge")
    if found:
        return str(Path(found).absolute())
    return f"{Path(sys.executable).absolute()} -m edge"


def render(
    name: str, node_id: str, s: Scaffold, *, user: str = "edge", exec_start: str = ""
) -> str:
    """One template filled in for this scaffold."""
    from importlib import resources
    from string import Template

    text = (resources.files("edge.templates") / name).read_text(encoding="utf-8")
    try:
        data_dir = str(s.data_dir.relative_to(s.config.parent))
    except ValueError:
        data_dir = str(s.data_dir)
    home = ("/home", "/root", "/run/user")
    touched = [s.config, s.data_dir, Path(exec_start.split(" ")[0] or "/")]
    under_home = any(str(p).startswith(home) for p in touched)
    values = {
        "node_id": node_id,
        "config": str(s.config),
        "rules": str(s.rules),
        "unit": str(s.unit),
        # in node.toml: relative to it when inside its folder; in the unit: always absolute
        "data_dir": data_dir if name == "node.toml" else str(s.data_dir),
        "user": user,
        "exec_start": exec_start,
        # a node installed under a home directory must still see it (read-only)
        "protect_home": "read-only" if under_home else "yes",
    }
    return Template(text).substitute(values)


@click.command("init")
@click.option("--node-id", required=True, help="The node's id (letters, digits, - _ .).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True,
              help="Where node.toml, rules/ and the unit file go.")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The node's data directory (ledger, key). Default: DIR/data.")  # fmt: skip
@click.option("--user", default="edge", show_default=True,
              help="The unprivileged user the systemd unit runs the node as.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the files written as JSON.")
def init(node_id: str, directory: Path, data_dir: Path | None, user: str, as_json: bool) -> None:
    """Scaffold a node: node.toml, rules/first-rule.yaml, its signing key and a systemd unit.

    Never overwrites: when any of the files exists, nothing is written (exit 1). The output
    passes `edge config check` and `edge rules check` as written; edit the bus, device and point
    for your hardware, then install the unit (the guide: docs/guide/install.md).
    """
    if not node_id or not set(node_id) <= _NODE_ID_CHARS:
        fail(f"--node-id: {node_id!r}: use letters, digits, '-', '_' and '.'", as_json=as_json)
    base = directory.absolute()
    s = Scaffold(
        config=base / "node.toml",
        rules=base / "rules" / "first-rule.yaml",
        unit=base / UNIT_NAME,
        data_dir=(data_dir if data_dir is not None else base / "data").absolute(),
    )
    existing = [p for p in s.files() if p.exists() or p.is_symlink()]
    if existing:
        fail(f"{existing[0]}: exists; edge init never overwrites (nothing written)",
             as_json=as_json)  # fmt: skip
    exec_start = edge_command()
    texts = {
        s.config: render("node.toml", node_id, s),
        s.rules: render("first-rule.yaml", node_id, s),
        s.unit: render(UNIT_NAME, node_id, s, user=user, exec_start=exec_start),
    }
    from edge.errors import EdgeError
    from edge.ledger.keys import create_key_file

    try:
        for path, text in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="utf-8") as f:  # "x": never overwrite, even racing
                f.write(text)
        s.data_dir.mkdir(parents=True, exist_ok=True)
        key = create_key_file(s.key)
    except FileExistsError as exc:
        fail(f"{exc.filename}: exists; edge init never overwrites", as_json=as_json)
    except OSError as exc:
        fail(f"{exc.filename}: {exc.strerror}", as_json=as_json)
    except EdgeError as exc:
        fail(str(exc), as_json=as_json)
    owner = _give_data_dir_to(s.data_dir, user)
    if as_json:
        click.echo(dump_json({
            "ok": True, "node_id": node_id, "config": str(s.config), "rules": str(s.rules),
            "unit": str(s.unit), "data_dir": str(s.data_dir), "key": str(s.key),
            "feed": key.feed, "data_dir_owner": owner,
        }, indent=True))  # fmt: skip
        return
    for path in s.files():
        click.echo(f"created {path}")
    click.echo(f"feed {key.feed}")
    if owner != user:
        click.echo(
            f"next: sudo chown -R {user}: {s.data_dir}  (the node runs as {user} and must own it)"
        )
    click.echo(f"then: edge config check {s.config}")


def _give_data_dir_to(data_dir: Path, user: str) -> str:
    """Hand the data directory to the unit's user when we may (root, user exists); its owner."""
    import pwd

    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        pw = None
    if os.geteuid() == 0 and pw is not None:
        for path in [data_dir, *data_dir.rglob("*")]:
            os.chown(path, pw.pw_uid, pw.pw_gid)
    try:
        return pwd.getpwuid(data_dir.stat().st_uid).pw_name
    except KeyError:
        return str(data_dir.stat().st_uid)
