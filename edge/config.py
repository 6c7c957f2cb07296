"""The node configuration: a TOML file loaded into frozen dataclasses.

Every problem is reported as ``<file>:<line>: <key path>: <message>`` (the line of the key, or of
its table when the key is missing; no line when not even the table is written) and all of them
are collected before :class:`~edge.errors.ConfigError` is raised, so a technician fixes a file in
one pass and an editor's problem matcher jumps to each line. TOML syntax errors are
``<file>:<line>:<column>: TOML syntax: <message>``.
Relative paths (data directory, rule files, serial ports that are files) are resolved against
the directory of the config file, so a node can be started from anywhere.

This module holds the dataclasses, :data:`KEYS` and the node-specific checks (buses, devices
and points in :mod:`edge.config_devices`, re-exported here); the reading of
TOML with line positions (:func:`key_lines`, the problem-collecting reader and its value checks)
is in :mod:`edge.toml_reader`, re-exported here.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.config_devices import (
    BUS_KEYS,
    DEVICE_KEYS,
    POINT_KEYS,
    BusConfig,
    DeviceConfig,
    PointConfig,
    _bus,
    _device,
    _host_port_ok,
    _point,
)
from edge.errors import ConfigError
from edge.toml_reader import _KEY_PART as _KEY_PART
from edge.toml_reader import _TOML_NAMES as _TOML_NAMES
from edge.toml_reader import T as T
from edge.toml_reader import (
    _in_range,
    _one_of,
    _positive,
    _Reader,
    _toml_type,
    key_lines,
)
from edge.toml_reader import _key_parts as _key_parts

__all__ = [
    "KEYS",
    "BusConfig",
    "DeviceConfig",
    "LedgerConfig",
    "MetricsConfig",
    "MqttConfig",
    "NodeConfig",
    "OperatorsConfig",
    "PointConfig",
    "RulesConfig",
    "SyncConfig",
    "key_lines",
    "load_config",
    "parse_config",
]


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """Rule files loaded at start and watched for changes."""

    files: tuple[Path, ...] = ()
    reload: bool = True  #: watch the files and reload on change (also on SIGHUP)


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """How the local ledger commits."""

    #: longest a pending entry waits for its group commit, and the raw readings a kill may lose
    #: (1 s: SD-card wear and CPU measured in docs/design.md; alarms are committed at once)
    flush_interval: float = 1.0
    batch_max: int = 1000  #: most entries per commit
    readings_retention: float = 30 * 86400.0  #: raw readings older than this are pruned
    #: minute summaries older than this are deleted (hour summaries are kept for ever): ~90
    #: bytes a point a minute, ~430 MB for 40 points over the default 90 days
    minute_summary_retention: float = 90 * 86400.0
    readings_block: int = 1000  #: raw readings per digest entry on the ledger
    #: disk budget: the oldest raw blocks are pruned (recorded, warning alarm) once the stored
    #: blocks take more than this many bytes, or the file system has less than
    #: ``readings_min_free_bytes`` free; 0: no such bound
    readings_max_bytes: int = 0
    readings_min_free_bytes: int = 0
    key_file: Path | None = None  #: default: <data_dir>/node.key
    #: small commits go to the append-only commit journal (<ledger>.eqj), unsigned, and move
    #: into SQLite in bulk under one checkpoint: ~7x fewer bytes written per entry on an SD
    #: card than an SQLite transaction each (edge ledger readers ask the node to move it first);
    #: a node with [sync] pushes from the writer and signs every few entries while connected
    commit_journal: bool = True
    #: what writes the batches: a thread of the node (default; no second interpreter's
    #: memory) or a child process (its own GIL: for hubs committing tens of thousands of
    #: entries a second); docs/design.md, "The commit worker"
    commit_worker: str = "thread"


#: ``[ledger] commit_worker`` values, the default first (edge.ledger.writer_commits has the same).
COMMIT_WORKERS = ("thread", "process")


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """Where alerts (and later, sync) go. Absent: the node runs standalone."""

    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "edge"
    client_id: str = ""
    username: str = ""
    password: str = ""
    keepalive: float = 30.0
    #: points and devices (by name) whose readings are published as telemetry
    telemetry: tuple[str, ...] = ()
    telemetry_interval: float = 1.0  #: how often a telemetry batch is published, seconds
    telemetry_max_queued: int = 10_000  #: most telemetry readings waiting (oldest dropped)


#: where ``[metrics]`` listens when the table gives no ``listen`` (loopback: scraped on the gateway
#: or through an SSH tunnel; 9108 lies in the range Prometheus exporters use)
METRICS_LISTEN = "127.0.0.1:9108"


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Where the Prometheus endpoint (``/metrics``) listens. Absent: no endpoint."""

    listen: str = METRICS_LISTEN  #: host:port; keep it on loopback unless a firewall guards it

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to listen on."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Ledger replication between nodes over MQTT 5 (edge.sync; docs/reference/sync.md)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "edge-sync"  #: topics are <prefix>/v1/<node id>/...
    client_id: str = ""  #: default: sync-<node id>
    username: str = ""
    password: str = ""
    ca_file: Path | None = None  #: TLS on when set (or with cert_file)
    cert_file: Path | None = None  #: client certificate (TLS client authentication)
    key_file: Path | None = None  #: its private key
    keepalive: float = 30.0
    batch_max: int = 2000  #: most entries per entries message (live push and answers)
    request_max: int = 5000  #: most entries asked for in one range request
    in_flight: int = 4  #: range requests outstanding at once (per node)
    request_timeout: float = 10.0  #: a range request not answered by then goes to another peer
    message_max: int = 8 * 1024 * 1024  #: larger payloads are refused unread (bytes)
    announce_interval: float = 30.0  #: heads are announced on change and at least this often
    push_interval: float = 0.01  #: how often new durable entries of our feed are looked for


