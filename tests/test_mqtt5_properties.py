"""MQTT 5 property validation on the wire, reason codes on every ack, reason
strings when the client asks for problem information, and enhanced
authentication refused with 0x8C. Malformed input goes over a raw socket."""

from __future__ import annotations

import pytest
from mqtt_client import unique_id, v5_properties
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions
from raw_client_v5 import RawV5Client

from nanomq_py.mqtt import properties as p
from nanomq_py.mqtt import reason_codes as rc
from nanomq_py.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Puback,
    Pubcomp,
    Pubrec,
    Pubrel,
    Suback,
    Unsuback,
    Unsubscribe,
    Will,
)
from nanomq_py.mqtt.properties import encode_varint


def _utf8(text):
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _frame(first, body):
    return bytes((first,)) + encode_varint(len(body)) + body


def connect_bytes(property_bytes, client_id="raw"):
    """A v5 CONNECT whose property block is exactly `property_bytes` (length prefixed here)."""
    header = _utf8("MQTT") + bytes((5, 0x02)) + (60).to_bytes(2, "big")
    return _frame(0x10, header + encode_varint(len(property_bytes)) + property_bytes + _utf8(client_id))


def publish_bytes(property_bytes, topic="props/t", payload=b"x"):
    """A QoS 0 v5 PUBLISH whose property block is exactly `property_bytes`."""
    return _frame(0x30, _utf8(topic) + encode_varint(len(property_bytes)) + property_bytes + payload)


def ack_reason(client, info):
    """The reason code of the PUBACK/PUBCOMP that acknowledged a TestClient.publish(wait=False)."""
    return client._wait(info.mid)


def connected(broker, properties=None):
    raw = RawV5Client(broker)
    connack = raw.connect(unique_id("raw"), properties)
    assert connack.reason_code == 0
    return raw


BAD_CONNECT_PROPERTIES = [
    pytest.param(b"\x11\x00\x00\x00\x05" * 2, rc.PROTOCOL_ERROR, id="duplicate-session-expiry"),
    pytest.param(b"\x23\x00\x01", rc.PROTOCOL_ERROR, id="topic-alias-not-allowed-in-connect"),
    pytest.param(b"\x21\x00\x00", rc.PROTOCOL_ERROR, id="receive-maximum-zero"),
    pytest.param(b"\x17\x02", rc.PROTOCOL_ERROR, id="request-problem-information-2"),
    pytest.param(b"\x7f\x00", rc.MALFORMED_PACKET, id="unknown-property-id"),
    pytest.param(b"\x11\x00\x00", rc.MALFORMED_PACKET, id="truncated-four-byte-integer"),
]


@pytest.mark.parametrize("property_bytes, code", BAD_CONNECT_PROPERTIES)
def test_bad_connect_properties_are_refused_with_connack(broker, property_bytes, code):
    raw = RawV5Client(broker)
    raw.send_bytes(connect_bytes(property_bytes))
    connack = raw.expect(Connack)
    assert connack.reason_code == code
    assert not connack.session_present
    raw.expect_closed()


BAD_PUBLISH_PROPERTIES = [
    pytest.param(b"\x03" + _utf8("a") + b"\x03" + _utf8("b"), rc.PROTOCOL_ERROR, id="duplicate-content-type"),
    pytest.param(b"\x11\x00\x00\x00\x05", rc.PROTOCOL_ERROR, id="session-expiry-not-allowed-in-publish"),
    pytest.param(b"\x01\x05", rc.PROTOCOL_ERROR, id="payload-format-indicator-5"),
    pytest.param(b"\x23\x00\x00", rc.PROTOCOL_ERROR, id="topic-alias-zero"),
    pytest.param(b"\x0b\x01", rc.PROTOCOL_ERROR, id="subscription-identifier-from-client"),
    pytest.param(b"\x7f", rc.MALFORMED_PACKET, id="unknown-property-id"),
    pytest.param(b"\x03\x00\x09ab", rc.MALFORMED_PACKET, id="string-longer-than-the-block"),
    pytest.param(
        b"\x26" + _utf8("k") + b"\x00\x02\xff\xfe", rc.MALFORMED_PACKET, id="user-property-not-utf8"
    ),
]


@pytest.mark.parametrize("property_bytes, code", BAD_PUBLISH_PROPERTIES)
def test_bad_publish_properties_end_the_connection_with_disconnect(broker, property_bytes, code):
    raw = connected(broker)
    raw.send_bytes(publish_bytes(property_bytes))
    disconnect = raw.expect_disconnect(code)
    assert p.REASON_STRING in disconnect.properties  # problem information is requested by default


