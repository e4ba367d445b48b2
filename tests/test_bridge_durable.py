"""The bridge's offline cache in the store (`sqlite { }`, or NanoMQ's `bridges.mqtt.cache { }`
alone): messages acknowledged locally while the uplink is cut survive a SIGKILL of the edge
broker and reach the upstream after a restart. With only the cache block the store holds
the bridges' queues and nothing else (no sessions, no retained messages), is bounded by its
disk_cache_size, fails as the store does on a bad directory or file, and without either
block sqlite3 is never imported."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from bridge_support import API_CONF, BridgeApi, Mosquitto, TcpProxy, bridge_conf, free_port
from broker_process import REPO, start_broker
from mqtt_client import TestClient
from raw_client import RawClient
from store_helpers import kill

from nanomq_py.mqtt.packets import Publish

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


def sqlite_block(store_dir):
    return f'sqlite {{ mounted_file_path = "{store_dir}" }}\n'


def cache_block(store_dir):
    """NanoMQ's bridge cache block alone: a durable cache for the bridges only."""
    return (
        "bridges.mqtt.cache {\n"
        "  disk_cache_size = 102400\n"
        f'  mounted_file_path = "{store_dir}"\n'
        "  flush_mem_threshold = 100\n"
        "  resend_interval = 5000\n"
        "}\n"
    )


@pytest.mark.parametrize("store_block", [sqlite_block, cache_block], ids=["sqlite", "bridges.mqtt.cache"])
def test_cached_messages_survive_a_kill_of_the_edge(tmp_path, upstream, store_block):
    mosquitto, proxy = upstream
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    edge_dir = tmp_path / "edge"
    edge_dir.mkdir()
    conf = (
        API_CONF
        + store_block(store_dir)
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
        print(
            f"\n{store_block.__name__}: edge SIGKILL during outage: sent=200 acked=200 "
            f"arrived=200 lost=0 duplicates={duplicates}"
        )
    finally:
        for client in clients:
            client.paho.loop_stop()
        edge.stop()


def test_with_only_the_cache_block_the_store_holds_no_sessions_or_retained(tmp_path):
    """The cache block makes the bridges' queues durable and nothing else: a persistent
    session, its queued message and a retained message are gone after a restart."""
    store_dir = tmp_path / "store"
    # Nothing listens on the bridge's port: it keeps connecting and its cache fills.
    conf = cache_block(store_dir) + bridge_conf(
        "up", free_port(), 'forwards = [ { local_topic = "fwd/#", remote_topic = "" } ]'
    )
    edge_dir = tmp_path / "edge"
    edge_dir.mkdir()
    edge = start_broker(edge_dir, conf)
    try:
        sub = RawClient(edge)
        sub.connect("kept-sub", clean=False)
        sub.subscribe("keep/#", qos=1)
        sub.disconnect()
        pub = RawClient(edge)
        pub.connect("pub")
        pub.publish_acked("keep/queued", b"queued", qos=1)
        pub.publish_acked("keep/retained", b"retained", qos=1, retain=True)
        pub.publish_acked("fwd/a", b"cached", qos=1)  # acked once the bridge's cache has it
        kill(edge)

        with sqlite3.connect(store_dir / "nanomq.db") as db:
            counts = {
                table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("sessions", "subs", "msgs", "rel", "retained")
            }
            cached = db.execute("SELECT name, count(*) FROM queue GROUP BY name").fetchall()
        assert counts == dict.fromkeys(counts, 0)
        assert cached == [("bridge:up", 1)]

        edge = start_broker(edge_dir, conf)
        sub = RawClient(edge)
        assert sub.connect("kept-sub", clean=False).session_present is False
        sub.subscribe("keep/#", qos=1)
        pub = RawClient(edge)
        pub.connect("pub")
        pub.publish_acked("keep/marker", b"marker", qos=1)
        packet = sub.expect(Publish)  # neither the queued nor the retained message came back
        assert (packet.topic, packet.payload) == ("keep/marker", b"marker")
        sub.disconnect()
        pub.disconnect()
    finally:
        edge.stop()


def test_an_unusable_cache_directory_stops_the_start_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = blocker / "cache"
    with pytest.raises(RuntimeError) as failed:
        start_broker(tmp_path, cache_block(path) + bridge_conf("up", free_port()))
    assert str(path) in str(failed.value)
    assert "failed to start" in str(failed.value)


def test_a_damaged_cache_file_is_moved_aside_and_the_broker_starts(tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / "nanomq.db").write_bytes(b"this is not an SQLite database, just bytes " * 100)
    edge = start_broker(tmp_path, cache_block(store_dir) + bridge_conf("up", free_port()))
    try:
        match = edge.wait_for_output(r"store (\S+) is damaged .* moved aside to (\S+);")
        assert match.group(1) == str(store_dir / "nanomq.db")
        assert os.path.exists(match.group(2))
        edge.wait_for_output(r"bridge cache \S+ opened")
    finally:
        edge.stop()


def test_bridges_without_a_cache_or_sqlite_block_do_not_import_sqlite3(tmp_path):
    conf = tmp_path / "nanomq.conf"
    conf.write_text(bridge_conf("up", free_port()))
    code = (
        "import sys\n"
        "from nanomq_py.config import load_settings\n"
        "from nanomq_py.server import Server\n"
        f"server = Server(load_settings({str(conf)!r})[0])\n"
        "assert list(server.broker.bridges) == ['up'] and server.store is None\n"
        "print('sqlite3' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_cache_block_bounds_each_bridge_by_disk_cache_size(tmp_path, upstream):
    """disk_cache_size = 5: of 8 messages cached while the link is cut the 3 oldest are dropped
    and counted; the 5 newest go up, in order, when it is back."""
    mosquitto, proxy = upstream
    store_dir = tmp_path / "store"
    conf = (
        API_CONF
        + f'bridges.mqtt.cache {{ mounted_file_path = "{store_dir}", disk_cache_size = 5 }}\n'
        + bridge_conf("up", proxy.port, 'forwards = [ { local_topic = "bound/#", remote_topic = "" } ]')
    )
    edge_dir = tmp_path / "edge"
    edge_dir.mkdir()
    edge = start_broker(edge_dir, conf)
    clients = []
    try:
        edge.wait_for_output(r"bridge up: connected to", timeout=TIMEOUT)
        remote = connected(mosquitto)
        clients.append(remote)
        remote.subscribe("bound/#", 1)
        proxy.cut()
        edge.wait_for_output(r"bridge up: down", timeout=TIMEOUT)
        local = connected(edge)
        clients.append(local)
        for seq in range(1, 9):
            local.publish("bound/a", str(seq).encode(), qos=1)
        status = BridgeApi(edge).status("up")
        assert (status["cached"], status["dropped"]) == (5, 3)
        proxy.restore()
        assert [int(m.payload) for m in remote.expect(5, timeout=TIMEOUT)] == [4, 5, 6, 7, 8]
        status = BridgeApi(edge).wait_for("up", lambda s: s["cached"] == 0 and s["inflight"] == 0)
        assert (status["forwarded"], status["dropped"]) == (5, 3)
    finally:
        for client in clients:
            client.paho.loop_stop()
        edge.stop()