@dataclass(frozen=True, slots=True)
class OperatorsConfig:
    """Who may send which class of operator command (edge.commands.authorize reads the lists).

    Entries: ``"alice"`` a local user, ``"@qa"`` a local group, ``"*"`` every local user,
    ``"mqtt:bob"`` a broker user, ``"mqtt:*"`` every broker user. Root and the node's own user
    may always act on the local socket (they can write the ledger directly anyway).
    """

    read: tuple[str, ...] = ("*", "mqtt:*")  #: status (``edge alarm list``)
    act: tuple[str, ...] = ()  #: ack, shelve, unshelve, suppress, out_of_service, ...
    correct: tuple[str, ...] = ()  #: ledger corrections and operator prunes of raw readings

    def allowed(self, klass: str) -> tuple[str, ...]:
        """The list for an action class (read, act, correct)."""
        lists: dict[str, tuple[str, ...]] = {
            "read": self.read, "act": self.act, "correct": self.correct
        }  # fmt: skip
        return lists[klass]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A whole node, as read from ``node.toml``."""

    source: Path
    node_id: str
    site: str
    data_dir: Path
    queue_size: int
    buses: Mapping[str, BusConfig]
    devices: Mapping[str, DeviceConfig]
    points: Mapping[str, PointConfig]
    rules: RulesConfig = field(default_factory=RulesConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    mqtt: MqttConfig | None = None
    operators: OperatorsConfig = field(default_factory=OperatorsConfig)
    metrics: MetricsConfig | None = None
    #: the site's IANA time zone (``Europe/Berlin``) for times shown to people; "" = the machine's
    timezone: str = ""
    sync: SyncConfig | None = None

    # Where the node keeps its files: the one spelling of these paths (the names are
    # edge.ledger's DB_FILE and KEY_FILE, not imported here so that reading a config does not
    # load SQLite and the crypto library).
    @property
    def ledger_path(self) -> Path:
        """The node's ledger database, ``<data_dir>/ledger.db``."""
        return self.data_dir / "ledger.db"

    @property
    def key_path(self) -> Path:
        """The node's signing key: ``[ledger] key_file``, else ``<data_dir>/node.key``."""
        return self.ledger.key_file or self.data_dir / "node.key"

    @property
    def control_socket(self) -> Path:
        """The running node's control socket, ``<data_dir>/control.sock``."""
        return self.data_dir / "control.sock"


