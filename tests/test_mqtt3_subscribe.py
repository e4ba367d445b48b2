"""MQTT 3.1 / 3.1.1 SUBSCRIBE and UNSUBSCRIBE on a real socket: wildcards,
SUBACK codes, overlapping subscriptions, `$` topics, invalid names and filters."""

from __future__ import annotations

import pytest
from mqtt_client import unique_id
from raw_client import (
    RawClient,
    acknowledge,
    fast_client_factory,  # noqa: F401 (the client_factory fixture)
)

from nanomq_py.mqtt.packets import Publish, Suback, SubOptions, Subscribe, Unsuback, Unsubscribe

FAILURE = 0x80

# Every topic published; each filter must receive exactly the topics listed with it.
TOPICS = [
    "sport",
    "sport/tennis",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "sport/",
    "/sport",
    "x/y",
    "$test/sport",
    "$test",
]
MATCHES = [
    ("sport/tennis/player1/#", {"sport/tennis/player1", "sport/tennis/player1/ranking"}),
    ("sport/#", {"sport", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking", "sport/"}),
    ("#", {t for t in TOPICS if not t.startswith("$")}),
    ("sport/tennis/+", {"sport/tennis/player1"}),
    ("sport/+", {"sport/tennis", "sport/"}),
    ("+", {"sport"}),
    ("+/+", {"sport/tennis", "sport/", "/sport", "x/y"}),
    ("/+", {"/sport"}),
    ("+/tennis/#", {"sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"}),
    ("sport/tennis", {"sport/tennis"}),
    ("+/sport", {"/sport"}),  # not "$test/sport": a leading + never matches a $ topic
    ("$test/#", {"$test", "$test/sport"}),
    ("$test/+", {"$test/sport"}),
    ("$test", {"$test"}),
]


@pytest.mark.parametrize("protocol", ["3.1", "3.1.1"])
def test_wildcard_matching_and_dollar_topics(client_factory, protocol):
    """Filters from the root see the whole broker: this runs while no other test publishes."""
    subscribers = []
    for flt, expected in MATCHES:
        subscriber = client_factory(protocol=protocol)
        subscriber.connect()
        assert [code.value for code in subscriber.subscribe(flt, 1)] == [1]
        subscribers.append((subscriber, flt, expected))
    publisher = client_factory(protocol=protocol)
    publisher.connect()
    for topic in TOPICS:
        publisher.publish(topic, topic.encode(), qos=1)
    for subscriber, flt, expected in subscribers:
        messages = [m for m in subscriber.received_before_sync(publisher) if not m.topic.startswith("sync/")]
        assert sorted(m.topic for m in messages) == sorted(expected), flt  # (other clients' markers ignored)
        assert all(m.payload == m.topic.encode() for m in messages)


def test_one_subscribe_with_several_filters_gets_one_code_each(broker):
    base = f"sub/multi/{unique_id()}"
    with RawClient(broker) as client:
        client.connect(unique_id())
        codes = client.subscribe((base + "/0", 0), (base + "/1", 1), (base + "/2", 2), (base + "/#", 1))
        assert codes == [0, 1, 2, 1]


@pytest.mark.parametrize("version", [3, 4])
def test_invalid_filters_get_suback_failure_and_the_rest_is_granted(broker, version):
    base = f"sub/bad/{unique_id()}"
    bad = ["a/#/b", "a+", "+a/b", "a/b#", "#/a", ""]
    with RawClient(broker, version=version) as client:
        client.connect(unique_id())
        codes = client.subscribe((base + "/ok", 1), *[(flt, 1) for flt in bad], (base + "/+", 2))
        assert codes == [1] + [FAILURE] * len(bad) + [2]
        client.ping()  # still connected
        client.publish_acked(base + "/ok", b"x", qos=1)
        message = client.expect(Publish)
        assert (message.topic, message.qos) == (base + "/ok", 1)  # published at 1, subscribed at 2
        acknowledge(client, message)


def test_overlapping_subscriptions_deliver_once_at_the_highest_qos(client_factory):
    base = f"sub/overlap/{unique_id()}"
    subscriber = client_factory()
    subscriber.connect()
    subscriber.subscribe([(base + "/a", 0), (base + "/+", 1), (base + "/#", 2), ("#", 0)])
    publisher = client_factory()
    publisher.connect()
    publisher.publish(base + "/a", b"one", qos=2)
    (message,) = subscriber.expect()
    assert (message.payload, message.qos) == (b"one", 2)
    later = subscriber.received_before_sync(publisher)
    assert [m.payload for m in later if m.topic == base + "/a"] == []


def test_resubscribe_replaces_the_qos_and_keeps_one_subscription(client_factory):
    topic = f"sub/replace/{unique_id()}"
    subscriber = client_factory()
    subscriber.connect()
    subscriber.subscribe(topic, 0)
    assert [code.value for code in subscriber.subscribe(topic, 2)] == [2]
    publisher = client_factory()
    publisher.connect()
    publisher.publish(topic, b"x", qos=2)
    (message,) = subscriber.expect()
    assert message.qos == 2
    assert subscriber.received_before_sync(publisher) == []


@pytest.mark.parametrize("protocol", ["3.1", "3.1.1"])
def test_unsubscribe_stops_delivery(client_factory, protocol):
    base = f"sub/unsub/{unique_id()}"
    subscriber = client_factory(protocol=protocol)
    subscriber.connect()
    subscriber.subscribe([(base + "/+", 1), (base + "/b", 1)])
    subscriber.unsubscribe(base + "/+")
    publisher = client_factory(protocol=protocol)
    publisher.connect()
    publisher.publish(base + "/a", b"a", qos=1)
    publisher.publish(base + "/b", b"b", qos=1)
    assert [m.payload for m in subscriber.received_before_sync(publisher)] == [b"b"]
    subscriber.unsubscribe([base + "/b", base + "/never-subscribed"])
    publisher.publish(base + "/b", b"b", qos=1)
    assert subscriber.received_before_sync(publisher) == []


def test_unsuback_carries_the_packet_id_even_without_a_subscription(broker):
    with RawClient(broker) as client:
        client.connect(unique_id())
        client.send(Unsubscribe(321, ["sub/none"]))
        assert client.expect(Unsuback) == Unsuback(321)


def test_suback_carries_the_packet_id(broker):
    with RawClient(broker) as client:
        client.connect(unique_id())
        client.send(Subscribe(654, [("sub/pid", SubOptions(2))]))
        assert client.expect(Suback) == Suback(654, [2])


@pytest.mark.parametrize("topic", ["sub/+/x", "sub/#", "+", "#", ""])
def test_publish_to_an_invalid_topic_name_closes_the_connection(broker, topic):
    with RawClient(broker) as client:
        client.connect(unique_id("badpub"))
        client.publish(topic, b"x", qos=1)
        client.assert_closed()


@pytest.mark.parametrize(
    "data",
    [
        b"\x82\x02\x00\x01",  # no topic filters
        b"\x82\x08\x00\x01\x00\x03a/b\x03",  # QoS 3
        b"\x82\x08\x00\x01\x00\x03a/b\x04",  # reserved option bits (3.1.1)
        b"\x80\x08\x00\x01\x00\x03a/b\x01",  # fixed-header flags not 0010
        b"\xa2\x02\x00\x01",  # UNSUBSCRIBE without filters
        b"\xa0\x07\x00\x01\x00\x03a/b",  # UNSUBSCRIBE flags not 0010
        b"\x82\x08\x00\x00\x00\x03a/b\x01",  # packet id 0
        b"\x82\x09\x00\x01\x00\x04a/\x00b\x01",  # U+0000 in the filter
        b"\x82\x08\x00\x01\x00\x03a/\xff\x01",  # not UTF-8
        b"\x82\x08\x00\x01\x00\x09a/b\x01",  # string longer than the packet
    ],
    ids=[
        "no-filters",
        "qos3",
        "reserved-bits",
        "flags",
        "unsub-empty",
        "unsub-flags",
        "pid0",
        "nul",
        "utf8",
        "overrun",
    ],
)
def test_malformed_subscribe_and_unsubscribe_close(broker, data):
    with RawClient(broker) as client:
        client.connect(unique_id("badsub"))
        client.send_bytes(data)
        client.assert_closed()


def test_subscription_to_dollar_topics_with_wildcards_inside(client_factory):
    subscriber = client_factory()
    subscriber.connect()
    name = unique_id()
    subscriber.subscribe(f"$dollar/{name}/+", 0)
    publisher = client_factory()
    publisher.connect()
    publisher.publish(f"$dollar/{name}/x", b"x", qos=1)
    assert [m.topic for m in subscriber.expect()] == [f"$dollar/{name}/x"]


def test_non_ascii_topics_match_level_by_level(client_factory):
    name = unique_id()
    subscriber = client_factory()
    subscriber.connect()
    subscriber.subscribe(f"sub/ünï/{name}/+/тема", 1)
    publisher = client_factory()
    publisher.connect()
    publisher.publish(f"sub/ünï/{name}/日本/тема", "payload ✓".encode(), qos=1)
    publisher.publish(f"sub/ünï/{name}/日本/тема/x", b"deeper", qos=1)
    (message,) = subscriber.expect()
    assert (message.topic, message.payload) == (f"sub/ünï/{name}/日本/тема", "payload ✓".encode())
    assert subscriber.received_before_sync(publisher) == []
