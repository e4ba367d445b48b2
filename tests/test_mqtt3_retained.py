"""Retained messages with MQTT 3.1 / 3.1.1 clients: stored, replaced, cleared
by an empty payload, sent on subscribe with the retain flag set; live
forwarding carries retain 0."""

from __future__ import annotations

import pytest
from mqtt_client import unique_id
from raw_client import (
    RawClient,
    acknowledge,
    fast_client_factory,  # noqa: F401 (the client_factory fixture)
)

from nanomq_py.mqtt.packets import Publish, Suback, SubOptions, Subscribe


@pytest.fixture
def pair(client_factory, request):
    """(publisher, make_subscriber) at one protocol version."""
    protocol = getattr(request, "param", "3.1.1")

    def make_subscriber():
        client = client_factory(protocol=protocol)
        client.connect()
        return client

    publisher = client_factory(protocol=protocol)
    publisher.connect()
    return publisher, make_subscriber


@pytest.mark.parametrize("pair", ["3.1", "3.1.1"], indirect=True)
def test_retained_message_is_sent_on_subscribe_with_retain_set(pair):
    publisher, make_subscriber = pair
    topic = f"retain/basic/{unique_id()}"
    publisher.publish(topic, b"kept", qos=1, retain=True)
    subscriber = make_subscriber()
    subscriber.subscribe(topic, 1)
    (message,) = subscriber.expect()
    assert (message.topic, message.payload, message.retain, message.qos) == (topic, b"kept", True, 1)


def test_live_forwarding_has_retain_0(pair):
    publisher, make_subscriber = pair
    topic = f"retain/live/{unique_id()}"
    subscriber = make_subscriber()
    subscriber.subscribe(topic, 1)
    publisher.publish(topic, b"live", qos=1, retain=True)
    (message,) = subscriber.expect()
    assert (message.payload, message.retain) == (b"live", False)


def test_newer_retained_message_replaces_the_older(pair):
    publisher, make_subscriber = pair
    topic = f"retain/replace/{unique_id()}"
    publisher.publish(topic, b"old", qos=1, retain=True)
    publisher.publish(topic, b"new", qos=1, retain=True)
    publisher.publish(topic, b"not retained", qos=1)
    subscriber = make_subscriber()
    subscriber.subscribe(topic, 1)
    assert [(m.payload, m.retain) for m in subscriber.expect()] == [(b"new", True)]
    assert subscriber.received_before_sync(publisher) == []


def test_empty_retained_payload_clears_and_is_forwarded(pair):
    publisher, make_subscriber = pair
    topic = f"retain/clear/{unique_id()}"
    publisher.publish(topic, b"soon gone", qos=1, retain=True)
    live = make_subscriber()
    live.subscribe(topic, 1)
    assert live.expect()[0].payload == b"soon gone"
    publisher.publish(topic, b"", qos=1, retain=True)
    # Existing subscribers get the empty message as a normal publish (MQTT-3.3.1-10) ...
    (cleared,) = live.expect()
    assert (cleared.payload, cleared.retain) == (b"", False)
    # ... and nothing is retained any more.
    later = make_subscriber()
    later.subscribe(topic, 1)
    assert later.received_before_sync(publisher) == []


def test_wildcard_subscribe_gets_every_matching_retained_message(pair):
    publisher, make_subscriber = pair
    base = f"retain/wild/{unique_id()}"
    for leaf in ("a", "b", "c/d"):
        publisher.publish(f"{base}/{leaf}", leaf.encode(), qos=1, retain=True)
    subscriber = make_subscriber()
    subscriber.subscribe(f"{base}/+", 0)
    assert sorted(m.payload for m in subscriber.received_before_sync(publisher)) == [b"a", b"b"]
    subscriber.subscribe(f"{base}/#", 0)
    got = subscriber.received_before_sync(publisher)
    assert sorted(m.payload for m in got) == [b"a", b"b", b"c/d"]
    assert all(m.retain for m in got)


def test_retained_qos_is_min_of_message_and_subscription(pair):
    publisher, make_subscriber = pair
    base = f"retain/qos/{unique_id()}"
    for qos in (0, 1, 2):
        publisher.publish(f"{base}/{qos}", b"%d" % qos, qos=qos, retain=True)
    subscriber = make_subscriber()
    subscriber.subscribe(f"{base}/+", 1)
    got = {m.payload: m.qos for m in subscriber.received_before_sync(publisher)}
    assert got == {b"0": 0, b"1": 1, b"2": 1}


def test_resubscribing_sends_the_retained_message_again(pair):
    publisher, make_subscriber = pair
    topic = f"retain/again/{unique_id()}"
    publisher.publish(topic, b"r", qos=1, retain=True)
    subscriber = make_subscriber()
    subscriber.subscribe(topic, 1)
    assert subscriber.expect()[0].retain
    subscriber.subscribe(topic, 1)  # MQTT-3.8.4-3: the retained message is re-sent
    assert subscriber.expect()[0].retain


def test_retained_message_goes_out_after_the_suback_over_raw_socket(broker):
    topic = f"retain/order/{unique_id()}"
    with RawClient(broker) as publisher, RawClient(broker) as subscriber:
        publisher.connect(unique_id("pub"))
        publisher.publish_acked(topic, b"r2", qos=2, retain=True)
        subscriber.connect(unique_id("sub"))
        subscriber.send(Subscribe(9, [(topic, SubOptions(2))]))
        assert subscriber.expect(Suback) == Suback(9, [2])
        message = subscriber.expect(Publish)
        assert (message.payload, message.qos, message.retain, message.dup) == (b"r2", 2, True, False)
        acknowledge(subscriber, message)
        subscriber.ping()


def test_dollar_topics_are_not_sent_to_a_root_wildcard(pair):
    publisher, make_subscriber = pair
    name = unique_id()
    publisher.publish(f"$retained/{name}", b"dollar", qos=1, retain=True)
    publisher.publish(f"retain/{name}", b"plain", qos=1, retain=True)
    subscriber = make_subscriber()
    subscriber.subscribe("#", 0)
    got = [m.payload for m in subscriber.received_before_sync(publisher) if name in m.topic]
    assert got == [b"plain"]
    subscriber.subscribe("$retained/#", 0)
    assert [m.payload for m in subscriber.expect() if name in m.topic] == [b"dollar"]


def test_retained_messages_survive_the_publisher(client_factory):
    topic = f"retain/orphan/{unique_id()}"
    publisher = client_factory()
    publisher.connect()
    publisher.publish(topic, b"orphan", qos=1, retain=True)
    publisher.disconnect()
    subscriber = client_factory()
    subscriber.connect()
    subscriber.subscribe(topic, 0)
    assert subscriber.expect()[0].payload == b"orphan"
