"""MQTT 5 flow control and capabilities: Topic Alias both ways, Receive Maximum
both ways, Maximum Packet Size both ways, what CONNACK announces (Maximum QoS,
Retain / Wildcard / Shared Subscription Available, Assigned Client Identifier)
and the broker holding clients to it."""

from __future__ import annotations

import pytest
from mqtt_client import unique_id, v5_properties
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions
from raw_client_v5 import RawV5Client

from nanomq_py.mqtt import properties as p
from nanomq_py.mqtt import reason_codes as rc
from nanomq_py.mqtt.packets import Puback, Publish, Pubrec, Will


def v5_client(client_factory, target=None, properties=None, **kwargs):
    client = client_factory(target, protocol="5", **kwargs)
    client.connect(properties=properties)
    return client


def raw_connected(broker, properties=None):
    raw = RawV5Client(broker)
    connack = raw.connect(unique_id("raw"), properties)
    assert connack.reason_code == 0
    return raw, connack


@pytest.fixture(scope="module")
def alias_broker(tmp_path_factory):
    from broker_process import start_broker

    proc = start_broker(tmp_path_factory.mktemp("alias"), "mqtt { max_topic_alias = 10 }")
    yield proc
    proc.stop()


# -- topic aliases, client to broker -----------------------------------------------


def test_connack_announces_the_topic_alias_maximum(alias_broker):
    _, connack = raw_connected(alias_broker)
    assert connack.properties[p.TOPIC_ALIAS_MAXIMUM] == 10


def test_client_topic_alias_is_resolved(alias_broker, client_factory):
    topic = f"flow/alias-in/{unique_id()}"
    subscriber = v5_client(client_factory, alias_broker)
    subscriber.subscribe(topic, 1)
    publisher = v5_client(client_factory, alias_broker)
    publisher.publish(topic, b"sets alias", qos=1, properties=v5_properties(TopicAlias=10))
    publisher.publish("", b"uses alias", qos=1, properties=v5_properties(TopicAlias=10))
    first, second = subscriber.expect(2)
    assert (first.topic, first.payload) == (topic, b"sets alias")
    assert (second.topic, second.payload) == (topic, b"uses alias")
    assert not hasattr(second.properties, "TopicAlias")  # inbound aliases are not forwarded


def test_topic_alias_above_the_maximum_is_0x94(alias_broker):
    raw, _ = raw_connected(alias_broker)
    raw.publish("flow/alias", b"x", 1, {p.TOPIC_ALIAS: 11})
    raw.expect_disconnect(rc.TOPIC_ALIAS_INVALID)


def test_topic_alias_when_the_broker_accepts_none_is_0x94(broker):
    raw, connack = raw_connected(broker)
    assert connack.properties[p.TOPIC_ALIAS_MAXIMUM] == 0
    raw.publish("flow/alias", b"x", 0, {p.TOPIC_ALIAS: 1})
    raw.expect_disconnect(rc.TOPIC_ALIAS_INVALID)


def test_unknown_topic_alias_is_a_protocol_error(alias_broker):
    raw, _ = raw_connected(alias_broker)
    raw.publish("", b"x", 1, {p.TOPIC_ALIAS: 4})
    raw.expect_disconnect(rc.PROTOCOL_ERROR)


# -- topic aliases, broker to client ------------------------------------------------


def test_broker_gives_aliases_up_to_the_clients_maximum(broker, client_factory):
    prefix = f"flow/alias-out/{unique_id()}"
    raw, _ = raw_connected(broker, {p.TOPIC_ALIAS_MAXIMUM: 2})
    raw.subscribe(prefix + "/#", 0)
    raw.subscribe("s/#", 0)
    publisher = v5_client(client_factory)
    sends = [("/first", b"1"), ("/first", b"2"), ("/second", b"3"), ("/third", b"4"), ("/second", b"5")]
    for suffix, payload in sends:
        publisher.publish(prefix + suffix, payload, qos=1)
    publisher.publish("s/short", b"6", qos=1)
    received = [raw.expect(Publish) for _ in range(6)]
    seen = [(m.topic, m.properties.get(p.TOPIC_ALIAS), m.payload) for m in received]
    assert seen == [
        (prefix + "/first", 1, b"1"),  # topic and a new alias
        ("", 1, b"2"),  # the alias alone
        (prefix + "/second", 2, b"3"),
        (prefix + "/third", None, b"4"),  # the client's maximum is reached: the full topic
        ("", 2, b"5"),
        ("s/short", None, b"6"),  # too short for an alias to pay
    ]


