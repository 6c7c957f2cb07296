"""The [sync] table and sync's health source."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import SyncConfig, parse_config
from edge.errors import ConfigError
from edge.sync.metrics import sync_source
from edge.sync.stats import SyncStats


def test_sync_table_is_read_with_paths_against_the_config(tmp_path: Path) -> None:
    text = (
        '[node]\nid = "hub"\n[sync]\nhost = "broker"\nport = 8883\nca_file = "pki/ca.crt"\n'
        'request_timeout = "3s"\nbatch_max = 500\n'
    )
    cfg = parse_config(text, tmp_path / "node.toml").sync
    assert cfg is not None
    assert (cfg.host, cfg.port, cfg.batch_max, cfg.request_timeout) == ("broker", 8883, 500, 3.0)
    assert cfg.ca_file == tmp_path.resolve() / "pki" / "ca.crt"
    assert cfg.prefix == SyncConfig().prefix
    assert parse_config('[node]\nid = "x"\n', tmp_path / "n.toml").sync is None


def test_bad_sync_values_are_one_line_each(tmp_path: Path) -> None:
    text = '[node]\nid = "hub"\n[sync]\nprefix = "a/#"\nin_flight = 0\nbogus = 1\n'
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path / "node.toml")
    lines = err.value.problems
    assert any("sync.prefix" in line and "topic prefix" in line for line in lines)
    assert any(":5: sync.in_flight" in line for line in lines)
    assert any("sync.bogus: unknown key" in line for line in lines)


def test_health_source_reads_counters_and_lag() -> None:
    stats = SyncStats()
    stats.inc("rejected.wrong feed", 2)
    stats.feeds["ab" * 32] = (10, 25)
    stats.connected = True
    metrics = {m.name: m for m in sync_source(stats)(0.0)}
    assert metrics["edge_sync_connected"].samples[0].value == 1.0
    (ev,) = metrics["edge_sync_events_total"].samples
    assert (dict(ev.labels), ev.value) == ({"event": "rejected.wrong_feed"}, 2.0)
    (lag,) = metrics["edge_sync_feed_lag_entries"].samples
    assert lag.value == 15.0
