"""MQTT 5 subscriptions: options (No Local, Retain As Published, Retain
Handling 0/1/2), Subscription Identifiers, shared subscriptions
($share/<group>/<filter>, NanoMQ's $queue/<filter>) including the hand-over of
a leaving member's QoS 1/2 messages."""

from __future__ import annotations

from collections import Counter

from mqtt_client import unique_id, v5_properties
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions
from raw_client_v5 import RawV5Client

from nanomq_py.mqtt import properties as p
from nanomq_py.mqtt import reason_codes as rc
from nanomq_py.mqtt.packets import Puback, Publish, SubOptions, Subscribe, Unsuback, Unsubscribe


def v5_client(client_factory, **kwargs):
    client = client_factory(protocol="5", **kwargs)
    client.connect()
    return client


def sub_id(number):
    return v5_properties(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=number)


# -- options ------------------------------------------------------------------------


def test_no_local(client_factory):
    topic = f"subs/nolocal/{unique_id()}"
    client = v5_client(client_factory)
    client.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True))
    other = v5_client(client_factory)
    client.publish(topic, b"own", qos=1)
    other.publish(topic, b"other's", qos=1)
    [message] = client.expect()
    assert message.payload == b"other's"
    assert client.received_before_sync(other) == []


def test_without_no_local_own_messages_come_back(client_factory):
    topic = f"subs/local/{unique_id()}"
    client = v5_client(client_factory)
    client.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=False))
    client.publish(topic, b"own", qos=1)
    assert client.expect()[0].payload == b"own"


def test_retain_as_published(client_factory):
    topic = f"subs/rap/{unique_id()}"
    keeps_flag = v5_client(client_factory)
    keeps_flag.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
    clears_flag = v5_client(client_factory)
    clears_flag.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=False))
    publisher = v5_client(client_factory)
    publisher.publish(topic, b"live retained", qos=1, retain=True)
    assert keeps_flag.expect()[0].retain is True
    assert clears_flag.expect()[0].retain is False
    # A retained message sent because of a new subscription always has the flag.
    late = v5_client(client_factory)
    late.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=False))
    assert late.expect()[0].retain is True
    publisher.publish(topic, b"", qos=1, retain=True)


def _retained_after_subscribe(client, publisher, topic, handling):
    client.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=handling))
    return [m.payload for m in client.received_before_sync(publisher)]


def test_retain_handling(client_factory):
    topic = f"subs/rh/{unique_id()}"
    publisher = v5_client(client_factory)
    publisher.publish(topic, b"retained", qos=1, retain=True)
    client = v5_client(client_factory)
    send_always = SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE
    send_if_new = SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
    never = SubscribeOptions.RETAIN_DO_NOT_SEND
    assert _retained_after_subscribe(client, publisher, topic, send_always) == [b"retained"]
    assert _retained_after_subscribe(client, publisher, topic, send_always) == [b"retained"]  # again
    assert _retained_after_subscribe(client, publisher, topic, send_if_new) == []  # exists already
    client.unsubscribe(topic)
    assert _retained_after_subscribe(client, publisher, topic, send_if_new) == [b"retained"]  # new again
    client.unsubscribe(topic)
    assert _retained_after_subscribe(client, publisher, topic, never) == []
    publisher.publish(topic, b"", qos=1, retain=True)


# -- subscription identifiers ------------------------------------------------------


def test_subscription_identifiers_of_every_matching_subscription(client_factory):
    base = f"subs/ids/{unique_id()}"
    client = v5_client(client_factory)
    client.subscribe(base + "/#", 1, properties=sub_id(1))
    client.subscribe(base + "/+/c", 1, properties=sub_id(268435455))
    client.subscribe(base + "/x", 1)  # no identifier
    publisher = v5_client(client_factory)
    publisher.publish(base + "/b/c", b"both", qos=1)
    publisher.publish(base + "/b", b"first only", qos=1)
    publisher.publish(base + "/x", b"one with and one without", qos=1)
    both, first, mixed = client.expect(3)
    assert sorted(both.properties.SubscriptionIdentifier) == [1, 268435455]
    assert first.properties.SubscriptionIdentifier == [1]
    assert mixed.properties.SubscriptionIdentifier == [1]
    assert client.received_before_sync(publisher) == []  # one message per PUBLISH, not one per filter


def test_subscription_identifier_on_retained_messages_and_replaced_on_resubscribe(client_factory):
    topic = f"subs/ids-retained/{unique_id()}"
    publisher = v5_client(client_factory)
    publisher.publish(topic, b"retained", qos=1, retain=True)
    client = v5_client(client_factory)
    client.subscribe(topic, 1, properties=sub_id(7))
    assert client.expect()[0].properties.SubscriptionIdentifier == [7]
    client.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=2))  # no identifier now
    publisher.publish(topic, b"live", qos=1)
    [live] = client.received_before_sync(publisher)
    assert not hasattr(live.properties, "SubscriptionIdentifier")
    publisher.publish(topic, b"", qos=1, retain=True)


# -- shared subscriptions -----------------------------------------------------------


def test_shared_subscription_round_robin(client_factory):
    topic = f"subs/shared/{unique_id()}"
    members = [v5_client(client_factory) for _ in range(3)]
    for member in members:
        member.subscribe(f"$share/workers/{topic}", 1)
    everyone = v5_client(client_factory)
    everyone.subscribe(topic, 1)
    publisher = v5_client(client_factory)
    for index in range(6):
        publisher.publish(topic, b"%d" % index, qos=1)
    assert len(everyone.expect(6)) == 6
    received = [[m.payload for m in member.received_before_sync(publisher)] for member in members]
    assert sorted(sum(received, [])) == [b"%d" % i for i in range(6)]  # each message to one member
    assert [len(r) for r in received] == [2, 2, 2]