#: Every key node.toml accepts, by table (``<name>`` stands for any bus, device or point name):
#: the one list the reader checks files against and docs/reference/node-config.md documents.
KEYS: Mapping[str, tuple[str, ...]] = {
    "": (
        "node",
        "buses",
        "devices",
        "points",
        "rules",
        "ledger",
        "mqtt",
        "operators",
        "metrics",
        "sync",
    ),
    "node": ("id", "site", "data_dir", "queue_size", "timezone"),
    "buses.<name>": BUS_KEYS,  # every field but the name
    "devices.<name>": DEVICE_KEYS,
    "points.<name>": POINT_KEYS,
    "rules": ("files", "reload"),
    "ledger": (
        "flush_interval",
        "batch_max",
        "readings_retention",
        "minute_summary_retention",
        "readings_block",
        "readings_max_bytes",
        "readings_min_free_bytes",
        "key_file",
        "commit_journal",
        "commit_worker",
    ),
    "mqtt": (
        "host",
        "port",
        "topic_prefix",
        "client_id",
        "username",
        "password",
        "keepalive",
        "telemetry",
        "telemetry_interval",
        "telemetry_max_queued",
    ),
    "operators": ("read", "act", "correct"),
    "metrics": ("listen",),
    "sync": tuple(SyncConfig.__slots__),
}


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a node config file.

    Raises:
        ConfigError: listing every problem, one line each.
    """
    source = Path(path)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # a binary file, or one saved as Latin-1
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{source}:{line}:{col}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}: {exc.reason}); a node config is UTF-8 text"
        ) from None
    return parse_config(text, source)


def _time_zone(name: Any) -> str | None:
    """None when ``name`` is an IANA time zone this machine knows (or empty), else why not."""
    if name == "":
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not a time zone (an IANA name such as Europe/Berlin, or UTC)"
    return None


def parse_config(text: str, source: Path) -> NodeConfig:
    """Validate config text read from ``source`` (used for messages and relative paths)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib ends its message with "(at line L, column C)": put them where tools look
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", str(exc))
        if at is None:
            raise ConfigError(f"{source}: TOML syntax: {exc}") from None
        message = str(exc)[: at.start()]
        raise ConfigError(f"{source}:{at[1]}:{at[2]}: TOML syntax: {message}") from None
    r = _Reader(str(source), text)
    base = source.resolve().parent
    r.table(data, "", KEYS[""])

    node = _section(r, data, "node", required=True)
    r.table(node, "node", KEYS["node"])
    node_id = r.get(node, "node", "id", str, "", required=True)
    site = r.get(node, "node", "site", str, "")
    data_dir = base / r.get(node, "node", "data_dir", str, "var")
    queue_size = r.get(node, "node", "queue_size", int, 10000, check=_positive)
    timezone = r.get(node, "node", "timezone", str, "", check=_time_zone)

    buses = {name: _bus(r, name, spec, base) for name, spec in _named(r, data, "buses")}
    devices = {name: _device(r, name, spec, buses) for name, spec in _named(r, data, "devices")}
    points = {
        name: _point(r, name, spec, devices, buses) for name, spec in _named(r, data, "points")
    }

    rules_t = _section(r, data, "rules")
    r.table(rules_t, "rules", KEYS["rules"])
    files = r.get(rules_t, "rules", "files", list, [])
    rule_files = []
    for i, f in enumerate(files):
        if not isinstance(f, str):
            r.problem(f"rules.files[{i}]", f"expected a string, got {_toml_type(f)}")
            continue
        rule_files.append(base / f)
    rules = RulesConfig(tuple(rule_files), r.get(rules_t, "rules", "reload", bool, True))

    led = _section(r, data, "ledger")
    r.table(led, "ledger", KEYS["ledger"])
    key_file = r.get(led, "ledger", "key_file", str, None)
    ledger = LedgerConfig(
        flush_interval=r.duration(led, "ledger", "flush_interval", 1.0),
        batch_max=r.get(led, "ledger", "batch_max", int, 1000, check=_positive),
        readings_retention=r.duration(led, "ledger", "readings_retention", 30 * 86400.0),
        minute_summary_retention=r.duration(
            led, "ledger", "minute_summary_retention", 90 * 86400.0
        ),
        readings_block=r.get(led, "ledger", "readings_block", int, 1000, check=_positive),
        readings_max_bytes=r.get(
            led, "ledger", "readings_max_bytes", int, 0, check=_in_range(0, 2**62)
        ),
        readings_min_free_bytes=r.get(
            led, "ledger", "readings_min_free_bytes", int, 0, check=_in_range(0, 2**62)
        ),
        key_file=(data_dir / key_file) if key_file else None,
        # on with [sync] too: sync pushes from the writer's durable batches, not the database
        # (docs/design.md, "Sync nodes keep the commit journal")
        commit_journal=r.get(led, "ledger", "commit_journal", bool, True),
        commit_worker=r.get(
            led, "ledger", "commit_worker", str, "thread", check=_one_of(COMMIT_WORKERS)
        ),
    )

    mqtt: MqttConfig | None = None
    if "mqtt" in data:
        m = _section(r, data, "mqtt")
        r.table(m, "mqtt", KEYS["mqtt"])
        mqtt = MqttConfig(
            host=r.get(m, "mqtt", "host", str, "127.0.0.1"),
            port=r.get(m, "mqtt", "port", int, 1883, check=_in_range(1, 65535)),
            topic_prefix=r.get(m, "mqtt", "topic_prefix", str, "edge"),
            client_id=r.get(m, "mqtt", "client_id", str, ""),
            username=r.get(m, "mqtt", "username", str, ""),
            password=r.get(m, "mqtt", "password", str, ""),
            keepalive=r.duration(m, "mqtt", "keepalive", 30.0),
            telemetry=_telemetry(r, r.get(m, "mqtt", "telemetry", list, []), points, devices),
            telemetry_interval=r.duration(m, "mqtt", "telemetry_interval", 1.0),
            telemetry_max_queued=r.get(
                m, "mqtt", "telemetry_max_queued", int, 10_000, check=_positive
            ),
        )

    operators = _operators(r, _section(r, data, "operators"))
    sync = _sync(r, data, base) if "sync" in data else None

    metrics: MetricsConfig | None = None
    if "metrics" in data:
        mt = _section(r, data, "metrics")
        r.table(mt, "metrics", KEYS["metrics"])
        listen = r.get(mt, "metrics", "listen", str, METRICS_LISTEN)
        if listen is not None and not _host_port_ok(listen):
            r.problem("metrics.listen", f"expected host:port, got {listen!r}")
        metrics = MetricsConfig(listen or METRICS_LISTEN)

    if r.problems:
        raise ConfigError(r.problems)
    return NodeConfig(
        source=source,
        node_id=node_id,
        site=site,
        data_dir=data_dir,
        queue_size=queue_size,
        buses=buses,
        devices=devices,
        points=points,
        rules=rules,
        ledger=ledger,
        mqtt=mqtt,
        operators=operators,
        metrics=metrics,
        timezone=timezone,
        sync=sync,
    )