BAD_OTHER_PACKETS = [
    pytest.param(0x40, (1).to_bytes(2, "big") + b"\x00\x03\x23\x00\x01", id="puback-with-topic-alias"),
    pytest.param(0x62, (1).to_bytes(2, "big") + b"\x00\x02\x01\x01", id="pubrel-with-payload-format"),
    pytest.param(
        0xA2, (1).to_bytes(2, "big") + b"\x05\x11\x00\x00\x00\x01" + _utf8("a"), id="unsubscribe-with-expiry"
    ),
    pytest.param(0xE0, b"\x00\x0a" + b"\x11\x00\x00\x00\x00" * 2, id="disconnect-duplicate-expiry"),
]


@pytest.mark.parametrize("first, body", BAD_OTHER_PACKETS)
def test_bad_properties_in_other_packets_are_protocol_errors(broker, first, body):
    raw = connected(broker)
    raw.send_bytes(_frame(first, body))
    raw.expect_disconnect(rc.PROTOCOL_ERROR)


def test_bad_will_properties_are_refused_with_connack(broker):
    header = _utf8("MQTT") + bytes((5, 0x06)) + (60).to_bytes(2, "big") + b"\x00" + _utf8("raw-will")
    will = b"\x03\x23\x00\x01" + _utf8("props/will") + _utf8("bye")  # Topic Alias is not a will property
    raw = RawV5Client(broker)
    raw.send_bytes(_frame(0x10, header + will))
    assert raw.expect(Connack).reason_code == rc.PROTOCOL_ERROR
    raw.expect_closed()


def test_property_block_longer_than_the_packet_is_malformed(broker):
    raw = connected(broker)
    body = _utf8("props/t") + encode_varint(40) + b"\x01\x00"
    raw.send_bytes(_frame(0x30, body))
    raw.expect_disconnect(rc.MALFORMED_PACKET)


def test_subscribe_with_two_subscription_identifiers_is_a_protocol_error(broker):
    raw = connected(broker)
    body = (1).to_bytes(2, "big") + b"\x04\x0b\x01\x0b\x02" + _utf8("props/#") + b"\x00"
    raw.send_bytes(_frame(0x82, body))
    raw.expect_disconnect(rc.PROTOCOL_ERROR)


def test_no_reason_string_when_problem_information_is_not_requested(broker):
    raw = connected(broker, {p.REQUEST_PROBLEM_INFORMATION: 0})
    raw.send_bytes(publish_bytes(b"\x11\x00\x00\x00\x05"))
    disconnect = raw.expect_disconnect(rc.PROTOCOL_ERROR)
    assert p.REASON_STRING not in disconnect.properties


def test_reason_string_left_out_when_it_would_exceed_the_clients_maximum_packet_size(broker):
    raw = connected(broker, {p.MAXIMUM_PACKET_SIZE: 16})
    raw.send_bytes(publish_bytes(b"\x11\x00\x00\x00\x05"))
    disconnect = raw.expect_disconnect(rc.PROTOCOL_ERROR)
    assert p.REASON_STRING not in disconnect.properties


def test_second_connect_is_a_protocol_error(broker):
    raw = connected(broker)
    raw.send(Connect("MQTT", 5, True, 60, unique_id("again")))
    raw.expect_disconnect(rc.PROTOCOL_ERROR)


# -- enhanced authentication ---------------------------------------------------


def test_authentication_method_in_connect_is_refused_with_0x8c(broker):
    raw = RawV5Client(broker)
    connack = raw.connect(
        unique_id("auth"), {p.AUTHENTICATION_METHOD: "SCRAM-SHA-1", p.AUTHENTICATION_DATA: b"x"}
    )
    assert connack.reason_code == rc.BAD_AUTHENTICATION_METHOD
    assert connack.properties[p.REASON_STRING] == "bad authentication method"
    raw.expect_closed()


def test_authentication_method_refused_for_paho(client_factory):
    client = client_factory(protocol="5", reconnect_on_failure=False)
    props = v5_properties(PacketTypes.CONNECT, AuthenticationMethod="SCRAM-SHA-1")
    _, reason, _ = client.connect(properties=props, expect_success=False)
    assert reason.value == rc.BAD_AUTHENTICATION_METHOD


def test_auth_packet_without_authentication_method_is_a_protocol_error(broker):
    raw = connected(broker)
    raw.send(Auth(rc.RE_AUTHENTICATE, {p.AUTHENTICATION_METHOD: "SCRAM-SHA-1"}))
    raw.expect_disconnect(rc.PROTOCOL_ERROR)


