"""The bridge's offline cache in the store (`sqlite { }`): messages acknowledged locally while
the uplink is cut survive a SIGKILL of the edge broker and reach the upstream after a restart."""

from __future__ import annotations

import pytest
from bridge_support import API_CONF, BridgeApi, Mosquitto, TcpProxy, bridge_conf
from broker_process import start_broker
from mqtt_client import TestClient

TIMEOUT = 20


@pytest.fixture
def upstream(tmp_path):
    (tmp_path / "mosquitto").mkdir()
    broker = Mosquitto(tmp_path / "mosquitto")
    proxy = TcpProxy(broker.port)
    yield broker, proxy
    proxy.close()
    broker.stop()


def connected(target, **kwargs):
    client = TestClient(target, **kwargs)
    client.connect()
    return client


def test_cached_messages_survive_a_kill_of_the_edge(tmp_path, upstream):
    mosquitto, proxy = upstream
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    edge_dir = tmp_path / "edge"
    edge_dir.mkdir()
    conf = (
        API_CONF
        + f'sqlite {{ mounted_file_path = "{store_dir}" }}\n'
        + bridge_conf("up", proxy.port, 'forwards = [ { local_topic = "kill/#", remote_topic = "" } ]')
    )
    edge = start_broker(edge_dir, conf)
    clients = []
    try:
        edge.wait_for_output(r"bridge up: connected to", timeout=TIMEOUT)
        remote = connected(mosquitto)
        clients.append(remote)
        remote.subscribe("kill/#", 1)
        local = connected(edge)
        clients.append(local)
        for seq in range(1, 51):
            local.publish("kill/a", str(seq).encode(), qos=1)
        assert [int(m.payload) for m in remote.expect(50, timeout=TIMEOUT)] == list(range(1, 51))

        proxy.cut()
        edge.wait_for_output(r"bridge up: down", timeout=TIMEOUT)
        for seq in range(51, 251):
            local.publish("kill/a", str(seq).encode(), qos=1)  # each PUBACK waited for the store
        local.paho.loop_stop()
        edge.proc.kill()  # SIGKILL: nothing is flushed on the way out
        edge.proc.wait(TIMEOUT)

        edge = start_broker(edge_dir, conf)
        status = BridgeApi(edge).status("up")
        assert status["cached"] == 200 and status["state"] != "connected"
        proxy.restore()
        seen = []
        duplicates = 0
        while len(seen) < 200:
            seq = int(remote.messages.get(timeout=TIMEOUT).payload)
            if seq in seen:
                duplicates += 1
                continue
            seen.append(seq)
        assert seen == list(range(51, 251))
        status = BridgeApi(edge).wait_for("up", lambda s: s["cached"] == 0 and s["inflight"] == 0)
        assert (status["forwarded"], status["dropped"]) == (200, 0)
        print(f"edge SIGKILL during outage: sent=200 acked=200 arrived=200 lost=0 duplicates={duplicates}")
    finally:
        for client in clients:
            client.paho.loop_stop()
        edge.stop()