def _sync(r: _Reader, data: Mapping[str, Any], base: Path) -> SyncConfig:
    s = _section(r, data, "sync")
    r.table(s, "sync", KEYS["sync"])
    d = SyncConfig()

    def path(key: str) -> Path | None:
        value = r.get(s, "sync", key, str, "")
        return (base / value) if value else None

    prefix = r.get(s, "sync", "prefix", str, d.prefix)
    if (
        not prefix
        or any(c in prefix for c in "+#\0")
        or prefix.startswith("/")
        or prefix.endswith("/")
    ):
        r.problem(
            "sync.prefix", f"{prefix!r} is not a topic prefix (no +, #, leading or trailing /)"
        )
    return SyncConfig(
        enabled=r.get(s, "sync", "enabled", bool, True),
        host=r.get(s, "sync", "host", str, d.host),
        port=r.get(s, "sync", "port", int, d.port, check=_in_range(1, 65535)),
        prefix=prefix,
        client_id=r.get(s, "sync", "client_id", str, ""),
        username=r.get(s, "sync", "username", str, ""),
        password=r.get(s, "sync", "password", str, ""),
        ca_file=path("ca_file"),
        cert_file=path("cert_file"),
        key_file=path("key_file"),
        keepalive=r.duration(s, "sync", "keepalive", d.keepalive),
        batch_max=r.get(s, "sync", "batch_max", int, d.batch_max, check=_in_range(1, 100_000)),
        request_max=r.get(
            s, "sync", "request_max", int, d.request_max, check=_in_range(1, 100_000)
        ),
        in_flight=r.get(s, "sync", "in_flight", int, d.in_flight, check=_in_range(1, 64)),
        request_timeout=r.duration(s, "sync", "request_timeout", d.request_timeout),
        message_max=r.get(
            s, "sync", "message_max", int, d.message_max, check=_in_range(1024, 256 * 1024 * 1024)
        ),
        announce_interval=r.duration(s, "sync", "announce_interval", d.announce_interval),
        push_interval=r.duration(s, "sync", "push_interval", d.push_interval),
    )


