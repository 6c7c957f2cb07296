"""Every example in the docs marked runnable is run, so the docs cannot show what fails.

Markers, on the line before a fenced block:

- ``<!-- run -->`` before a ```sh block: the block runs with ``bash -e`` in a scratch
  directory holding a copy of ``examples/``, with this venv's ``edge`` on PATH; it must exit 0.
- ``<!-- run -->`` before a ```console block: each ``$ command`` runs as above and its output
  must be the lines shown under it (a last shown line ``...`` accepts anything after).
- ``<!-- run -->`` before a ```python block: the block runs as a script in the scratch
  directory with this interpreter; it must exit 0.
- ``<!-- run: sim=SCENARIO -->``: as ``<!-- run -->``, with ``edge sim run SCENARIO
  --run-dir sim --no-line-timing`` serving in the scratch directory (``sim/<bus>.tty``).
- ``<!-- file: PATH -->`` before any block: the block is the repository file PATH, verbatim.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKER = re.compile(r"^<!-- (run(?::\s*sim=(?P<sim>[\w-]+))?|file:\s*(?P<file>\S+)) -->$")


@dataclass(frozen=True)
class Example:
    doc: Path
    line: int  #: line of the opening fence, 1-based
    lang: str
    text: str
    sim: str | None
    file: str | None

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    found = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = MARKER.match(line.strip())
            if not m or i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
                continue
            lang = lines[i + 1][3:].strip()
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            found.append(
                Example(doc, i + 2, lang, "\n".join(lines[i + 2 : end]) + "\n",
                        m.group("sim"), m.group("file"))
            )  # fmt: skip
    return found


ALL = examples()


def test_the_docs_have_runnable_examples() -> None:
    langs = {e.lang for e in ALL if e.file is None}
    assert {"sh", "console", "python"} <= langs, f"runnable examples found only in: {langs}"


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e['PATH']}"
    e["COLUMNS"] = "100"
    e.pop("EDGE_LEDGER_DB", None)
    return e


def start_sim(scenario: str, cwd: Path) -> subprocess.Popen[bytes]:
    log = cwd / "sim.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "sim", "run", scenario, "--run-dir", "sim",
             "--no-line-timing"],
            cwd=cwd, env=env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (cwd / "sim" / "ports.json").exists():
        assert proc.poll() is None, f"edge sim run {scenario} ended: {log.read_text()}"
        assert time.monotonic() < deadline, "the simulator did not write sim/ports.json"
        time.sleep(0.05)
    return proc


def run(example: Example, cwd: Path) -> None:
    where = f"{example.id} ({example.lang} block)"
    if example.lang == "python":
        script = cwd / "example.py"
        script.write_text(example.text, encoding="utf-8")
        done = subprocess.run([sys.executable, str(script)], cwd=cwd, env=env(),
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, f"{where} failed:\n{done.stdout}{done.stderr}"
    elif example.lang == "sh":
        done = subprocess.run(["bash", "-e", "-c", example.text], cwd=cwd, env=env(),
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, f"{where} failed:\n{done.stdout}{done.stderr}"
    elif example.lang == "console":
        for command, expected in console_steps(example.text):
            # one pipe for both streams, so lines keep the order a terminal shows them in
            done = subprocess.run(
                ["bash", "-c", command], cwd=cwd, env=env(), stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, timeout=120,
            )  # fmt: skip
            shown = done.stdout.rstrip("\n").splitlines()
            if expected and expected[-1] == "...":
                shown = [*shown[: len(expected) - 1], "..."]
            assert shown == expected, (
                f"{where}: `$ {command}` printed\n" + "\n".join(shown)
                + "\nbut the docs show\n" + "\n".join(expected)
                + "\nUpdate the block (or the code)."
            )  # fmt: skip
    else:
        pytest.fail(f"{where}: cannot run a {example.lang!r} block; mark sh, console or python")


def console_steps(text: str) -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    for line in text.rstrip("\n").splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    for _, expected in steps:  # a blank line between one command's output and the next $
        while expected and not expected[-1].strip():
            expected.pop()
    return steps


@pytest.mark.parametrize("example", [e for e in ALL if e.file is None], ids=lambda e: e.id)
def test_runnable_example(example: Example, scratch: Path) -> None:
    sim = start_sim(example.sim, scratch) if example.sim else None
    try:
        run(example, scratch)
    finally:
        if sim is not None:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=10)


@pytest.mark.parametrize("example", [e for e in ALL if e.file], ids=lambda e: e.id)
def test_file_example_is_verbatim(example: Example) -> None:
    assert example.file is not None
    path = ROOT / example.file
    assert path.is_file(), f"{example.id}: <!-- file: {example.file} --> names no file"
    assert example.text == path.read_text(encoding="utf-8"), (
        f"{example.id}: the block differs from {example.file}; copy the file into the block"
    )