def test_no_aliases_for_clients_that_do_not_accept_them(client_factory):
    topic = f"flow/alias-none/{unique_id()}"
    subscriber = v5_client(client_factory)
    subscriber.subscribe(topic, 0)
    publisher = v5_client(client_factory)
    for _ in range(2):
        publisher.publish(topic, b"x", qos=1)
    assert [m.topic for m in subscriber.expect(2)] == [topic, topic]


# -- Receive Maximum -------------------------------------------------------------------


def test_broker_respects_the_clients_receive_maximum(broker, client_factory):
    topic = f"flow/recvmax/{unique_id()}"
    raw, _ = raw_connected(broker, {p.RECEIVE_MAXIMUM: 2})
    raw.subscribe(topic, 1)
    raw.subscribe(topic + "/sync", 0)  # QoS 0 is not limited: a marker that shows what arrived before
    publisher = v5_client(client_factory)
    for index in range(5):
        publisher.publish(topic, b"%d" % index, qos=1)
    publisher.publish(topic + "/sync", b"marker", qos=1)
    packets = []
    while True:
        packet = raw.expect(Publish)
        if packet.topic.endswith("/sync"):
            break
        packets.append(packet)
    assert [pk.payload for pk in packets] == [b"0", b"1"]
    raw.send(Puback(packets[0].packet_id))
    assert raw.expect(Publish).payload == b"2"
    raw.send(Puback(packets[1].packet_id))
    assert raw.expect(Publish).payload == b"3"


def test_client_exceeding_the_brokers_receive_maximum_is_0x93(broker_factory):
    small = broker_factory("mqtt { max_awaiting_rel = 2 }")
    raw, connack = raw_connected(small)
    assert connack.properties[p.RECEIVE_MAXIMUM] == 2
    for _ in range(2):
        pid = raw.publish("flow/qos2", b"x", 2)
        assert raw.expect(Pubrec).packet_id == pid
    raw.publish("flow/qos2", b"x", 2)  # a third QoS 2 message before any PUBREL
    raw.expect_disconnect(rc.RECEIVE_MAXIMUM_EXCEEDED)


def test_max_awaiting_rel_zero_means_the_protocols_limit(broker_factory):
    unlimited = broker_factory("mqtt { max_awaiting_rel = 0 }")
    raw, connack = raw_connected(unlimited)
    assert connack.properties[p.RECEIVE_MAXIMUM] == 65535
    pid = raw.publish("flow/qos2", b"x", 2)
    assert raw.expect(Pubrec).packet_id == pid


# -- Maximum Packet Size ------------------------------------------------------------------


def test_message_too_large_for_a_subscriber_is_not_sent_to_it(client_factory):
    topic = f"flow/maxsize/{unique_id()}"
    small = v5_client(client_factory, properties=v5_properties(PacketTypes.CONNECT, MaximumPacketSize=200))
    small.subscribe(topic, 1)
    large = v5_client(client_factory)
    large.subscribe(topic, 1)
    publisher = v5_client(client_factory)
    publisher.publish(topic, b"x" * 300, qos=1)
    publisher.publish(topic, b"fits", qos=1)
    assert [m.payload for m in large.expect(2)] == [b"x" * 300, b"fits"]
    assert [m.payload for m in small.received_before_sync(publisher)] == [b"fits"]


def test_packet_larger_than_the_brokers_maximum_is_0x95(broker_factory):
    small = broker_factory("mqtt { max_packet_size = 1KB }")
    raw, connack = raw_connected(small)
    assert connack.properties[p.MAXIMUM_PACKET_SIZE] == 1024
    raw.publish("flow/big", b"x" * 2000, 0)
    raw.expect_disconnect(rc.PACKET_TOO_LARGE)


# -- what CONNACK announces -------------------------------------------------------------


