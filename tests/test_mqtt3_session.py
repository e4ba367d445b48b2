"""MQTT 3.1 / 3.1.1 sessions and connection life: clean session, the offline
queue and its bound, takeover by a second connection, keepalive."""

from __future__ import annotations

import threading

import pytest
from mqtt_client import unique_id
from raw_client import (
    RawClient,
    acknowledge,
    connect_unthreaded,
    fast_client_factory,  # noqa: F401 (the client_factory fixture)
    loop_until_disconnected,
)

from nanomq_py.mqtt.packets import Pingreq, Pingresp, Publish, Will


def drop_and_wait(client, watcher, topic):
    """Close a raw client that set a will on `topic`; return once the broker has
    let go of the connection (the will reached `watcher`)."""
    client.close()
    assert [m.topic for m in watcher.expect()] == [topic]


@pytest.mark.parametrize("protocol", ["3.1", "3.1.1"])
def test_persistent_session_keeps_subscriptions_and_queues_qos1_and_qos2(client_factory, protocol):
    base = f"session/keep/{unique_id()}"
    client_id = unique_id("persistent")
    subscriber = client_factory(client_id=client_id, clean=False, protocol=protocol)
    flags, _, _ = subscriber.connect()
    assert not flags.session_present
    subscriber.subscribe(base + "/#", 2)
    subscriber.disconnect()

    publisher = client_factory(protocol=protocol)
    publisher.connect()
    publisher.publish(base + "/q0", b"q0", qos=0)
    publisher.publish(base + "/q1", b"q1", qos=1)
    publisher.publish(base + "/q2", b"q2", qos=2)

    subscriber = client_factory(client_id=client_id, clean=False, protocol=protocol)
    flags, _, _ = subscriber.connect()
    assert flags.session_present == (protocol == "3.1.1")  # 3.1's CONNACK has no such flag
    # QoS 0 is not queued for an offline client; QoS 1 and 2 are, in order.
    assert [(m.payload, m.qos) for m in subscriber.expect(2)] == [(b"q1", 1), (b"q2", 2)]
    assert subscriber.received_before_sync(publisher) == []
    # The subscription itself survived: live messages flow without resubscribing.
    publisher.publish(base + "/live", b"live", qos=1)
    assert [m.payload for m in subscriber.expect()] == [b"live"]


def test_clean_session_discards_the_old_session(client_factory):
    base = f"session/clean/{unique_id()}"
    client_id = unique_id("clean")
    subscriber = client_factory(client_id=client_id, clean=False)
    subscriber.connect()
    subscriber.subscribe(base, 1)
    subscriber.disconnect()
    publisher = client_factory()
    publisher.connect()
    publisher.publish(base, b"queued", qos=1)

    cleaner = client_factory(client_id=client_id, clean=True)
    flags, _, _ = cleaner.connect()
    assert not flags.session_present
    assert cleaner.received_before_sync(publisher) == []  # queue gone with the session
    cleaner.disconnect()

    again = client_factory(client_id=client_id, clean=False)
    flags, _, _ = again.connect()
    assert not flags.session_present
    publisher.publish(base, b"no subscription", qos=1)
    assert again.received_before_sync(publisher) == []


def test_clean_session_client_leaves_nothing_behind(client_factory):
    topic = f"session/gone/{unique_id()}"
    client_id = unique_id("transient")
    client = client_factory(client_id=client_id, clean=True)
    client.connect()
    client.subscribe(topic, 1)
    client.disconnect()
    publisher = client_factory()
    publisher.connect()
    publisher.publish(topic, b"lost", qos=1)
    persistent = client_factory(client_id=client_id, clean=False)
    flags, _, _ = persistent.connect()
    assert not flags.session_present
    assert persistent.received_before_sync(publisher) == []


