"""``edge readings summaries``: the per-minute and per-hour summaries of a real ledger file, after
its raw readings were pruned, checked against Python's ``statistics`` over the same readings."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import statistics
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edge.cli import main
from edge.ledger import Ledger, NodeKey
from edge.readings import Quality, Reading

T0 = 1_795_428_000.0  # 2026-11-23T10:00:00Z, on an hour


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _readings() -> list[Reading]:
    """Three hours of two points, irregular values; a bad reading that must not count."""
    out = []
    for i in range(3 * 360):  # every 10 s
        ts = T0 + i * 10
        out.append(Reading("temp", ts, 4.0 + ((i * 7919) % 101) / 37.0))
        out.append(Reading("fill", ts + 0.5, 500.0 + ((i * 104729) % 53) / 1000.0))
    out.append(Reading("temp", T0 + 5, 999.0, quality=Quality.STALE))
    return out


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sum") / "ledger.db"
    led = Ledger.open(path, NodeKey.generate())
    readings = _readings()
    for n in range(0, len(readings), 500):
        led.append_readings(readings[n : n + 500])
    led.commit(now=T0 + 4 * 3600)
    led.prune_readings(T0 + 4 * 3600, actor="test", comment="raw gone", now=T0 + 4 * 3600)
    led.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM reading_data").fetchone() == (0,)  # raw: gone
    conn.close()
    return path


def _expected(point: str, seconds: int) -> dict[str, tuple[int, float, float, float, float]]:
    groups: dict[str, list[float]] = {}
    for r in _readings():
        if r.point == point and r.quality == Quality.GOOD:
            start = int(r.ts) - int(r.ts) % seconds
            key = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            groups.setdefault(key, []).append(float(r.value))  # type: ignore[arg-type]
    return {
        k: (len(v), min(v), max(v), statistics.fmean(v), statistics.stdev(v))
        for k, v in groups.items()
    }


def test_hour_summaries_as_csv_match_the_raw_readings(db: Path) -> None:
    result = invoke("readings", "summaries", "--db", str(db), "--point", "temp")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["point", "start", "count", "min", "max", "mean", "std"]
    expected = _expected("temp", 3600)
    assert [r[1] for r in rows[1:]] == sorted(expected)
    for point, start, count, lo, hi, mean, std in rows[1:]:
        n, emin, emax, emean, estd = expected[start]
        assert point == "temp"
        assert int(count) == n == 360
        assert (float(lo), float(hi)) == (emin, emax)
        assert float(mean) == pytest.approx(emean, rel=1e-12)
        assert float(std) == pytest.approx(estd, rel=1e-9)
    assert "exported 3 hour summaries to stdout" in result.stderr


def test_minute_summaries_as_json_in_a_window(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    result = invoke(
        "readings", "summaries", "--db", str(db), "--per", "minute", "--format", "json",
        "--since", "2026-11-23T10:30:00Z", "--until", "2026-11-23T10:40:00Z", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert {r["point"] for r in rows} == {"temp", "fill"}
    assert len(rows) == 2 * 10  # ten minutes of each point, periods starting in the window
    fill = _expected("fill", 60)
    for r in rows:
        if r["point"] == "fill":
            n, emin, emax, emean, estd = fill[r["start"]]
            assert (r["count"], r["min"], r["max"]) == (n, emin, emax)
            assert r["mean"] == pytest.approx(emean, rel=1e-12)
            # 500 g +- 0.05 g: where a sum of squares would cancel, the stored m2 does not
            assert r["std"] == pytest.approx(estd, rel=1e-6)


def test_errors_are_one_line_and_exit_non_zero(db: Path, tmp_path: Path) -> None:
    none = invoke("readings", "summaries", "--db", str(db), "--point", "nosuch")
    assert none.exit_code == 1
    assert "edge: no hour summaries matched" in none.stderr
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    bad = invoke("readings", "summaries", "--db", str(other))
    assert bad.exit_code == 1
    assert bad.stderr.strip() == f"edge: {other}: not an edge ledger database (no readings table)"
    missing = invoke("readings", "summaries", "--db", str(tmp_path / "missing.db"))
    assert missing.exit_code == 1
    assert "no such file" in missing.stderr
    assert "Traceback" not in missing.output
    when = invoke("readings", "summaries", "--db", str(db), "--since", "yesterday-ish")
    assert when.exit_code == 2
    assert "--since" in when.stderr
    per = invoke("readings", "summaries", "--db", str(db), "--per", "day")
    assert per.exit_code == 2
    unwritable = invoke(
        "readings", "summaries", "--db", str(db), "--out", str(tmp_path / "no" / "x")
    )
    assert unwritable.exit_code == 1
    assert "cannot write" in unwritable.stderr


def test_json_summary_on_stdout(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "h.csv"
    result = invoke("readings", "summaries", "--db", str(db), "--json", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ok": True, "summaries": 6, "per": "hour", "out": str(out)}
    assert len(out.read_text().splitlines()) == 1 + 6  # two points, three hours
    none = invoke(
        "readings", "summaries", "--db", str(db), "--point", "x", "--json", "--out", str(out)
    )
    assert none.exit_code == 1
    assert json.loads(none.stdout)["ok"] is False
    bad = invoke(
        "readings", "summaries", "--db", str(tmp_path / "missing.db"), "--json", "--out", str(out)
    )
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["ok"] is False
    assert invoke("readings", "summaries", "--db", str(db), "--json").exit_code == 2


def test_times_before_year_1000_and_out_of_range(db: Path) -> None:
    """A year before 1000 is a window like any other; a time Python cannot hold, one line.

    glibc's ``%Y`` wrote year 999 as '999-01-01', which is not the fixed-width form: the window
    went to a traceback here (and compared wrongly as text in ``edge ledger query``).
    """
    old = invoke("readings", "summaries", "--db", str(db), "--since", "0999-01-01")
    assert old.exit_code == 0, old.output
    assert "exported 6 hour summaries" in old.stderr
    for option, text in (("--since", "0001-01-01T00:00+01:00"), ("--until", "9999999d")):
        far = invoke("readings", "summaries", "--db", str(db), option, text)
        assert far.exit_code == 2, far.output
        assert far.stderr.strip().splitlines() == [
            f"edge: {option}: {text!r} is out of range (a time in the years 1 to 9999, UTC)"
        ]