def test_default_capabilities_in_connack(broker):
    _, connack = raw_connected(broker)
    props = connack.properties
    # Absent means "available" / QoS 2 for these; the broker says nothing it need not say.
    for absent in (
        p.MAXIMUM_QOS,
        p.RETAIN_AVAILABLE,
        p.WILDCARD_SUBSCRIPTION_AVAILABLE,
        p.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        p.SHARED_SUBSCRIPTION_AVAILABLE,
        p.ASSIGNED_CLIENT_IDENTIFIER,
    ):
        assert absent not in props
    assert props[p.RECEIVE_MAXIMUM] >= 1
    assert props[p.MAXIMUM_PACKET_SIZE] == 10 * 1024 * 1024


LIMITED = """mqtt {
  max_qos = 1
  retain_available = false
  wildcard_subscription = false
  shared_subscription = false
}"""


@pytest.fixture(scope="module")
def limited_broker(tmp_path_factory):
    from broker_process import start_broker

    proc = start_broker(tmp_path_factory.mktemp("limited"), LIMITED)
    yield proc
    proc.stop()


def test_limited_capabilities_in_connack(limited_broker, client_factory):
    client = client_factory(limited_broker, protocol="5")
    _, _, props = client.connect()
    assert props.MaximumQoS == 1
    assert props.RetainAvailable == 0
    assert props.WildcardSubscriptionAvailable == 0
    assert props.SharedSubscriptionAvailable == 0


def test_limited_broker_refuses_what_it_does_not_offer(limited_broker, client_factory):
    client = v5_client(client_factory, limited_broker)
    codes = client.subscribe(
        [
            ("flow/limited", SubscribeOptions(qos=2)),
            ("flow/+", SubscribeOptions(qos=0)),
            ("$share/g/flow/limited", SubscribeOptions(qos=0)),
        ]
    )
    assert [c.value for c in codes] == [
        rc.GRANTED_QOS_1,
        rc.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
        rc.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
    ]


@pytest.mark.parametrize(
    "qos, retain, code",
    [(2, False, rc.QOS_NOT_SUPPORTED), (1, True, rc.RETAIN_NOT_SUPPORTED)],
    ids=["qos2", "retain"],
)
def test_limited_broker_disconnects_publishes_beyond_its_limits(limited_broker, qos, retain, code):
    raw, _ = raw_connected(limited_broker)
    raw.publish("flow/limited", b"x", qos, retain=retain)
    raw.expect_disconnect(code)


@pytest.mark.parametrize(
    "will, code",
    [
        (Will("flow/will", b"x", 2), rc.QOS_NOT_SUPPORTED),
        (Will("flow/will", b"x", 0, True), rc.RETAIN_NOT_SUPPORTED),
    ],
    ids=["qos2", "retain"],
)
def test_limited_broker_refuses_wills_beyond_its_limits(limited_broker, will, code):
    raw = RawV5Client(limited_broker)
    assert raw.connect(unique_id("will"), will=will).reason_code == code
    raw.expect_closed()


def test_assigned_client_identifier(client_factory):
    session = v5_properties(PacketTypes.CONNECT, SessionExpiryInterval=60)
    client = client_factory(client_id="", protocol="5")
    _, _, props = client.connect(properties=session)
    assigned = props.AssignedClientIdentifier
    assert assigned
    client.disconnect()
    # The identifier is the session's: reconnecting with it finds the session.
    again = client_factory(client_id=assigned, protocol="5")
    flags, _, props = again.connect(properties=session, clean_start=False)
    assert flags.session_present
    assert not hasattr(props, "AssignedClientIdentifier")


# -- Server Keep Alive ---------------------------------------------------------------


def test_server_keep_alive_caps_a_v5_clients_keepalive(broker_factory):
    capped = broker_factory("mqtt { max_keepalive = 30 }")
    raw = RawV5Client(capped)
    connack = raw.connect(unique_id("ka"), keepalive=120)
    assert connack.reason_code == 0
    assert connack.properties[p.SERVER_KEEP_ALIVE] == 30
    within = RawV5Client(capped)
    connack = within.connect(unique_id("ka"), keepalive=20)
    assert p.SERVER_KEEP_ALIVE not in connack.properties


def test_a_v3_client_asking_more_than_max_keepalive_is_refused(broker_factory):
    from raw_client import RawClient

    capped = broker_factory("mqtt { max_keepalive = 30 }")
    raw = RawClient(capped)
    assert raw.connect(unique_id("ka3"), keepalive=120).reason_code == 2
    assert RawClient(capped).connect(unique_id("ka3"), keepalive=30).reason_code == 0
