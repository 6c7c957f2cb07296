"""EDGE_FAILPOINTS: a named point kills the process at its N-th hit; a typo is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edge import failpoints
from edge.errors import ConfigError
from edge.failpoints import POINTS, FailpointError, parse

_CHILD = """
from edge import failpoints
failpoints.check()
for i in range(5):
    failpoints.hit("batch.cut")
    failpoints.hit("engine.stepped")
    print(i, flush=True)
"""


def _run(spec: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(failpoints.ENV, None)
    if spec is not None:
        env[failpoints.ENV] = spec
    return subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=60
    )


def test_parse_names_and_counts() -> None:
    assert parse("batch.cut, engine.stepped:3,") == {"batch.cut": 1, "engine.stepped": 3}
    assert parse("") == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("batch.cutt", "EDGE_FAILPOINTS: unknown failpoint 'batch.cutt'"),
        ("batch.cut:0", "EDGE_FAILPOINTS: 'batch.cut:0': the count must be a positive integer"),
        ("batch.cut:x", "EDGE_FAILPOINTS: 'batch.cut:x': the count must be a positive integer"),
    ],
)
def test_a_bad_spec_is_one_config_error(spec: str, message: str) -> None:
    with pytest.raises(FailpointError) as info:
        parse(spec)
    assert isinstance(info.value, ConfigError)
    assert str(info.value) == message


def test_the_nth_hit_kills_the_process() -> None:
    result = _run("engine.stepped:3")
    assert result.returncode == -9
    assert result.stdout.split() == ["0", "1"]  # died at the third hit, before printing 2


def test_unset_nothing_dies() -> None:
    result = _run(None)
    assert result.returncode == 0
    assert result.stdout.split() == ["0", "1", "2", "3", "4"]


def test_a_typo_stops_the_process_with_one_line() -> None:
    result = _run("batch.cutt")
    assert result.returncode != 0
    assert "unknown failpoint 'batch.cutt'" in result.stderr


def test_every_point_is_documented() -> None:
    assert all(text for text in POINTS.values())
