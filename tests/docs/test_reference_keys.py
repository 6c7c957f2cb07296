"""The reference documents exactly what the code accepts and writes, no more, no less.

Each list comes from one place in the code: node.toml keys from ``edge.config.KEYS``, rule-file
keys from ``edge.rules.loader.FILE_KEYS`` / ``COMMON_KEYS`` and ``edge.rules.kinds.KIND_KEYS``,
entry types from ``edge.ledger.ENTRY_TYPES`` (itself checked against the types the code appends).
A failure says which key to document, or to remove from the docs, and where.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from edge.config import KEYS
from edge.ledger import ENTRY_TYPES
from edge.rules.kinds import KIND_KEYS
from edge.rules.loader import COMMON_KEYS, FILE_KEYS

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"


def sections(path: Path, level: int) -> dict[str, list[str]]:
    """Heading text -> the lines under it (up to the next heading of this level or higher)."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^(#+) (.*)$", line)
        if m and len(m.group(1)) <= level:
            current = out.setdefault(m.group(2).strip(), []) if len(m.group(1)) == level else None
            continue
        if current is not None:
            current.append(line)
    return out


def table_keys(lines: list[str]) -> set[str]:
    """The backticked names in the first column of the Markdown tables in ``lines``."""
    keys: set[str] = set()
    for line in lines:
        if not line.startswith("|") or line.startswith("|---"):
            continue
        first = line.split("|")[1]
        keys.update(re.findall(r"`([^`]+)`", first))
    return keys


def diff_message(what: str, code: set[str], docs: set[str], where: str, how: str) -> str:
    parts = []
    if code - docs:
        parts.append(
            f"{what} in the code but not in {where}: {', '.join(sorted(code - docs))}. {how}"
        )
    if docs - code:
        parts.append(
            f"{what} documented in {where} but not in the code: {', '.join(sorted(docs - code))}."
            " Remove those rows (or restore the key in the code)."
        )
    return "\n".join(parts)


# --- node.toml -----------------------------------------------------------------------------


def config_tables() -> dict[str, set[str]]:
    """Documented keys by table, from headings '## `[table]` ...' in node-config.md."""
    out: dict[str, set[str]] = {}
    for heading, lines in sections(REFERENCE / "node-config.md", 2).items():
        m = re.match(r"^`\[([^\]]+)\]`", heading)
        if m:
            out[m.group(1)] = table_keys(lines)
    return out


def test_every_config_table_is_documented() -> None:
    code = set(KEYS[""])
    docs = {table.split(".")[0] for table in config_tables()}
    assert code == docs, diff_message(
        "node.toml tables",
        code,
        docs,
        "docs/reference/node-config.md",
        "Add a section '## `[table]`' (or '## `[table.<name>]`') with a key table.",
    )


@pytest.mark.parametrize("table", [t for t in KEYS if t])
def test_config_keys_match_reference(table: str) -> None:
    docs = config_tables().get(table)
    assert docs is not None, (
        f"docs/reference/node-config.md has no section '## `[{table}]`' for the keys of "
        f"[{table}] in edge/config.py KEYS"
    )
    assert set(KEYS[table]) == docs, diff_message(
        f"[{table}] keys",
        set(KEYS[table]),
        docs,
        f"the table under '## `[{table}]`' in docs/reference/node-config.md",
        "Add a row '| `key` | type | default | meaning |' for each.",
    )


# --- rule files ----------------------------------------------------------------------------


def test_rule_file_keys_match_reference() -> None:
    docs = table_keys(sections(REFERENCE / "rules.md", 2)["File structure"])
    assert set(FILE_KEYS) == docs, diff_message(
        "rule-file top-level keys",
        set(FILE_KEYS),
        docs,
        "the table under '## File structure' in docs/reference/rules.md",
        "Add a row '| `key` | required | meaning |' for each.",
    )


def test_common_rule_keys_match_reference() -> None:
    docs = table_keys(sections(REFERENCE / "rules.md", 2)["Common keys of every rule"])
    assert set(COMMON_KEYS) == docs, diff_message(
        "keys common to every rule",
        set(COMMON_KEYS),
        docs,
        "the table under '## Common keys of every rule' in docs/reference/rules.md",
        "Add a row '| `key` | type | default | meaning |' for each.",
    )


def kind_sections() -> dict[str, set[str]]:
    out = {}
    for heading, lines in sections(REFERENCE / "rules.md", 3).items():
        m = re.match(r"^`(\w+)` — ", heading)
        if m:
            out[m.group(1)] = table_keys(lines)
    return out


