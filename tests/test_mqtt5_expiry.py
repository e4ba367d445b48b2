"""MQTT 5 Message Expiry Interval: an expired message is not delivered (queued
for an offline session, or retained), and subscribers receive the remaining
interval.

Expiry is about time, so these tests let 1 s pass on the clock. The broker and
the test share the system's monotonic clock, and the broker starts a message's
interval when it reads the PUBLISH, before its PUBACK reaches us: one second
after the PUBACK, the message has expired for the broker too."""

from __future__ import annotations

import time

from mqtt_client import unique_id, v5_properties
from paho.mqtt.packettypes import PacketTypes


def expiry(seconds):
    return v5_properties(MessageExpiryInterval=seconds)


def wait_past(start, seconds):
    """Let `seconds` pass on the monotonic clock since `start` (a spec interval, not a guess)."""
    time.sleep(max(0.0, start + seconds + 0.05 - time.monotonic()))


def v5_client(client_factory, **kwargs):
    client = client_factory(protocol="5", **kwargs)
    client.connect()
    return client


def test_subscriber_receives_the_remaining_interval(client_factory):
    topic = f"expiry/live/{unique_id()}"
    subscriber = v5_client(client_factory)
    subscriber.subscribe(topic, 1)
    publisher = v5_client(client_factory)
    publisher.publish(topic, b"expiring", qos=1, properties=expiry(30))
    publisher.publish(topic, b"forever", qos=1)
    first, second = subscriber.expect(2)
    assert 29 <= first.properties.MessageExpiryInterval <= 30
    assert not hasattr(second.properties, "MessageExpiryInterval")


def test_expired_messages_are_not_delivered_from_an_offline_queue(client_factory):
    cid = unique_id("expiry-offline")
    topic = f"expiry/offline/{cid}"
    session = v5_properties(PacketTypes.CONNECT, SessionExpiryInterval=60)
    subscriber = client_factory(client_id=cid, protocol="5")
    subscriber.connect(properties=session, clean_start=True)
    subscriber.subscribe(topic, 1)
    subscriber.disconnect()

    publisher = v5_client(client_factory)
    publisher.publish(topic, b"short", qos=1, properties=expiry(1))
    published = time.monotonic()
    publisher.publish(topic, b"long", qos=1, properties=expiry(60))
    publisher.publish(topic, b"no expiry", qos=1)
    wait_past(published, 1)

    subscriber = client_factory(client_id=cid, protocol="5")
    flags, _, _ = subscriber.connect(properties=session, clean_start=False)
    assert flags.session_present
    long, plain = subscriber.expect(2)
    assert (long.payload, plain.payload) == (b"long", b"no expiry")
    assert 57 <= long.properties.MessageExpiryInterval <= 59  # a second or more has passed
    assert not hasattr(plain.properties, "MessageExpiryInterval")
    assert subscriber.received_before_sync(publisher) == []


def test_retained_messages_expire(client_factory):
    topic = f"expiry/retained/{unique_id()}"
    publisher = v5_client(client_factory)
    publisher.publish(topic, b"retained briefly", qos=1, retain=True, properties=expiry(1))
    published = time.monotonic()

    early = v5_client(client_factory)
    early.subscribe(topic, 1)
    [message] = early.expect()
    assert message.retain and message.payload == b"retained briefly"
    assert message.properties.MessageExpiryInterval == 1

    wait_past(published, 1)
    late = v5_client(client_factory)
    late.subscribe(topic, 1)
    assert late.received_before_sync(publisher) == []


def test_retained_message_without_expiry_stays(client_factory):
    topic = f"expiry/retained-forever/{unique_id()}"
    publisher = v5_client(client_factory)
    publisher.publish(topic, b"kept", qos=1, retain=True)
    subscriber = v5_client(client_factory)
    subscriber.subscribe(topic, 1)
    [message] = subscriber.expect()
    assert message.retain and message.payload == b"kept"
    assert not hasattr(message.properties, "MessageExpiryInterval")


def test_will_expiry_counts_from_its_publication(client_factory):
    cid = unique_id("will-expiry")
    topic = f"expiry/will/{cid}"
    watcher = v5_client(client_factory)
    watcher.subscribe(topic, 1)
    client = client_factory(client_id=cid, protocol="5")
    client.paho.will_set(
        topic, b"bye", 1, properties=v5_properties(PacketTypes.WILLMESSAGE, MessageExpiryInterval=1)
    )
    client.connect()
    wait_past(time.monotonic(), 1)  # connected longer than the will's lifetime
    client.drop()
    [will] = watcher.expect()
    assert will.payload == b"bye"
    assert will.properties.MessageExpiryInterval == 1