def test_shared_subscription_skips_a_member_that_left(client_factory):
    topic = f"subs/shared-left/{unique_id()}"
    stays = v5_client(client_factory)
    stays.subscribe(f"$share/g/{topic}", 1)
    session = v5_properties(PacketTypes.CONNECT, SessionExpiryInterval=60)
    leaves = client_factory(protocol="5")
    leaves.connect(properties=session)  # its session, and so its membership, outlives the connection
    leaves.subscribe(f"$share/g/{topic}", 1)
    leaves.disconnect()
    publisher = v5_client(client_factory)
    for index in range(4):
        publisher.publish(topic, b"%d" % index, qos=1)
    assert [m.payload for m in stays.expect(4)] == [b"0", b"1", b"2", b"3"]


def test_groups_are_independent(client_factory):
    topic = f"subs/shared-groups/{unique_id()}"
    a = v5_client(client_factory)
    a.subscribe(f"$share/a/{topic}", 1)
    b = v5_client(client_factory)
    b.subscribe(f"$share/b/{topic}", 1)
    publisher = v5_client(client_factory)
    publisher.publish(topic, b"to both groups", qos=1)
    assert a.expect()[0].payload == b"to both groups"
    assert b.expect()[0].payload == b"to both groups"


def test_queue_subscription(client_factory):
    topic = f"subs/queue/{unique_id()}"
    members = [v5_client(client_factory) for _ in range(2)]
    for member in members:
        member.subscribe(f"$queue/{topic}", 1)
    publisher = v5_client(client_factory)
    for index in range(4):
        publisher.publish(topic, b"%d" % index, qos=1)
    received = [[m.payload for m in member.received_before_sync(publisher)] for member in members]
    assert Counter(sum(received, [])) == Counter(b"%d" % i for i in range(4))
    assert [len(r) for r in received] == [2, 2]


def test_no_local_on_a_shared_subscription_is_a_protocol_error(broker):
    raw = RawV5Client(broker)
    raw.connect(unique_id("raw"))
    raw.send(Subscribe(1, [("$share/g/subs/x", SubOptions(1, no_local=True))]))
    raw.expect_disconnect(rc.PROTOCOL_ERROR)


def test_messages_of_a_leaving_member_go_to_another(broker, client_factory):
    """QoS 1 messages in flight (unacknowledged) and queued (beyond the
    member's Receive Maximum) to a member that leaves are handed to another."""
    topic = f"subs/shared-handover/{unique_id()}"
    leaving = RawV5Client(broker)
    leaving.connect(unique_id("leaving"), {p.RECEIVE_MAXIMUM: 1})
    leaving.subscribe(f"$share/h/{topic}", 1)
    staying = v5_client(client_factory)
    staying.subscribe(f"$share/h/{topic}", 1)
    publisher = v5_client(client_factory)
    for index in range(4):
        publisher.publish(topic, b"%d" % index, qos=1)
    # Round robin: 0 and 2 to the raw member (0 in flight, never acknowledged; 2 queued behind it).
    assert [m.payload for m in staying.expect(2)] == [b"1", b"3"]
    first = leaving.expect(Publish)
    assert first.payload == b"0"
    leaving.close()
    assert sorted(m.payload for m in staying.expect(2)) == [b"0", b"2"]
    assert staying.received_before_sync(publisher) == []


def test_an_unsubscribing_member_hands_over_what_it_has_not_started_to_receive(broker, client_factory):
    """On UNSUBSCRIBE the queued messages of that group go to another member; the
    one in flight is still the leaving member's to complete (MQTT 5 §3.10.4)."""
    topic = f"subs/shared-unsub/{unique_id()}"
    leaving = RawV5Client(broker)
    leaving.connect(unique_id("unsub"), {p.RECEIVE_MAXIMUM: 1})
    leaving.subscribe(f"$share/u/{topic}", 1)
    staying = v5_client(client_factory)
    staying.subscribe(f"$share/u/{topic}", 1)
    publisher = v5_client(client_factory)
    for index in range(4):
        publisher.publish(topic, b"%d" % index, qos=1)
    assert [m.payload for m in staying.expect(2)] == [b"1", b"3"]
    first = leaving.expect(Publish)
    assert first.payload == b"0"  # 2 waits behind it: Receive Maximum 1
    leaving.send(Unsubscribe(leaving.new_pid(), [f"$share/u/{topic}"]))
    assert leaving.expect(Unsuback).reason_codes == [rc.SUCCESS]
    assert [m.payload for m in staying.expect(1)] == [b"2"]
    leaving.send(Puback(first.packet_id))
    publisher.publish(topic, b"after", qos=1)
    assert [m.payload for m in staying.expect(1)] == [b"after"]
    assert staying.received_before_sync(publisher) == []
    leaving.close()


def test_acknowledged_messages_are_not_handed_over(broker, client_factory):
    topic = f"subs/shared-acked/{unique_id()}"
    leaving = RawV5Client(broker)
    leaving.connect(unique_id("leaving"))
    leaving.subscribe(f"$share/k/{topic}", 1)
    staying = v5_client(client_factory)
    staying.subscribe(f"$share/k/{topic}", 1)
    publisher = v5_client(client_factory)
    publisher.publish(topic, b"to the raw member", qos=1)
    message = leaving.expect(Publish)
    leaving.send(Puback(message.packet_id))
    leaving.close()
    assert staying.received_before_sync(publisher) == []