def test_offline_queue_is_bounded_by_max_mqueue_len(broker_factory, client_factory):
    broker = broker_factory("mqtt { max_mqueue_len = 5 }\n")
    topic = f"session/bound/{unique_id()}"
    will_topic = f"session/bound-gone/{unique_id()}"
    client_id = unique_id("bounded")
    publisher = client_factory(broker)
    publisher.connect()
    publisher.subscribe(will_topic, 0)
    with RawClient(broker) as subscriber:
        subscriber.connect(client_id, clean=False, will=Will(will_topic, b"gone"))
        subscriber.subscribe(topic, qos=1)
        drop_and_wait(subscriber, publisher, will_topic)
    for n in range(8):
        publisher.publish(topic, b"%d" % n, qos=1)
    broker.wait_for_output(rf"dropped message on '{topic}' for '{client_id}': queue_full")
    with RawClient(broker) as subscriber:
        assert subscriber.connect(client_id, clean=False).session_present
        kept = [subscriber.expect(Publish) for _ in range(5)]
        assert [m.payload for m in kept] == [b"0", b"1", b"2", b"3", b"4"]  # overflow dropped
        for message in kept:
            acknowledge(subscriber, message)
        subscriber.ping()


def test_takeover_closes_the_first_connection_and_the_session_continues(broker, client_factory):
    topic = f"session/takeover/{unique_id()}"
    client_id = unique_id("same")
    publisher = client_factory()
    publisher.connect()
    with RawClient(broker) as first:
        first.connect(client_id, clean=False)
        first.subscribe(topic, qos=1)
        publisher.publish(topic, b"to first", qos=1)
        unacked = first.expect(Publish)
        with RawClient(broker) as second:
            assert second.connect(client_id, clean=False).session_present
            first.assert_closed()
            # The session moved over: the unacknowledged message is resent to
            # the new connection, and the subscription delivers to it.
            again = second.expect(Publish)
            assert (again.payload, again.dup, again.packet_id) == (b"to first", True, unacked.packet_id)
            acknowledge(second, again)
            publisher.publish(topic, b"to second", qos=1)
            assert second.expect(Publish).payload == b"to second"


def test_takeover_with_clean_session_starts_afresh(broker, client_factory):
    topic = f"session/takeover-clean/{unique_id()}"
    client_id = unique_id("same")
    publisher = client_factory()
    publisher.connect()
    with RawClient(broker) as first, RawClient(broker) as second:
        first.connect(client_id, clean=False)
        first.subscribe(topic, qos=1)
        assert not second.connect(client_id, clean=True).session_present
        first.assert_closed()
        publisher.publish(topic, b"nobody", qos=1)  # routed once acknowledged
        second.ping()  # the old subscription is gone: PINGRESP is the next packet


def test_paho_client_is_taken_over(client_factory):
    client_id = unique_id("paho-same")
    first = client_factory(client_id=client_id)
    connect_unthreaded(first)  # a looping paho client would reconnect and take the id back
    second = client_factory(client_id=client_id)
    second.connect()
    assert loop_until_disconnected(first).is_failure
    second.subscribe("session/after-takeover", 0)


def test_keepalive_is_enforced_and_the_will_is_published(broker, client_factory):
    """keepalive 1 s x keepalive_multiplier 1.5: a silent client is closed after
    about 1.5 s and its will goes out; one that sends PINGREQ every half second stays."""
    will_topic = f"session/keepalive-will/{unique_id()}"
    watcher = client_factory()
    watcher.connect()
    watcher.subscribe(will_topic, 1)
    with RawClient(broker) as silent, RawClient(broker) as busy:
        silent.connect(unique_id("silent"), keepalive=1, will=Will(will_topic, b"timed out", 1))
        busy.connect(unique_id("busy"), keepalive=1)
        done = threading.Event()
        sent = []

        def keep_pinging():
            while not done.wait(0.5):
                busy.send(Pingreq())
                sent.append(1)

        pinger = threading.Thread(target=keep_pinging)
        pinger.start()
        try:
            silent.assert_closed(timeout=5)
        finally:
            done.set()
            pinger.join()
        assert [(m.payload, m.qos) for m in watcher.expect()] == [(b"timed out", 1)]
        # The busy client outlived the silent one, and every ping was answered.
        for _ in sent:
            busy.expect(Pingresp)
        busy.ping()
