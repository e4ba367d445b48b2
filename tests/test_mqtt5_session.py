"""MQTT 5 sessions and wills: Session Expiry Interval (0, n, never), Clean
Start, Session Present, DISCONNECT changing the expiry, expired sessions
discarded with their queues, and the Will Delay Interval.

Time-based rules use 1-second intervals and wait for an observable event (a
will that the broker sends when a session ends, a delayed will arriving)."""

from __future__ import annotations

from mqtt_client import unique_id, v5_properties
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from raw_client_v5 import RawV5Client

from nanomq_py.mqtt import properties as p
from nanomq_py.mqtt import reason_codes as rc
from nanomq_py.mqtt.packets import Disconnect, Will

NEVER = 0xFFFFFFFF
WILL_WAIT = 6  # seconds: a 1 s delay or expiry, the broker's 1 s sweep, and slack for a loaded machine


def connect_props(**values):
    return v5_properties(PacketTypes.CONNECT, **values)


def will_delay(seconds):
    return v5_properties(PacketTypes.WILLMESSAGE, WillDelayInterval=seconds)


def session_client(client_factory, client_id, expiry, clean_start=False, will=None):
    """A v5 client connected with that Session Expiry Interval; returns (client, session_present)."""
    client = client_factory(client_id=client_id, protocol="5")
    if will is not None:
        topic, delay = will
        props = will_delay(delay) if delay else None
        client.paho.will_set(topic, b"gone:" + client_id.encode(), 1, properties=props)
    props = connect_props(SessionExpiryInterval=expiry) if expiry else None
    flags, _, _ = client.connect(properties=props, clean_start=clean_start)
    return client, flags.session_present


def watcher(client_factory, topic):
    client = client_factory(protocol="5")
    client.connect()
    client.subscribe(topic, 1)
    return client


def test_expiry_zero_ends_the_session_at_disconnect(client_factory):
    cid = unique_id("s0")
    client, present = session_client(client_factory, cid, 0)
    assert not present
    client.subscribe("session/zero", 1)
    client.disconnect()
    _, present = session_client(client_factory, cid, 60)
    assert not present


def test_session_with_expiry_keeps_subscriptions_and_queues_messages(client_factory):
    cid = unique_id("s60")
    topic = f"session/kept/{cid}"
    client, present = session_client(client_factory, cid, 60)
    assert not present
    client.subscribe(topic, 1)
    client.disconnect()
    publisher = client_factory(protocol="5")
    publisher.connect()
    publisher.publish(topic, b"while away", qos=1)
    client, present = session_client(client_factory, cid, 60)
    assert present
    [message] = client.expect()
    assert (message.topic, message.payload) == (topic, b"while away")


def test_session_that_never_expires(client_factory):
    cid = unique_id("never")
    topic = f"session/never/{cid}"
    client, _ = session_client(client_factory, cid, NEVER)
    client.subscribe(topic, 1)
    client.drop()
    publisher = client_factory(protocol="5")
    publisher.connect()
    publisher.publish(topic, b"kept", qos=1)
    client, present = session_client(client_factory, cid, NEVER)
    assert present
    assert client.expect()[0].payload == b"kept"


def test_clean_start_discards_the_old_session(client_factory):
    cid = unique_id("clean")
    topic = f"session/clean/{cid}"
    client, _ = session_client(client_factory, cid, 60)
    client.subscribe(topic, 1)
    client.disconnect()
    client, present = session_client(client_factory, cid, 60, clean_start=True)
    assert not present
    publisher = client_factory(protocol="5")
    publisher.connect()
    publisher.publish(topic, b"nobody", qos=1)
    assert client.received_before_sync(publisher) == []


