"""What the store keeps across a SIGKILL and a graceful stop/start: retained
messages (set, replaced, cleared; MQTT 5 expiry counted in wall-clock time),
persistent sessions with their subscription options and identifiers, queued
messages, in-flight messages (re-sent with DUP), and a will with its delay.
Also: a damaged store file is moved aside, an unusable store directory stops
the start, the file does not grow over publish/ack cycles, and without the
`sqlite { }` block sqlite3 is never imported."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from broker_process import REPO, start_broker
from raw_client import RawClient
from raw_client_v5 import RawV5Client
from store_helpers import drain_until_marker, kill, store_conf

from nanomq_py.mqtt import properties as p
from nanomq_py.mqtt.packets import Puback, Publish, Will


def _stop(broker, how):
    if how == "kill":
        kill(broker)
    else:
        assert broker.stop() == 0


@pytest.mark.parametrize("how", ["kill", "graceful"])
def test_retained_set_replaced_cleared_survive(broker_factory, tmp_path, how):
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    pub = RawV5Client(broker)
    pub.connect("ret-pub")
    for topic, payload, props in (
        ("ret/a", b"first", {}),
        ("ret/a", b"second", {}),  # replaced
        ("ret/b", b"gone", {}),
        ("ret/b", b"", {}),  # cleared
        ("ret/c", b"expires", {p.MESSAGE_EXPIRY_INTERVAL: 3600}),
    ):
        pid = pub.publish(topic, payload, qos=1, retain=True, properties=props)
        assert pub.expect(Puback).packet_id == pid
    _stop(broker, how)

    broker = broker_factory(store_conf(store_dir))
    sub = RawV5Client(broker)
    sub.connect("ret-sub")
    sub.subscribe("ret/#", qos=1)
    got = {}
    for _ in range(2):
        packet = sub.expect(Publish)
        got[packet.topic] = packet
    assert {t: m.payload for t, m in got.items()} == {"ret/a": b"second", "ret/c": b"expires"}
    assert got["ret/a"].retain
    remaining = got["ret/c"].properties[p.MESSAGE_EXPIRY_INTERVAL]
    assert 0 < remaining <= 3600
    sub.send(Puback(got["ret/a"].packet_id))
    sub.send(Puback(got["ret/c"].packet_id))
    pub = RawV5Client(broker)
    pub.connect("ret-pub2")
    pub.publish("ret/zz-marker", b"m", qos=0)
    assert sub.expect(Publish).topic == "ret/zz-marker"  # nothing else (ret/b stays cleared)


@pytest.mark.parametrize("how", ["kill", "graceful"])
def test_session_subscription_options_queue_and_inflight_survive(broker_factory, tmp_path, how):
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    sub = RawV5Client(broker)
    connack = sub.connect("sess-sub", clean_start=True, properties={p.SESSION_EXPIRY_INTERVAL: 3600})
    assert not connack.session_present
    sub.subscribe("sess/t", qos=1, properties={p.SUBSCRIPTION_IDENTIFIER: [42]})
    pub = RawClient(broker)
    pub.connect("sess-pub")
    pub.publish_acked("sess/t", b"in-flight", qos=1)
    inflight = sub.expect(Publish)  # received, never acknowledged
    assert inflight.payload == b"in-flight"
    sub.close()
    for n in range(3):
        pub.publish_acked("sess/t", b"queued-%d" % n, qos=1)
    _stop(broker, how)

    broker = broker_factory(store_conf(store_dir))
    sub = RawV5Client(broker)
    connack = sub.connect("sess-sub", clean_start=False, properties={p.SESSION_EXPIRY_INTERVAL: 3600})
    assert connack.session_present
    again = sub.expect(Publish)
    assert (again.payload, again.dup, again.packet_id) == (b"in-flight", True, inflight.packet_id)
    payloads = []
    for _ in range(3):
        packet = sub.expect(Publish)
        assert packet.properties[p.SUBSCRIPTION_IDENTIFIER] == [42]
        sub.send(Puback(packet.packet_id))
        payloads.append(packet.payload)
    assert payloads == [b"queued-0", b"queued-1", b"queued-2"]
    sub.send(Puback(again.packet_id))
    pub = RawClient(broker)
    pub.connect("sess-pub")
    pub.publish_acked("sess/t", b"live", qos=1)  # the subscription is in force again
    assert sub.expect(Publish).payload == b"live"


def test_clean_session_is_forgotten_and_acked_messages_deleted(broker_factory, tmp_path):
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    sub = RawClient(broker)
    sub.connect("cs-sub", clean=False)
    sub.subscribe("cs/t", qos=1)
    sub.disconnect()
    sub = RawClient(broker)
    sub.connect("cs-sub", clean=True)  # discards the stored session
    sub.publish_acked("cs/other", b"x", qos=1)  # a PUBACK comes after every earlier change is committed
    sub.disconnect()
    kill(broker)
    broker = broker_factory(store_conf(store_dir))
    sub = RawClient(broker)
    assert not sub.connect("cs-sub", clean=False).session_present


def test_will_with_delay_of_a_session_cut_by_the_crash_is_sent_after_restart(broker_factory, tmp_path):
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    watcher = RawClient(broker)
    watcher.connect("will-watch", clean=False)
    watcher.subscribe("will/t", qos=1)
    watcher.disconnect()
    client = RawV5Client(broker)
    will = Will("will/t", b"gone", 1, False, {p.WILL_DELAY_INTERVAL: 0})
    client.connect("will-client", properties={p.SESSION_EXPIRY_INTERVAL: 60}, will=will)
    client.publish("will/other", b"x", qos=1)
    client.expect(Puback)  # a PUBACK comes after every earlier change is committed
    kill(broker)  # the will's connection dies with the broker

    broker = broker_factory(store_conf(store_dir))
    received, _ = drain_until_marker(broker, "will-watch", "will/t")
    assert received == [b"gone"]


def test_queued_messages_drain_in_pages_after_restart(broker_factory, tmp_path):
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    sub = RawClient(broker)
    sub.connect("page-sub", clean=False)
    sub.subscribe("page/t", qos=1)
    sub.disconnect()
    pub = RawClient(broker)
    pub.connect("page-pub")
    for n in range(1000):
        pub.publish("page/t", b"%d" % n, qos=1, packet_id=n % 60000 + 1)
    for n in range(1000):
        pub.take(Puback, n % 60000 + 1)
    _stop(broker, "graceful")
    broker = broker_factory(store_conf(store_dir))
    received, _ = drain_until_marker(broker, "page-sub", "page/t")
    assert received == [b"%d" % n for n in range(1000)]


def test_damaged_store_is_moved_aside_and_the_broker_starts(broker_factory, tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / "nanomq.db").write_bytes(b"this is not an SQLite database, just bytes " * 100)
    broker = broker_factory(store_conf(store_dir))
    match = broker.wait_for_output(r"store (\S+) is damaged .* moved aside to (\S+);")
    assert match.group(1) == str(store_dir / "nanomq.db")
    moved = match.group(2)
    assert os.path.exists(moved)
    with open(moved, "rb") as kept:
        assert kept.read().startswith(b"this is not an SQLite database")
    sub = RawClient(broker)
    sub.connect("after-damage", clean=False)
    sub.subscribe("d/t", qos=1)
    sub.disconnect()


def test_unusable_store_directory_stops_the_start_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = blocker / "store"
    with pytest.raises(RuntimeError) as failed:
        start_broker(tmp_path, store_conf(path))
    assert str(path) in str(failed.value)
    assert "failed to start" in str(failed.value)


def test_bad_sqlite_key_stops_the_start(tmp_path):
    with pytest.raises(RuntimeError) as failed:
        start_broker(tmp_path, 'sqlite { mounted_file_path = "/tmp/x", synchronous = "sometimes" }\n')
    assert 'sqlite.synchronous = "sometimes" is invalid: expected one of full, normal' in str(failed.value)


def test_file_size_stays_flat_over_publish_ack_cycles(broker_factory, tmp_path):
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    sub = RawClient(broker)
    sub.connect("flat-sub", clean=False)
    sub.subscribe("flat/t", qos=1)
    sub.disconnect()
    pub = RawClient(broker)
    pub.connect("flat-pub")
    sizes = []
    payload = b"x" * 200
    for _cycle in range(12):
        for n in range(1, 1001):
            pub.publish("flat/t", payload, qos=1, packet_id=n)
        for n in range(1, 1001):
            pub.take(Puback, n)
        received, _ = drain_until_marker(broker, "flat-sub", "flat/t")
        assert len(received) == 1000
        sizes.append(os.path.getsize(store_dir / "nanomq.db"))
        wal = store_dir / "nanomq.db-wal"
        assert not wal.exists() or wal.stat().st_size < 3 * 1024 * 1024  # checkpointed near 1 MB
    print("\nstore file size after each cycle of 1000 queued and acked messages:", sizes)
    assert max(sizes[8:]) <= max(sizes[4:8]) * 1.1  # free pages are reused: no growth


def test_without_the_block_sqlite3_is_not_imported(tmp_path):
    code = (
        "import sys\n"
        "from nanomq_py.settings import Settings\n"
        "from nanomq_py.server import Server\n"
        "server = Server(Settings())\n"
        "assert server.broker.store is None\n"
        "print('sqlite3' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("restart", [False, True])
def test_a_long_queue_of_an_online_then_offline_session_is_paged_without_loss_or_duplicates(
    broker_factory, tmp_path, restart
):
    """A window of 10: most of 1,500 messages wait, the first ones in memory, the rest in
    the store only; the subscriber leaves midway and comes back (maybe to a restarted
    broker): it gets the unacknowledged 10 again with DUP, then every other message once, in order."""
    store_dir = tmp_path / "store"
    conf = store_conf(store_dir, "mqtt { max_inflight_window = 10 }\n")
    broker = broker_factory(conf)
    sub = RawClient(broker)
    sub.connect("long-sub", clean=False)
    sub.subscribe("long/t", qos=1)
    pub = RawClient(broker)
    pub.connect("long-pub")
    for n in range(1000):
        pub.publish("long/t", b"%d" % n, qos=1, packet_id=n + 1)
    for n in range(1000):
        pub.take(Puback, n + 1)
    first = [sub.expect(Publish) for _ in range(10)]  # the window, never acknowledged
    sub.close()
    for n in range(1000, 1500):
        pub.publish("long/t", b"%d" % n, qos=1, packet_id=n + 1)
    for n in range(1000, 1500):
        pub.take(Puback, n + 1)
    if restart:
        kill(broker)
        broker = broker_factory(conf)
    received, dups = drain_until_marker(broker, "long-sub", "long/t")
    assert [p.payload for p in first] == [b"%d" % n for n in range(10)]
    assert dups == 10
    assert received == [b"%d" % n for n in range(1500)]


def test_a_delayed_will_of_an_offline_session_waits_out_its_delay_across_a_kill(broker_factory, tmp_path):
    """The connection ended, the will waits 2 s (wall clock); the broker is killed and
    restarted meanwhile: the will is still sent, once its delay has passed."""
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    watcher = RawClient(broker, timeout=15)
    watcher.connect("dw-watch", clean=False)
    watcher.subscribe("dw/will", ("$SYS/brokers/client_status/dw-client", 0), qos=1)
    client = RawV5Client(broker)
    will = Will("dw/will", b"late", 1, False, {p.WILL_DELAY_INTERVAL: 2})
    client.connect("dw-client", properties={p.SESSION_EXPIRY_INTERVAL: 60}, will=will)
    while watcher.expect(Publish).topic != "$SYS/brokers/client_status/dw-client":
        pass  # online
    client.close()  # no DISCONNECT: the will is due in 2 s
    while watcher.expect(Publish).topic != "$SYS/brokers/client_status/dw-client":
        pass  # offline: the pending will is in the batch
    watcher.publish_acked("dw/sync", b"x", qos=1)  # its PUBACK comes once that batch is committed
    watcher.close()
    kill(broker)

    broker = broker_factory(store_conf(store_dir))
    watcher = RawClient(broker, timeout=15)
    watcher.connect("dw-watch", clean=False)
    packet = watcher.expect(Publish)  # within the sweeper's second after the delay
    assert (packet.topic, packet.payload) == ("dw/will", b"late")


def test_the_brokers_own_sys_values_are_not_written_to_the_store(broker_factory, tmp_path):
    """$SYS statistics are retained while someone listens, but they describe the running
    process: none reach the database; after a restart the static version is there
    (set before the store loaded) and the count is the application's."""
    store_dir = tmp_path / "store"
    conf = store_conf(store_dir, "mqtt.sys_interval = 1\n")
    broker = broker_factory(conf)
    sub = RawClient(broker)
    sub.connect("sys-watch")
    sub.subscribe("$SYS/broker/uptime")
    assert sub.expect(Publish).topic == "$SYS/broker/uptime"
    pub = RawClient(broker)
    pub.connect("sys-pub")
    pub.publish_acked("app/last", b"kept", qos=1, retain=True)  # acked: committed
    assert broker.stop() == 0

    with sqlite3.connect(store_dir / "nanomq.db") as db:
        topics = [row[0] for row in db.execute("SELECT topic FROM retained")]
    assert topics == ["app/last"]

    broker = broker_factory(conf)
    sub = RawClient(broker)
    sub.connect("sys-watch-2")
    sub.subscribe("app/#", "$SYS/broker/version", "$SYS/broker/retained messages/count")
    retained = {}
    while len(retained) < 3:
        packet = sub.expect(Publish)
        retained[packet.topic] = packet.payload
    assert retained["app/last"] == b"kept"
    assert retained["$SYS/broker/version"].startswith(b"nanomq_py version ")  # kept over the load
    assert retained["$SYS/broker/retained messages/count"] == b"1"  # the application's only