# -- reason codes on acks --------------------------------------------------------


def test_puback_and_pubrec_say_no_matching_subscribers(broker):
    raw = connected(broker)
    topic = f"props/nobody/{unique_id()}"
    pid = raw.publish(topic, b"x", qos=1)
    assert raw.expect(Puback) == Puback(pid, rc.NO_MATCHING_SUBSCRIBERS)
    pid = raw.publish(topic, b"x", qos=2)
    assert raw.expect(Pubrec) == Pubrec(pid, rc.NO_MATCHING_SUBSCRIBERS)
    raw.send(Pubrel(pid))
    assert raw.expect(Pubcomp) == Pubcomp(pid)


def test_acks_succeed_with_a_subscriber(broker):
    raw = connected(broker)
    topic = f"props/somebody/{unique_id()}"
    raw.subscribe(topic, 0)
    pid = raw.publish(topic, b"x", qos=1)
    packets = [raw.read(), raw.read()]  # the PUBLISH to ourselves and the PUBACK, in either order
    assert Puback(pid) in packets


def test_pubrel_and_pubcomp_for_unknown_packet_ids_say_not_found(broker):
    raw = connected(broker)
    raw.send(Pubrel(77))
    assert raw.expect(Pubcomp) == Pubcomp(77, rc.PACKET_IDENTIFIER_NOT_FOUND)


def test_unsuback_says_no_subscription_existed(broker):
    raw = connected(broker)
    topic = f"props/unsub/{unique_id()}"
    raw.subscribe(topic, 1)
    raw.send(Unsubscribe(9, [topic, topic + "/never"]))
    assert raw.expect(Unsuback).reason_codes == [rc.SUCCESS, rc.NO_SUBSCRIPTION_EXISTED]


def test_suback_reason_codes_and_reason_string(broker):
    raw = connected(broker)
    raw.send_bytes(
        _frame(
            0x82,
            (3).to_bytes(2, "big") + b"\x00" + _utf8("props/ok") + b"\x02" + _utf8("props/#/bad") + b"\x01",
        )
    )
    suback = raw.expect(Suback)
    assert suback.reason_codes == [rc.GRANTED_QOS_2, rc.TOPIC_FILTER_INVALID]
    assert "props/#/bad" in suback.properties[p.REASON_STRING]


def test_suback_codes_for_paho(client_factory):
    client = client_factory(protocol="5")
    client.connect()
    codes = client.subscribe(
        [("props/a", SubscribeOptions(qos=1)), ("$share/no-filter", SubscribeOptions(qos=0))]
    )
    assert [c.value for c in codes] == [rc.GRANTED_QOS_1, rc.TOPIC_FILTER_INVALID]


def test_non_utf8_payload_with_format_indicator_is_refused_with_0x99(client_factory):
    publisher = client_factory(protocol="5")
    publisher.connect()
    subscriber = client_factory(protocol="5")
    subscriber.connect()
    topic = f"props/pfi/{unique_id()}"
    subscriber.subscribe(topic, 1)
    utf8 = v5_properties(PayloadFormatIndicator=1)
    info = publisher.publish(topic, b"\xff\xfe not text", qos=1, properties=utf8, wait=False)
    assert ack_reason(publisher, info).value == rc.PAYLOAD_FORMAT_INVALID
    info = publisher.publish(topic, "text é".encode(), qos=1, properties=utf8, wait=False)
    assert ack_reason(publisher, info).value == rc.SUCCESS
    [message] = subscriber.expect()
    assert message.payload == "text é".encode()
    assert message.properties.PayloadFormatIndicator == 1
    assert subscriber.received_before_sync(publisher) == []


def test_non_utf8_qos0_payload_with_format_indicator_disconnects_with_0x99(broker):
    raw = connected(broker)
    raw.publish("props/pfi0", b"\xc3\x28", 0, {p.PAYLOAD_FORMAT_INDICATOR: 1})
    raw.expect_disconnect(rc.PAYLOAD_FORMAT_INVALID)


def test_non_utf8_will_payload_with_format_indicator_is_refused_with_0x99(broker):
    raw = RawV5Client(broker)
    will = Will("props/will", b"\xff\xfe", 0, False, {p.PAYLOAD_FORMAT_INDICATOR: 1})
    assert raw.connect(unique_id("will-pfi"), will=will).reason_code == rc.PAYLOAD_FORMAT_INVALID
    raw.expect_closed()