def test_disconnect_may_shorten_the_expiry_to_zero(client_factory):
    cid = unique_id("shorten")
    client, _ = session_client(client_factory, cid, 60)
    client.subscribe("session/shorten", 1)
    client.disconnect(properties=v5_properties(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    _, present = session_client(client_factory, cid, 60)
    assert not present


def test_disconnect_may_lengthen_a_non_zero_expiry(client_factory):
    cid = unique_id("lengthen")
    client, _ = session_client(client_factory, cid, 1, will=(f"session/will/{cid}", 0))
    client.disconnect(properties=v5_properties(PacketTypes.DISCONNECT, SessionExpiryInterval=NEVER))
    _, present = session_client(client_factory, cid, 60)
    assert present


def test_disconnect_changing_expiry_from_zero_is_a_protocol_error(broker, client_factory):
    cid = unique_id("zero-to-n")
    will_topic = f"session/will/{cid}"
    watch = watcher(client_factory, will_topic)
    raw = RawV5Client(broker)
    assert raw.connect(cid, will=Will(will_topic, b"protocol error", 1)).reason_code == 0
    raw.send(Disconnect(0, {p.SESSION_EXPIRY_INTERVAL: 30}))
    disconnect = raw.expect_disconnect(rc.PROTOCOL_ERROR)
    assert "expiry" in disconnect.properties[p.REASON_STRING]
    # Not a normal disconnection, so the will is published.
    [will] = watch.expect()
    assert will.payload == b"protocol error"


def test_expired_session_is_discarded_with_its_queue(client_factory):
    cid = unique_id("expire")
    topic = f"session/expire/{cid}"
    will_topic = f"session/expire-will/{cid}"
    watch = watcher(client_factory, will_topic)
    # A will delayed longer than the session lives is sent when the session ends: our event.
    client, _ = session_client(client_factory, cid, 1, will=(will_topic, 3600))
    client.subscribe(topic, 1)
    client.drop()
    publisher = client_factory(protocol="5")
    publisher.connect()
    publisher.publish(topic, b"queued then discarded", qos=1)
    [will] = watch.expect(timeout=WILL_WAIT)
    assert will.payload == b"gone:" + cid.encode()
    client, present = session_client(client_factory, cid, 60)
    assert not present
    assert client.received_before_sync(publisher) == []


def test_capped_session_expiry_is_announced_in_connack(broker_factory, client_factory):
    capped = broker_factory("mqtt { max_session_expiry_interval = 5s }")
    client = client_factory(capped, protocol="5")
    _, _, props = client.connect(properties=connect_props(SessionExpiryInterval=NEVER))
    assert props.SessionExpiryInterval == 5


def test_disconnect_cannot_lengthen_the_expiry_beyond_the_cap(broker_factory, client_factory):
    capped = broker_factory("mqtt { max_session_expiry_interval = 1s }")
    cid = unique_id("capped")
    will_topic = f"session/capped-will/{cid}"
    watch = client_factory(capped, protocol="5")
    watch.connect()
    watch.subscribe(will_topic, 1)
    client = client_factory(capped, client_id=cid, protocol="5")
    client.paho.will_set(will_topic, b"session ended", 1, properties=will_delay(3600))
    client.connect(properties=connect_props(SessionExpiryInterval=1))
    # Keep the will (0x04) and ask for a session that never expires: the cap still ends it
    # after 1 s, and the will, delayed longer than that, goes out when it ends.
    client.paho.disconnect(
        reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=rc.DISCONNECT_WITH_WILL),
        properties=v5_properties(PacketTypes.DISCONNECT, SessionExpiryInterval=NEVER),
    )
    [will] = watch.expect(timeout=WILL_WAIT)
    assert will.payload == b"session ended"


# -- wills -----------------------------------------------------------------------


def test_will_sent_after_its_delay(client_factory):
    cid = unique_id("delayed")
    will_topic = f"session/will/{cid}"
    watch = watcher(client_factory, will_topic)
    client, _ = session_client(client_factory, cid, 60, will=(will_topic, 1))
    client.drop()
    [will] = watch.expect(timeout=WILL_WAIT)
    assert will.payload == b"gone:" + cid.encode()


def test_will_not_sent_when_the_client_returns_within_the_delay(client_factory):
    returning = unique_id("returning")
    leaving = unique_id("leaving")
    will_topic = f"session/will/{returning}"
    watch = watcher(client_factory, will_topic)
    watch.subscribe(f"session/will/{leaving}", 1)
    client, _ = session_client(client_factory, returning, 60, will=(will_topic, 2))
    client.drop()
    _, present = session_client(client_factory, returning, 60)  # back within the 2 s delay
    assert present
    # A second client with the same delay leaves later: once its will arrives,
    # the first will would have been due as well.
    other, _ = session_client(client_factory, leaving, 60, will=(f"session/will/{leaving}", 2))
    other.drop()
    [will] = watch.expect(timeout=WILL_WAIT)
    assert will.payload == b"gone:" + leaving.encode()
    publisher = client_factory(protocol="5")
    publisher.connect()
    assert watch.received_before_sync(publisher) == []


def test_will_sent_at_once_when_the_session_ends_at_disconnect(client_factory):
    cid = unique_id("no-session")
    will_topic = f"session/will/{cid}"
    watch = watcher(client_factory, will_topic)
    client, _ = session_client(client_factory, cid, 0, will=(will_topic, 3600))
    client.drop()
    [will] = watch.expect(timeout=WILL_WAIT)
    assert will.payload == b"gone:" + cid.encode()


def test_disconnect_with_will_message_sends_the_will(client_factory):
    cid = unique_id("with-will")
    will_topic = f"session/will/{cid}"
    watch = watcher(client_factory, will_topic)
    client, _ = session_client(client_factory, cid, 0, will=(will_topic, 0))
    client.paho.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=rc.DISCONNECT_WITH_WILL))
    [will] = watch.expect()
    assert will.payload == b"gone:" + cid.encode()


def test_normal_disconnect_drops_the_will(client_factory):
    cid = unique_id("normal")
    will_topic = f"session/will/{cid}"
    watch = watcher(client_factory, will_topic)
    client, _ = session_client(client_factory, cid, 0, will=(will_topic, 0))
    client.disconnect()
    publisher = client_factory(protocol="5")
    publisher.connect()
    assert watch.received_before_sync(publisher) == []