def _telemetry(
    r: _Reader, names: list[Any], points: Mapping[str, Any], devices: Mapping[str, Any]
) -> tuple[str, ...]:
    """``[mqtt] telemetry``: each entry names a point or a device of this file."""
    out = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            r.problem(f"mqtt.telemetry[{i}]", f"expected a string, got {_toml_type(name)}")
        elif name not in points and name not in devices:
            r.problem(f"mqtt.telemetry[{i}]", f"{name!r} is neither a point nor a device")
        else:
            out.append(name)
    return tuple(out)


_OPERATOR = re.compile(r"^(?:\*|@?[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?|mqtt:(?:\*|[^\s/+#]+))$")


def _operators(r: _Reader, t: Mapping[str, Any]) -> OperatorsConfig:
    r.table(t, "operators", KEYS["operators"])
    default = OperatorsConfig()
    lists: dict[str, tuple[str, ...]] = {}
    for klass in KEYS["operators"]:
        raw = r.get(t, "operators", klass, list, None)
        if raw is None:
            lists[klass] = default.allowed(klass)
            continue
        good: list[str] = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, str) or not _OPERATOR.match(entry):
                r.problem(
                    f"operators.{klass}[{i}]",
                    f"{entry!r} is not a user, @group, *, mqtt:user or mqtt:*",
                )
                continue
            good.append(entry)
        lists[klass] = tuple(good)
    return OperatorsConfig(**lists)


def _section(
    r: _Reader, data: Mapping[str, Any], key: str, *, required: bool = False
) -> Mapping[str, Any]:
    value = r.get(data, "", key, dict, None, required=required)
    return value if value is not None else {}


def _named(r: _Reader, data: Mapping[str, Any], key: str) -> list[tuple[str, Mapping[str, Any]]]:
    """The sub-tables of ``[key.<name>]``, each checked to be a table."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    for name, spec in _section(r, data, key).items():
        if not isinstance(spec, dict):
            r.problem(f"{key}.{name}", f"expected a table, got {_toml_type(spec)}")
            continue
        out.append((name, spec))
    return out
