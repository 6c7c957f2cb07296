"""No dangling references, a licence, and no runtime dependency that nothing uses."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PACKAGE = [
    ROOT / d for d in ("edge", "drivers", "rules", "ledger", "firmware-sim", "office", "sync")
]
#: top-level entries a backticked path in the docs may start with
REPO_DIRS = ("edge", "drivers", "rules", "ledger", "firmware-sim", "office", "sync", "tests", "tools", "examples",
             "docs")  # fmt: skip
PATHLIKE = re.compile(rf"^(?:{'|'.join(map(re.escape, REPO_DIRS))})/[\w./-]*$")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    out: set[str] = set()
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"^#+ (.*)$", line)):
            base = slug(m.group(1))
            n, name = 0, base
            while name in out:
                n += 1
                name = f"{base}-{n}"
            out.add(name)
    return out


def prose(path: Path) -> list[tuple[int, str]]:
    """Lines outside fenced blocks, numbered."""
    out, fence = [], False
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
        elif not fence:
            out.append((i, line))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(doc: Path) -> None:
    bad = []
    for n, line in prose(doc):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (doc.parent / file).resolve() if file else doc
            if not dest.exists():
                bad.append(f"{doc.relative_to(ROOT)}:{n}: link to {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{doc.relative_to(ROOT)}:{n}: link to {target}: no such heading")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_backticked_repository_paths_exist(doc: Path) -> None:
    bad = []
    for n, line in prose(doc):
        for token in re.findall(r"`([^`\s]+)`", line):
            if PATHLIKE.match(token) and not (ROOT / token.rstrip("/")).exists():
                bad.append(f"{doc.relative_to(ROOT)}:{n}: `{token}` is not in the repository")
    assert not bad, "\n".join(bad)


def test_no_reference_to_a_missing_design_file() -> None:
    """The design document is docs/design.md; 'DESIGN.md' named a file the repository lacks."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    here = Path(__file__).relative_to(ROOT).as_posix()
    hits = []
    for name in files:
        path = ROOT / name
        if name == here or path.suffix not in {".py", ".md", ".toml", ".txt", ".yaml", ""}:
            continue
        if not path.is_file():
            continue
        for n, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        ):
            if "DESIGN.md" in line:
                hits.append(f"{name}:{n}")
    assert not hits, f"'DESIGN.md' does not exist; point these at docs/design.md: {hits}"


def test_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text.splitlines()[0] + text[:200]
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"


def imported_modules() -> set[str]:
    names: set[str] = set()
    for folder in PACKAGE:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names


def runtime_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0] for dep in project["dependencies"]]


def _params() -> list[object]:
    out: list[object] = []
    for dist in runtime_dependencies():
        out.append(pytest.param(dist, id=dist))
    return out


@pytest.mark.parametrize("dist", _params())
def test_runtime_dependency_is_imported(dist: str) -> None:
    def norm(name: str) -> str:  # PEP 503: prometheus-client is the dist prometheus_client
        return re.sub(r"[-_.]+", "-", name).lower()

    modules = {m for m, dists in packages_distributions().items()
               if norm(dist) in (norm(d) for d in dists)}  # fmt: skip
    assert modules, f"{dist} is not installed: run make venv"
    assert modules & imported_modules(), (
        f"pyproject.toml declares {dist} (import {', '.join(sorted(modules))}) but no module of "
        "the package imports it: use it or remove it from [project] dependencies"
    )


def test_file_references_in_code_and_config_exist() -> None:
    """Comments and docstrings that send a reader to a file name one that exists."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    pattern = re.compile(
        r"(?<![\w/.-])((?:docs|tools|examples|drivers|ledger|firmware-sim|sync|tests)/[\w./-]+"
        r"\.(?:md|py|toml|yaml))\b"
        # a path of the installed layout (the firmware_sim folder under edge) is not where a reader
        # of the repository finds it; MQTT topics are not files; quoted names are wheel members
        r"|(?<![\w/.\"-])(edge/(?:cli|demo|templates|drivers|rules|ledger|firmware_sim)/[\w./-]*)"
    )
    bad = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".toml", ".md", ".yaml"} and path.name != "Makefile":
            continue
        if not path.is_file():
            continue
        for n, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        ):
            for groups in pattern.findall(line):
                ref = next(g for g in groups if g)
                if not (ROOT / ref).exists():
                    bad.append(f"{name}:{n}: {ref}")
    assert not bad, f"references to files that do not exist: {bad}"


def test_gateway_paths_and_unit_name_are_those_edge_init_writes() -> None:
    """The guides send a reader to one gateway layout: the unit and directories of ``edge init``
    as the install guide uses them (a guide once said /var/lib/edge and 'systemctl reload edge',
    paths and a unit no installed gateway has)."""
    unit = "edge-qc"
    assert (ROOT / "edge" / "templates" / f"{unit}.service").is_file()
    bad = []
    for doc in DOCS:
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            names = re.findall(r"journalctl -u ([\w@.-]+)", line) + [
                m.group(1)
                for m in re.finditer(
                    r"systemctl (?:--?[\w-]+ )*(?:start|stop|reload|restart|status|enable|disable)"
                    r"(?: --?[\w-]+)* ([\w@.-]+)",
                    line,
                )
            ]
            for name in names:
                if name.removesuffix(".service") not in (unit, "mosquitto"):
                    bad.append(f"{doc.relative_to(ROOT)}:{n}: unit {name}")
            for path in re.findall(r"(/(?:var/lib|etc)/edge[\w-]*)", line):
                if path != f"/var/lib/{unit}" and path != f"/etc/{unit}":
                    bad.append(f"{doc.relative_to(ROOT)}:{n}: {path}")
    assert not bad, f"not the layout edge init and the install guide use: {bad}"
