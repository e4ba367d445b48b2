"""MQTT 3.1 / 3.1.1 PUBLISH on a real socket: QoS 0, 1 and 2 both ways, the
whole QoS 2 flow without duplicates, packet ids, the inflight window,
redelivery with DUP on reconnect and retry after retry_interval."""

from __future__ import annotations

import queue
import time

import pytest
from mqtt_client import unique_id
from raw_client import (
    RawClient,
    acknowledge,
    fast_client_factory,  # noqa: F401 (the client_factory fixture)
)

from nanomq_py.mqtt.packets import Puback, Pubcomp, Publish, Pubrec, Pubrel, Will

PROTOCOLS = ["3.1", "3.1.1"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_round_trip_at_each_qos(client_factory, protocol, qos):
    topic = f"pub/{protocol}/{qos}/{unique_id()}"
    subscriber = client_factory(protocol=protocol)
    subscriber.connect()
    assert [code.value for code in subscriber.subscribe(topic, qos)] == [qos]
    publisher = client_factory(protocol=protocol)
    publisher.connect()
    publisher.publish(topic, b"payload-%d" % qos, qos=qos)
    (message,) = subscriber.expect()
    assert (message.topic, message.payload, message.qos, message.retain) == (
        topic,
        b"payload-%d" % qos,
        qos,
        False,
    )
    assert subscriber.received_before_sync(publisher) == []  # exactly once


def test_granted_qos_is_min_of_subscription_and_publish(client_factory):
    base = f"pub/min/{unique_id()}"
    subscriber = client_factory()
    subscriber.connect()
    granted = subscriber.subscribe([(f"{base}/sub{q}", q) for q in (0, 1, 2)])
    assert [code.value for code in granted] == [0, 1, 2]
    publisher = client_factory()
    publisher.connect()
    for sub_qos in (0, 1, 2):
        for pub_qos in (0, 1, 2):
            publisher.publish(f"{base}/sub{sub_qos}", b"%d%d" % (sub_qos, pub_qos), qos=pub_qos)
    received = {message.payload: message.qos for message in subscriber.expect(9)}
    assert received == {b"%d%d" % (s, p): min(s, p) for s in (0, 1, 2) for p in (0, 1, 2)}


def test_messages_from_one_publisher_arrive_in_order(client_factory):
    topic = f"pub/order/{unique_id()}"
    subscriber = client_factory()
    subscriber.connect()
    subscriber.subscribe(topic, 1)
    publisher = client_factory()
    publisher.connect()
    infos = [publisher.publish(topic, b"%d" % i, qos=1, wait=False) for i in range(200)]
    for info in infos:
        info.wait_for_publish(10)
    assert [m.payload for m in subscriber.expect(200)] == [b"%d" % i for i in range(200)]


def test_large_payload_round_trip(client_factory):
    topic = f"pub/large/{unique_id()}"
    payload = bytes(range(256)) * 2048  # 512 KiB: multi-byte lengths, many reads and writes
    subscriber = client_factory()
    subscriber.connect()
    subscriber.subscribe(topic, 1)
    publisher = client_factory()
    publisher.connect()
    publisher.publish(topic, payload, qos=1)
    assert subscriber.expect()[0].payload == payload


def test_empty_payload_is_delivered(client_factory):
    topic = f"pub/empty/{unique_id()}"
    subscriber = client_factory()
    subscriber.connect()
    subscriber.subscribe(topic, 0)
    publisher = client_factory()
    publisher.connect()
    publisher.publish(topic, b"", qos=1)
    assert subscriber.expect()[0].payload == b""


def test_raw_qos1_puback_and_delivery_with_packet_ids(broker):
    topic = f"pub/raw1/{unique_id()}"
    with RawClient(broker) as subscriber, RawClient(broker) as publisher:
        subscriber.connect(unique_id("sub"))
        assert subscriber.subscribe(topic, qos=1) == [1]
        publisher.connect(unique_id("pub"))
        for n in range(3):
            pid = publisher.publish(topic, b"m%d" % n, qos=1, packet_id=100 + n)
            assert publisher.expect(Puback) == Puback(pid)
        received = [subscriber.expect(Publish) for _ in range(3)]
        assert [(m.payload, m.qos, m.dup) for m in received] == [
            (b"m0", 1, False),
            (b"m1", 1, False),
            (b"m2", 1, False),
        ]
        pids = [m.packet_id for m in received]
        assert 0 not in pids and len(set(pids)) == 3  # distinct while all are unacknowledged
        for message in received:
            subscriber.send(Puback(message.packet_id))
        subscriber.ping()


def test_raw_qos2_inbound_flow_without_duplicate_delivery(broker):
    """A QoS 2 PUBLISH resent with DUP before PUBREL is acknowledged again but
    routed once; after PUBCOMP the same packet id starts a new message."""
    topic = f"pub/raw2/{unique_id()}"
    with RawClient(broker) as subscriber, RawClient(broker) as publisher:
        subscriber.connect(unique_id("sub"))
        subscriber.subscribe(topic, qos=2)
        publisher.connect(unique_id("pub"))
        publisher.publish(topic, b"once", qos=2, packet_id=7)
        assert publisher.expect(Pubrec) == Pubrec(7)
        publisher.publish(topic, b"once", qos=2, dup=True, packet_id=7)
        assert publisher.expect(Pubrec) == Pubrec(7)
        publisher.send(Pubrel(7))
        assert publisher.expect(Pubcomp) == Pubcomp(7)

        message = subscriber.expect(Publish)
        assert (message.payload, message.qos) == (b"once", 2)
        acknowledge(subscriber, message)
        subscriber.ping()  # nothing else arrived before the PINGRESP: delivered once

        publisher.publish(topic, b"again", qos=2, packet_id=7)
        assert publisher.expect(Pubrec) == Pubrec(7)
        publisher.send(Pubrel(7))
        assert publisher.expect(Pubcomp) == Pubcomp(7)
        assert subscriber.expect(Publish).payload == b"again"


def test_qos2_packet_id_stays_in_use_across_a_reconnect(broker, client_factory):
    """A persistent session remembers QoS 2 ids awaiting PUBREL: the client's resend
    after reconnecting is acknowledged but not delivered twice."""
    topic = f"pub/raw2-reconnect/{unique_id()}"
    client_id = unique_id("pub-persistent")
    subscriber = client_factory()
    subscriber.connect()
    subscriber.subscribe(topic, 2)
    with RawClient(broker) as publisher:
        publisher.connect(client_id, clean=False)
        publisher.publish(topic, b"exactly once", qos=2, packet_id=99)
        assert publisher.expect(Pubrec) == Pubrec(99)
    with RawClient(broker) as publisher:
        assert publisher.connect(client_id, clean=False).session_present
        publisher.publish(topic, b"exactly once", qos=2, dup=True, packet_id=99)
        assert publisher.expect(Pubrec) == Pubrec(99)
        publisher.send(Pubrel(99))
        assert publisher.expect(Pubcomp) == Pubcomp(99)
        assert [m.payload for m in subscriber.expect()] == [b"exactly once"]
        assert subscriber.received_before_sync(publisher) == []
        publisher.disconnect()


def test_raw_qos2_outbound_flow(broker):
    topic = f"pub/raw2out/{unique_id()}"
    with RawClient(broker) as subscriber, RawClient(broker) as publisher:
        subscriber.connect(unique_id("sub"))
        subscriber.subscribe(topic, qos=2)
        publisher.connect(unique_id("pub"))
        publisher.publish_acked(topic, b"q2", qos=2)
        message = subscriber.expect(Publish)
        assert (message.qos, message.dup, message.retain) == (2, False, False)
        subscriber.send(Pubrec(message.packet_id))
        assert subscriber.expect(Pubrel) == Pubrel(message.packet_id)
        subscriber.send(Pubcomp(message.packet_id))
        subscriber.ping()


def test_pubrel_for_an_unknown_packet_id_gets_pubcomp(broker):
    with RawClient(broker) as client:
        client.connect(unique_id("pubrel"))
        client.send(Pubrel(4242))
        assert client.expect(Pubcomp) == Pubcomp(4242)


def test_acks_for_unknown_packet_ids_are_ignored(broker):
    with RawClient(broker) as client:
        client.connect(unique_id("acks"))
        client.send(Puback(11))
        client.send(Pubrec(12))
        client.send(Pubcomp(13))
        client.ping()


def close_and_wait(subscriber, watcher, will_topic):
    """Close a raw client's socket and wait until the broker has let go of the
    connection: its will (set at CONNECT) reaches the watcher."""
    subscriber.close()
    (will,) = watcher.expect()
    assert will.topic == will_topic


@pytest.mark.parametrize("qos", [1, 2])
def test_unacknowledged_messages_are_resent_with_dup_on_reconnect(broker, client_factory, qos):
    topic = f"pub/redeliver/{unique_id()}"
    client_id = unique_id("persistent")
    will_topic = f"pub/gone/{client_id}"
    publisher = client_factory()
    publisher.connect()
    publisher.subscribe(will_topic, 0)
    with RawClient(broker) as subscriber:
        subscriber.connect(client_id, clean=False, will=Will(will_topic, b"gone"))
        subscriber.subscribe(topic, qos=qos)
        publisher.publish(topic, b"first", qos=qos)
        first = subscriber.expect(Publish)
        assert (first.payload, first.dup) == (b"first", False)
        close_and_wait(subscriber, publisher, will_topic)  # without acknowledging
    publisher.publish(topic, b"while-away", qos=qos)
    with RawClient(broker) as subscriber:
        assert subscriber.connect(client_id, clean=False).session_present
        again = subscriber.expect(Publish)
        assert (again.payload, again.qos, again.dup, again.packet_id) == (
            b"first",
            qos,
            True,
            first.packet_id,
        )
        queued = subscriber.expect(Publish)
        assert (queued.payload, queued.qos, queued.dup) == (b"while-away", qos, False)
        acknowledge(subscriber, again)
        acknowledge(subscriber, queued)
        subscriber.ping()
        subscriber.disconnect()
    with RawClient(broker) as subscriber:
        assert subscriber.connect(client_id, clean=False).session_present
        subscriber.ping()  # everything was acknowledged: nothing is resent


def test_pubrel_is_resent_on_reconnect(broker, client_factory):
    topic = f"pub/rel/{unique_id()}"
    client_id = unique_id("persistent")
    publisher = client_factory()
    publisher.connect()
    with RawClient(broker) as subscriber:
        subscriber.connect(client_id, clean=False)
        subscriber.subscribe(topic, qos=2)
        publisher.publish(topic, b"q2", qos=2)
        message = subscriber.expect(Publish)
        subscriber.send(Pubrec(message.packet_id))
        assert subscriber.expect(Pubrel) == Pubrel(message.packet_id)
        # Closed before PUBCOMP.
    with RawClient(broker) as subscriber:
        assert subscriber.connect(client_id, clean=False).session_present
        assert subscriber.expect(Pubrel) == Pubrel(message.packet_id)
        subscriber.send(Pubcomp(message.packet_id))
        subscriber.ping()


def test_paho_persistent_session_gets_unacknowledged_and_queued_messages(broker, client_factory):
    """paho resends its own side; the broker's queued QoS 1 messages arrive once reconnected."""
    topic = f"pub/paho-persist/{unique_id()}"
    client_id = unique_id("paho-persistent")
    subscriber = client_factory(client_id=client_id, clean=False)
    subscriber.connect()
    subscriber.subscribe(topic, 1)
    subscriber.disconnect()
    publisher = client_factory()
    publisher.connect()
    for n in range(3):
        publisher.publish(topic, b"%d" % n, qos=1)
    subscriber = client_factory(client_id=client_id, clean=False)
    flags, _, _ = subscriber.connect()
    assert flags.session_present
    assert [m.payload for m in subscriber.expect(3)] == [b"0", b"1", b"2"]


@pytest.fixture(scope="module")
def window_broker(tmp_path_factory):
    from broker_process import start_broker

    proc = start_broker(tmp_path_factory.mktemp("window"), "mqtt { max_inflight_window = 3 }\n")
    yield proc
    proc.stop()


@pytest.mark.parametrize("qos", [1, 2])
def test_inflight_window_holds_the_rest_until_acks_come(window_broker, qos):
    topic = f"pub/window/{unique_id()}"
    marker = f"pub/window-marker/{unique_id()}"
    with RawClient(window_broker) as subscriber, RawClient(window_broker) as publisher:
        subscriber.connect(unique_id("sub"))
        subscriber.subscribe((topic, qos), (marker, 0))
        publisher.connect(unique_id("pub"))
        for n in range(6):
            publisher.publish_acked(topic, b"%d" % n, qos=qos)
        publisher.publish(marker, b"after")
        # Three in flight; the QoS 0 marker overtakes the three that wait for a slot.
        first = [subscriber.expect(Publish) for _ in range(3)]
        assert [m.payload for m in first] == [b"0", b"1", b"2"]
        assert subscriber.expect(Publish).topic == marker
        assert len({m.packet_id for m in first}) == 3
        # Each completed acknowledgement lets exactly one more through, in order.
        outstanding = first
        for n in range(3, 6):
            acknowledge(subscriber, outstanding.pop(0))
            message = subscriber.expect(Publish)
            assert (message.payload, message.dup) == (b"%d" % n, False)
            outstanding.append(message)
        for message in outstanding:
            acknowledge(subscriber, message)
        subscriber.ping()


@pytest.fixture(scope="module")
def timing_broker(tmp_path_factory):
    """Short timers for the sweeper's QoS duties (the tests using them do not interfere)."""
    from broker_process import start_broker

    conf = 'mqtt { retry_interval = "1s", await_rel_timeout = "1s" }\n'
    proc = start_broker(tmp_path_factory.mktemp("timing"), conf)
    yield proc
    proc.stop()


def test_retry_after_retry_interval_with_dup(timing_broker):
    """Unacknowledged PUBLISH (QoS 1 and 2) and PUBREL are resent by the sweeper
    once retry_interval has passed; three subscribers wait in parallel."""
    broker = timing_broker
    topic = f"pub/retry/{unique_id()}"
    with (
        RawClient(broker) as no_puback,
        RawClient(broker) as no_pubrec,
        RawClient(broker) as no_pubcomp,
        RawClient(broker) as publisher,
    ):
        for subscriber, qos in ((no_puback, 1), (no_pubrec, 2), (no_pubcomp, 2)):
            subscriber.connect(unique_id("sub"))
            subscriber.subscribe(topic, qos=qos)
        publisher.connect(unique_id("pub"))
        publisher.publish_acked(topic, b"retried", qos=2)
        q1 = no_puback.expect(Publish)
        q2 = no_pubrec.expect(Publish)
        released = no_pubcomp.expect(Publish)
        no_pubcomp.send(Pubrec(released.packet_id))
        assert no_pubcomp.expect(Pubrel) == Pubrel(released.packet_id)

        for subscriber, first in ((no_puback, q1), (no_pubrec, q2)):
            again = subscriber.expect(Publish, timeout=5)
            assert (again.payload, again.qos, again.packet_id, again.dup) == (
                b"retried",
                first.qos,
                first.packet_id,
                True,
            )
            acknowledge(subscriber, again)
            subscriber.ping()
        assert no_pubcomp.expect(Pubrel, timeout=5) == Pubrel(released.packet_id)
        no_pubcomp.send(Pubcomp(released.packet_id))
        no_pubcomp.ping()


def test_qos2_id_without_pubrel_is_forgotten_after_await_rel_timeout(timing_broker, client_factory):
    """Until await_rel_timeout a resend of the id is a duplicate; after it, the id is
    free again and the same PUBLISH is a new message."""
    topic = f"pub/await-rel/{unique_id()}"
    subscriber = client_factory(timing_broker)
    subscriber.connect()
    subscriber.subscribe(topic, 2)
    with RawClient(timing_broker) as publisher:
        publisher.connect(unique_id("no-pubrel"))
        publisher.publish(topic, b"unreleased", qos=2, packet_id=5)
        assert publisher.expect(Pubrec) == Pubrec(5)
        assert subscriber.expect()[0].payload == b"unreleased"
        # Resend until the broker treats it as new: each resend is answered with PUBREC.
        deadline = time.monotonic() + 5
        while True:
            publisher.publish(topic, b"unreleased", qos=2, dup=True, packet_id=5)
            assert publisher.expect(Pubrec) == Pubrec(5)
            try:
                message = subscriber.messages.get(timeout=0.25)
                break
            except queue.Empty:
                assert time.monotonic() < deadline, "packet id 5 never released"
        assert message.payload == b"unreleased"
