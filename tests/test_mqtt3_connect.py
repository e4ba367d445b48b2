"""MQTT 3.1 / 3.1.1 CONNECT and CONNACK on a real socket: validation, client
id rules, every CONNACK return code, and connections that must be closed."""

from __future__ import annotations

import pytest
from mqtt_client import unique_id
from raw_client import (
    RawClient,
    connect_unthreaded,
    fast_client_factory,  # noqa: F401 (the client_factory fixture)
)

from nanomq_py.mqtt.packets import Connack, Connect, Pingreq, Publish, SubOptions, Subscribe, Will

ACCEPTED = 0
UNACCEPTABLE_PROTOCOL_VERSION = 1
IDENTIFIER_REJECTED = 2
SERVER_UNAVAILABLE = 3
BAD_USERNAME_OR_PASSWORD = 4
NOT_AUTHORIZED = 5


def connect_bytes(name=b"MQTT", level=4, flags=0x02, client_id=b"raw"):
    """A CONNECT built by hand, for the fields the codec would refuse to encode."""
    body = len(name).to_bytes(2, "big") + name + bytes((level, flags)) + b"\x00\x3c"
    body += len(client_id).to_bytes(2, "big") + client_id
    return bytes((0x10, len(body))) + body


@pytest.mark.parametrize("protocol", ["3.1", "3.1.1"])
def test_paho_connects_and_gets_connack_accepted(client_factory, protocol):
    client = client_factory(protocol=protocol)
    flags, reason_code, _ = client.connect()
    assert reason_code.value == ACCEPTED
    assert not flags.session_present
    client.subscribe("connect/echo", 1)
    client.publish("connect/echo", b"hello", qos=1)
    assert client.expect()[0].payload == b"hello"


def test_zero_length_id_with_clean_session_gets_an_assigned_id(broker):
    with RawClient(broker) as client:
        connack = client.connect("", clean=True)
        assert connack == Connack(False, ACCEPTED)
        assert client.subscribe("connect/assigned", qos=1) == [1]
        client.publish_acked("connect/assigned", b"me", qos=1)
        assert client.expect(Publish).payload == b"me"


def test_two_clients_with_zero_length_ids_are_distinct(broker):
    with RawClient(broker) as first, RawClient(broker) as second:
        assert first.connect("").reason_code == ACCEPTED
        assert second.connect("").reason_code == ACCEPTED
        first.ping()  # not taken over by the second
        second.ping()


def test_zero_length_id_without_clean_session_is_rejected(broker):
    with RawClient(broker) as client:
        assert client.connect("", clean=False) == Connack(False, IDENTIFIER_REJECTED)
        client.assert_closed()


@pytest.mark.parametrize("clean", [True, False])
def test_mqtt31_rejects_a_zero_length_id(broker, clean):
    with RawClient(broker, version=3) as client:
        assert client.connect("", clean=clean) == Connack(False, IDENTIFIER_REJECTED)
        client.assert_closed()


@pytest.mark.parametrize(("name", "level"), [(b"MQTT", 6), (b"MQTT", 3), (b"MQIsdp", 4), (b"MQTT", 0)])
def test_unsupported_protocol_level_gets_connack_1_and_close(broker, name, level):
    with RawClient(broker) as client:
        client.send_bytes(connect_bytes(name, level))
        assert client.wait_closed() == [Connack(False, UNACCEPTABLE_PROTOCOL_VERSION)]


def test_wrong_protocol_name_is_closed_without_accepting(broker):
    with RawClient(broker) as client:
        client.send_bytes(connect_bytes(b"HTTP", 4))
        assert all(packet.reason_code != ACCEPTED for packet in client.wait_closed())


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (0x03, "reserved flag set"),
        (0x12, "will QoS set without the will flag"),
        (0x22, "will retain set without the will flag"),
        (0x1E, "will QoS 3"),
        (0x42, "password without user name"),
    ],
)
def test_invalid_connect_flags_close_the_connection(broker, flags, why):
    with RawClient(broker) as client:
        client.send_bytes(connect_bytes(flags=flags))
        client.assert_closed()


@pytest.mark.parametrize(
    "first",
    [
        Pingreq(),
        Publish("connect/early", b"x"),
        Subscribe(1, [("connect/early", SubOptions(0))]),
    ],
    ids=["PINGREQ", "PUBLISH", "SUBSCRIBE"],
)
def test_first_packet_other_than_connect_closes(broker, first):
    with RawClient(broker) as client:
        client.send(first)
        client.assert_closed()


def test_second_connect_closes_the_connection(broker):
    with RawClient(broker) as client:
        client.connect(unique_id("twice"))
        client.send(Connect("MQTT", 4, True, 60, unique_id("twice")))
        client.assert_closed()


def test_second_connect_in_the_same_write_closes(broker):
    from nanomq_py.mqtt.codec import encode

    with RawClient(broker) as client:
        connect = encode(Connect("MQTT", 4, True, 60, unique_id("twice")), 4)
        client.send_bytes(connect + connect)
        assert client.wait_closed() == [Connack(False, ACCEPTED)]


