"""Sync across a Mosquitto bridge (h), and with TLS, authentication and the documented ACL (i).

(h): a gateway on a site broker and a hub on a central broker, the site broker bridging
``edge-sync/v1/#`` both ways with the configuration docs/reference/sync.md shows. (i): a broker
that takes only TLS: one listener authenticates by client certificate (the certificate's CN is
the user), one by username and password; both enforce the ACL under which a node publishes only
under its own name. Certificates are made by ``openssl`` for the test.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from sync_rig import MqttBroker, SyncNode, make_nodes, wait_converged, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SYNC = 'announce_interval = "2s"\nrequest_timeout = "3s"\n'


def grows(node: SyncNode, than: int) -> bool:
    return len(node.entries().get(node.feed, [])) > than


@pytest.fixture
def stopped() -> Iterator[list[MqttBroker | SyncNode]]:
    """Things to stop at the end, nodes first."""
    things: list[MqttBroker | SyncNode] = []
    yield things
    for t in things:
        if isinstance(t, SyncNode):
            t.close()
    for t in things:
        if isinstance(t, MqttBroker):
            t.stop()


def test_h_two_nodes_on_two_brokers_joined_by_a_bridge(
    tmp_path: Path, stopped: list[MqttBroker | SyncNode]
) -> None:
    central = MqttBroker(tmp_path / "central")
    central.start()
    stopped.append(central)
    site = MqttBroker(
        tmp_path / "site",
        conf_extra=(
            "connection central\n"
            f"address 127.0.0.1:{central.port}\n"
            "bridge_protocol_version mqttv50\n"
            "topic edge-sync/v1/# both 1\n"
            "remote_clientid site-bridge\n"
        ),
    )
    site.start()
    stopped.append(site)
    ports = {"gw1": site.port, "hub": central.port}
    nodes = make_nodes(tmp_path, [("gw1", True), ("hub", False)],
                       lambda name: f"port = {ports[name]}\n{SYNC}")  # fmt: skip
    stopped[:0] = nodes
    gw1, hub = nodes
    for n in nodes:
        n.start()
    wait_for(lambda: grows(gw1, 8), 60, "gw1 writing")
    wait_converged(nodes)
    # live entries cross the bridge too, and a restart catches up through it
    hub.kill()
    kept = len(gw1.entries()[gw1.feed])
    wait_for(lambda: grows(gw1, kept + 2), 60, "gw1 writing while the hub is down")
    hub.start()
    wait_converged(nodes)
    assert gw1.feed in hub.entries()
    assert hub.feed in gw1.entries()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, clients: list[str]) -> None:
    """A CA, a server certificate for 127.0.0.1 and one client certificate per name (CN)."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    for name, ext in [("server", ["-extfile", "san.ext"]), *((c, []) for c in clients)]:
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *ext, cwd=d)  # fmt: skip


# The ACL of docs/reference/sync.md: each node publishes only under its own name.
ACL = "pattern write edge-sync/v1/%u/#\npattern read edge-sync/v1/#\n"


def test_i_tls_with_authentication_and_the_acl(
    tmp_path: Path, stopped: list[MqttBroker | SyncNode]
) -> None:
    pki = tmp_path / "pki"
    make_pki(pki, ["gw1", "mallory"])
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "hub", "hub-secret"], check=True)
    (tmp_path / "acl").write_text(ACL)
    pw_port = _free()
    tls = f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
    broker = MqttBroker(
        tmp_path / "broker",
        conf_text=(
            "per_listener_settings true\npersistence false\n{user}"
            "listener {port} 127.0.0.1\n"
            + tls
            + "require_certificate true\nuse_identity_as_username true\n"
            + f"acl_file {tmp_path}/acl\n"
            + f"listener {pw_port} 127.0.0.1\n"
            + tls
            + f"allow_anonymous false\npassword_file {passwd}\nacl_file {tmp_path}/acl\n"
        ),
    )
    broker.start()
    stopped.append(broker)
    toml = {
        "gw1": f'port = {broker.port}\nca_file = "{pki}/ca.crt"\ncert_file = "{pki}/gw1.crt"\n'
        f'key_file = "{pki}/gw1.key"\n{SYNC}',
        "hub": f'port = {pw_port}\nca_file = "{pki}/ca.crt"\nusername = "hub"\n'
        f'password = "hub-secret"\n{SYNC}',
    }
    nodes = make_nodes(tmp_path, [("gw1", True), ("hub", False)], lambda name: toml[name])
    stopped[:0] = nodes
    gw1, hub = nodes
    for n in nodes:
        n.start()
    wait_for(lambda: grows(gw1, 6), 60, "gw1 writing")
    wait_converged(nodes)
    # the ACL: mallory (a valid certificate) cannot speak as the hub, only as mallory
    got = asyncio.run(_impersonate(broker.port, pw_port, pki, hub.feed))
    assert got == ["edge-sync/v1/mallory/head/" + hub.feed]
    # without TLS the broker is not reachable at all: no plaintext listener
    assert "sync.connected" in gw1.log_text()
    assert "sync.connected" in hub.log_text()


async def _impersonate(cert_port: int, pw_port: int, pki: Path, feed: str) -> list[str]:
    """Publish as mallory under the hub's name and under its own; what a reader receives."""
    import ssl

    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    reader_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "mallory.crt"), str(pki / "mallory.key"))
    v5 = aiomqtt.ProtocolVersion.V5
    got: list[str] = []
    async with aiomqtt.Client("127.0.0.1", pw_port, username="hub", password="hub-secret",
                              tls_context=reader_ctx, protocol=v5, identifier="reader") as reader:  # fmt: skip
        await reader.subscribe("edge-sync/v1/+/head/" + feed, qos=1)
        async with aiomqtt.Client("127.0.0.1", cert_port, tls_context=ctx, protocol=v5) as mallory:
            for who in ("hub", "mallory"):
                await mallory.publish(f"edge-sync/v1/{who}/head/{feed}", b"\x01H{}", qos=1)
        try:
            async with asyncio.timeout(3):
                async for msg in reader.messages:
                    if msg.payload == b"\x01H{}":
                        got.append(str(msg.topic))
        except TimeoutError:
            pass
    return got


def _free() -> int:
    from sync_rig import free_port

    return free_port()