def test_every_rule_kind_is_documented() -> None:
    code, docs = set(KIND_KEYS), set(kind_sections())
    assert code == docs, diff_message(
        "rule kinds",
        code,
        docs,
        "docs/reference/rules.md",
        "Add a section '### `kind` — what it checks' under '## Kinds' with a key table.",
    )


@pytest.mark.parametrize("kind", list(KIND_KEYS))
def test_rule_kind_keys_match_reference(kind: str) -> None:
    docs = kind_sections().get(kind, set())
    assert set(KIND_KEYS[kind]) == docs, diff_message(
        f"keys of {kind} rules",
        set(KIND_KEYS[kind]),
        docs,
        f"the table under '### `{kind}` — ...' in docs/reference/rules.md",
        "Add a row '| `key` | meaning |' for each.",
    )


# --- ledger entry types --------------------------------------------------------------------


def test_entry_types_match_reference() -> None:
    docs = table_keys(sections(REFERENCE / "ledger.md", 2)["Entry types and bodies"])
    assert set(ENTRY_TYPES) == docs, diff_message(
        "ledger entry types",
        set(ENTRY_TYPES),
        docs,
        "the table under '## Entry types and bodies' in docs/reference/ledger.md",
        "Add a row '| `type` | body | lots | actor |' for each.",
    )


SOURCES = [ROOT / d for d in ("edge", "drivers", "rules", "ledger", "firmware-sim", "office")]


def _constants(node: ast.AST) -> set[str]:
    """The string values an expression can take: a constant, or either branch of ``a if c else b``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _constants(node.body) | _constants(node.orelse)
    return set()


def appended_types() -> dict[str, str]:
    """Entry types the code writes: first arguments of ``x.append(type, body, ...)`` calls (a
    ledger append takes at least two arguments, a list's one; likewise ``append_now`` and
    ``EntryArgs``), the values of ``_OPERATOR_TYPES`` and the default of
    ``_OPERATOR_TYPES.get``; type -> where."""
    found: dict[str, str] = {}
    for folder in SOURCES:
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                if (
                    isinstance(node, ast.Call)
                    and (
                        # x.append(type, body) / x.append_now(type, body), and the runtime's
                        # EntryArgs(type, body, ts) handed to LedgerBridge.append_now
                        (
                            isinstance(node.func, ast.Attribute)
                            and node.func.attr in ("append", "append_now")
                        )
                        or (isinstance(node.func, ast.Name) and node.func.id == "EntryArgs")
                    )
                    and len(node.args) >= 2
                ):
                    for value in _constants(node.args[0]):
                        found.setdefault(value, where)
                if (  # _OPERATOR_TYPES.get(event, "alarm"): the type of every other transition
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "_OPERATOR_TYPES"
                    and len(node.args) == 2
                ):
                    for value in _constants(node.args[1]):
                        found.setdefault(value, where)
                if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "_OPERATOR_TYPES" for t in node.targets
                ):
                    assert isinstance(node.value, ast.Dict)
                    for v in node.value.values:
                        found.update(dict.fromkeys(_constants(v), where))
    return found


def test_entry_types_written_by_the_code_are_declared() -> None:
    written = appended_types()
    assert {"node.start", "alarm", "alarm.ack", "readings.digest"} <= set(written), (
        "the scan of ledger appends found too little: has the append call changed shape?"
    )
    undeclared = {t: w for t, w in written.items() if t not in ENTRY_TYPES}
    assert not undeclared, (
        "entry types appended but missing from ENTRY_TYPES in ledger/entry.py (add them there "
        f"and to the table in docs/reference/ledger.md): {undeclared}"
    )
    unwritten = set(ENTRY_TYPES) - set(written) - {"checkpoint"}
    assert not unwritten, (
        f"ENTRY_TYPES lists types nothing appends: {sorted(unwritten)}; remove them from "
        "ledger/entry.py and docs/reference/ledger.md"
    )


# --- operator commands ---------------------------------------------------------------------


def test_operator_actions_match_reference() -> None:
    from edge.commands import ACTIONS

    lines = sections(REFERENCE / "mqtt.md", 2)["Operator actions on a running node"]
    docs = table_keys(lines)
    assert set(ACTIONS) == docs, diff_message(
        "operator actions",
        set(ACTIONS),
        docs,
        "the action table under '## Operator actions on a running node' in docs/reference/mqtt.md",
        "Add a row '| `action` | needs rule | needs actor | does |' for each.",
    )