def test_invalid_utf8_client_id_closes(broker):
    with RawClient(broker) as client:
        client.send_bytes(connect_bytes(client_id=b"\xff\xfe"))
        client.assert_closed()


def test_will_topic_with_wildcard_closes(broker):
    with RawClient(broker) as client:
        client.send(Connect("MQTT", 4, True, 60, unique_id("will"), will=Will("connect/+/will", b"x")))
        assert all(packet.reason_code != ACCEPTED for packet in client.wait_closed())


def test_session_present_flag(broker):
    client_id = unique_id("present")
    with RawClient(broker) as client:
        assert client.connect(client_id, clean=False) == Connack(False, ACCEPTED)
        client.disconnect()
    with RawClient(broker) as client:
        assert client.connect(client_id, clean=False) == Connack(True, ACCEPTED)
        client.disconnect()
    with RawClient(broker) as client:
        # Clean session: the old session is discarded and session present is 0 (MQTT-3.2.2-1).
        assert client.connect(client_id, clean=True) == Connack(False, ACCEPTED)
        client.disconnect()
    with RawClient(broker) as client:
        assert client.connect(client_id, clean=False) == Connack(False, ACCEPTED)
        client.disconnect()


def test_mqtt31_connack_has_no_session_present_flag(broker, client_factory):
    """In 3.1 the first CONNACK byte is reserved: 0 even when the session is resumed."""
    client_id = unique_id("v31-present")
    topic = f"connect/v31/{client_id}"
    with RawClient(broker, version=3) as client:
        assert client.connect(client_id, clean=False) == Connack(False, ACCEPTED)
        client.subscribe(topic, qos=1)
        client.disconnect()
    publisher = client_factory()
    publisher.connect()
    publisher.publish(topic, b"kept for you", qos=1)
    with RawClient(broker, version=3) as client:
        assert client.connect(client_id, clean=False) == Connack(False, ACCEPTED)
        assert client.expect(Publish).payload == b"kept for you"  # the session was resumed all the same


def test_mqtt31_accepts_a_long_client_id(broker):
    """3.1 said 23 characters at most; like Mosquitto, longer ids are accepted."""
    with RawClient(broker, version=3) as client:
        assert client.connect("x" * 64).reason_code == ACCEPTED
        client.ping()


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory):
    from broker_process import start_broker

    conf = 'auth { allow_anonymous = false, password { "alice" = "secret" } }\n'
    proc = start_broker(tmp_path_factory.mktemp("auth"), conf)
    yield proc
    proc.stop()


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize(
    ("username", "password", "code"),
    [
        ("alice", b"secret", ACCEPTED),
        ("alice", b"wrong", BAD_USERNAME_OR_PASSWORD),
        ("mallory", b"secret", BAD_USERNAME_OR_PASSWORD),
        ("alice", None, BAD_USERNAME_OR_PASSWORD),
        (None, None, NOT_AUTHORIZED),
    ],
)
def test_credentials_connack_codes(auth_broker, version, username, password, code):
    with RawClient(auth_broker, version=version) as client:
        assert client.connect(unique_id("auth"), username=username, password=password) == Connack(False, code)
        if code == ACCEPTED:
            client.ping()
        else:
            client.assert_closed()


@pytest.mark.parametrize("protocol", ["3.1", "3.1.1"])
def test_paho_sees_refused_credentials(auth_broker, client_factory, protocol):
    refused = client_factory(auth_broker, protocol=protocol)
    refused.paho.username_pw_set("alice", "wrong")
    _, reason_code, _ = connect_unthreaded(refused)
    assert reason_code.is_failure
    assert str(reason_code) == "Bad user name or password"

    client = client_factory(auth_broker, protocol=protocol)
    client.paho.username_pw_set("alice", "secret")
    client.connect()


def test_refused_connect_publishes_no_will(auth_broker, client_factory):
    topic = f"connect/refused-will/{unique_id()}"
    watch = client_factory(auth_broker)
    watch.paho.username_pw_set("alice", "secret")
    watch.connect()
    watch.subscribe(topic, 1)
    with RawClient(auth_broker) as client:
        connack = client.connect(
            unique_id("bad"), will=Will(topic, b"never"), username="alice", password=b"x"
        )
        assert connack.reason_code == BAD_USERNAME_OR_PASSWORD
        client.assert_closed()
    publisher = client_factory(auth_broker)
    publisher.paho.username_pw_set("alice", "secret")
    publisher.connect()
    assert watch.received_before_sync(publisher) == []


def test_server_unavailable_and_connect_timeout(broker_factory):
    broker = broker_factory('mqtt { max_connections = 1, connect_timeout = "1s" }\n')
    silent = RawClient(broker)  # never sends CONNECT: closed once connect_timeout passes
    with RawClient(broker) as first:
        assert first.connect(unique_id("first")).reason_code == ACCEPTED
        with RawClient(broker) as second:
            assert second.connect(unique_id("second")) == Connack(False, SERVER_UNAVAILABLE)
            second.assert_closed()
        first.ping()
    with silent:
        silent.assert_closed(timeout=5)
