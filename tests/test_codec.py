"""Codec round trips, spec byte vectors, incremental framing and every malformed/protocol-error rule."""

import pytest

from nanomq_py.mqtt import properties as P
from nanomq_py.mqtt import reason_codes as RC
from nanomq_py.mqtt.codec import FrameReader, decode, encode, encode_publish_parts
from nanomq_py.mqtt.errors import (
    MalformedPacket,
    MQTTError,
    PacketTooLarge,
    ProtocolError,
    UnsupportedProtocolVersion,
)
from nanomq_py.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    SubOptions,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)

PROTO_NAME = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}


def packets_for(version):
    """A table of packets covering every type and option that exists in ``version``."""
    v5 = version == 5
    props = {P.USER_PROPERTY: [("k", "v"), ("k", "w")], P.REASON_STRING: "why"} if v5 else P.NO_PROPERTIES
    publish_props = (
        {
            P.PAYLOAD_FORMAT_INDICATOR: 1,
            P.MESSAGE_EXPIRY_INTERVAL: 3600,
            P.CONTENT_TYPE: "text/plain",
            P.RESPONSE_TOPIC: "reply/here",
            P.CORRELATION_DATA: b"\x00\x01",
            P.TOPIC_ALIAS: 3,
            P.SUBSCRIPTION_IDENTIFIER: [1, 268435455],
            P.USER_PROPERTY: [("a", "b")],
        }
        if v5
        else P.NO_PROPERTIES
    )
    name = PROTO_NAME[version]
    table = [
        Connect(proto_name=name, proto_ver=version, client_id="client-1"),
        Connect(
            proto_name=name,
            proto_ver=version,
            clean_start=False,
            keepalive=0,
            client_id="",
            username="user",
            password=b"\xffpass",
            will=Will(
                "will/topic",
                b"bye",
                2,
                True,
                {P.WILL_DELAY_INTERVAL: 5, P.CONTENT_TYPE: "x", P.USER_PROPERTY: [("u", "1")]}
                if v5
                else P.NO_PROPERTIES,
            ),
            properties={
                P.SESSION_EXPIRY_INTERVAL: 60,
                P.RECEIVE_MAXIMUM: 10,
                P.MAXIMUM_PACKET_SIZE: 1024,
                P.TOPIC_ALIAS_MAXIMUM: 5,
                P.REQUEST_RESPONSE_INFORMATION: 1,
                P.REQUEST_PROBLEM_INFORMATION: 0,
                P.AUTHENTICATION_METHOD: "SCRAM",
                P.AUTHENTICATION_DATA: b"data",
            }
            if v5
            else P.NO_PROPERTIES,
        ),
        Connect(proto_name=name, proto_ver=version, client_id="w", will=Will("t", b"", 0, False)),
        Connack(False, 0),
        Connack(version != 3, 0),
        Connack(False, RC.NOT_AUTHORIZED if v5 else RC.CONNACK_V3_NOT_AUTHORIZED),
        Publish("a/b", b"payload", 0),
        Publish("a/b", b"", 1, True, True, 65535),
        Publish("x" * 300, b"y" * 70000, 2, False, False, 1, publish_props),
        Puback(1),
        Pubrec(2),
        Pubrel(3),
        Pubcomp(65535),
        Subscribe(1, [("a/+", SubOptions(0)), ("b/#", SubOptions(1)), ("$share/g/c", SubOptions(2))]),
        Suback(1, [0, 1, 2, 0x80]),
        Unsubscribe(7, ["a/+", "b"]),
        Unsuback(7, [0, 0x11] if v5 else ()),
        Pingreq(),
        Pingresp(),
        Disconnect(),
    ]
    if v5:
        table += [
            Connack(
                True,
                0,
                {
                    P.ASSIGNED_CLIENT_IDENTIFIER: "auto-1",
                    P.SERVER_KEEP_ALIVE: 30,
                    P.MAXIMUM_QOS: 1,
                    P.RETAIN_AVAILABLE: 0,
                    P.WILDCARD_SUBSCRIPTION_AVAILABLE: 1,
                    P.SUBSCRIPTION_IDENTIFIER_AVAILABLE: 0,
                    P.SHARED_SUBSCRIPTION_AVAILABLE: 1,
                    P.RESPONSE_INFORMATION: "resp",
                    P.SERVER_REFERENCE: "other",
                    P.SESSION_EXPIRY_INTERVAL: 0xFFFFFFFF,
                    P.RECEIVE_MAXIMUM: 65535,
                    P.TOPIC_ALIAS_MAXIMUM: 0,
                },
            ),
            Publish("", b"aliased", 0, properties={P.TOPIC_ALIAS: 1}),
            Puback(1, RC.NO_MATCHING_SUBSCRIBERS),
            Puback(1, RC.QUOTA_EXCEEDED, props),
            Pubrec(2, RC.UNSPECIFIED_ERROR, props),
            Pubrel(3, RC.PACKET_IDENTIFIER_NOT_FOUND),
            Pubcomp(4, 0, props),
            Subscribe(
                2,
                [("a", SubOptions(1, True, True, 2)), ("b", SubOptions(0, False, True, 1))],
                {P.SUBSCRIPTION_IDENTIFIER: [42], P.USER_PROPERTY: [("s", "t")]},
            ),
            Suback(
                2, [RC.GRANTED_QOS_1, RC.TOPIC_FILTER_INVALID, RC.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED], props
            ),
            Unsubscribe(3, ["a"], {P.USER_PROPERTY: [("x", "y")]}),
            Unsuback(3, [RC.NOT_AUTHORIZED], props),
            Disconnect(RC.DISCONNECT_WITH_WILL),
            Disconnect(
                RC.SERVER_MOVED, {P.SERVER_REFERENCE: "elsewhere", P.SESSION_EXPIRY_INTERVAL: 0, **props}
            ),
            Auth(),
            Auth(
                RC.CONTINUE_AUTHENTICATION, {P.AUTHENTICATION_METHOD: "SCRAM", P.AUTHENTICATION_DATA: b"\x01"}
            ),
            Auth(RC.RE_AUTHENTICATE),
        ]
    return table


ROUND_TRIPS = [(version, packet) for version in (3, 4, 5) for packet in packets_for(version)]


@pytest.mark.parametrize(("version", "packet"), ROUND_TRIPS, ids=[f"v{v}-{p!r:.60}" for v, p in ROUND_TRIPS])
def test_round_trip(version, packet):
    wire = encode(packet, version)
    assert decode(wire, version) == packet
    assert encode(decode(wire, version), version) == wire


# ------------------------------------------------------------------------------------ byte vectors


@pytest.mark.parametrize(
    ("version", "packet", "wire"),
    [
        # 3.1.1 CONNECT, clean session, keepalive 10 (spec 3.1.2.10 example values).
        (4, Connect(keepalive=10, client_id="c"), b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x0a\x00\x01c"),
        (3, Connect("MQIsdp", 3, client_id="c"), b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01c"),
        # v5 CONNECT: empty property block after keepalive.
        (
            5,
            Connect(proto_ver=5, keepalive=10, client_id="c"),
            b"\x10\x0e\x00\x04MQTT\x05\x02\x00\x0a\x00\x00\x01c",
        ),
        # CONNECT flags: user name, password, will retain, will QoS 1, will, clean session (0xEE).
        (
            4,
            Connect(client_id="c", username="u", password=b"p", will=Will("w", b"m", 1, True)),
            b"\x10\x19\x00\x04MQTT\x04\xee\x00\x3c\x00\x01c\x00\x01w\x00\x01m\x00\x01u\x00\x01p",
        ),
        (4, Connack(True, 0), b"\x20\x02\x01\x00"),
        (5, Connack(False, RC.BAD_USER_NAME_OR_PASSWORD), b"\x20\x03\x00\x86\x00"),
        # PUBLISH QoS 1 "a/b" id 10, v5 properties: payload format 1, message expiry 60.
        (
            5,
            Publish(
                "a/b",
                b"hi",
                1,
                packet_id=10,
                properties={P.PAYLOAD_FORMAT_INDICATOR: 1, P.MESSAGE_EXPIRY_INTERVAL: 60},
            ),
            b"\x32\x11\x00\x03a/b\x00\x0a\x07\x01\x01\x02\x00\x00\x00\x3chi",
        ),
        (4, Publish("a/b", b"hi", 0, retain=True), b"\x31\x07\x00\x03a/bhi"),
        (4, Publish("a", b"", 2, dup=True, packet_id=1), b"\x3c\x05\x00\x01a\x00\x01"),
        (4, Puback(0x1234), b"\x40\x02\x12\x34"),
        (5, Puback(0x1234), b"\x40\x02\x12\x34"),
        (5, Puback(1, RC.NO_MATCHING_SUBSCRIBERS), b"\x40\x03\x00\x01\x10"),
        (4, Pubrel(1), b"\x62\x02\x00\x01"),
        (
            4,
            Subscribe(1, [("a/b", SubOptions(1)), ("c/d", SubOptions(2))]),
            b"\x82\x0e\x00\x01\x00\x03a/b\x01\x00\x03c/d\x02",
        ),
        (5, Subscribe(1, [("a", SubOptions(1, True, True, 2))]), b"\x82\x07\x00\x01\x00\x00\x01a\x2d"),
        # SUBACK with return codes 0, 1, 2 and failure (spec 3.9.3 example).
        (4, Suback(1, [0, 1, 2, 0x80]), b"\x90\x06\x00\x01\x00\x01\x02\x80"),
        (5, Suback(1, [0x8F], {P.REASON_STRING: "no"}), b"\x90\x09\x00\x01\x05\x1f\x00\x02no\x8f"),
        (4, Unsubscribe(2, ["a/b", "c/d"]), b"\xa2\x0c\x00\x02\x00\x03a/b\x00\x03c/d"),
        (4, Unsuback(2), b"\xb0\x02\x00\x02"),
        (5, Unsuback(2, [0, 0x11]), b"\xb0\x05\x00\x02\x00\x00\x11"),
        (4, Pingreq(), b"\xc0\x00"),
        (4, Pingresp(), b"\xd0\x00"),
        (4, Disconnect(), b"\xe0\x00"),
        (5, Disconnect(), b"\xe0\x00"),
        (5, Disconnect(RC.SESSION_TAKEN_OVER), b"\xe0\x01\x8e"),
        (5, Auth(), b"\xf0\x00"),
        (
            5,
            Auth(RC.CONTINUE_AUTHENTICATION, {P.AUTHENTICATION_METHOD: "m"}),
            b"\xf0\x06\x18\x04\x15\x00\x01m",
        ),
    ],
)
def test_byte_vectors(version, packet, wire):
    assert encode(packet, version) == wire
    assert decode(wire, version) == packet


def test_v3_v4_acks_drop_reason_codes_and_properties():
    assert encode(Puback(1, RC.QUOTA_EXCEEDED, {P.REASON_STRING: "x"}), 4) == b"\x40\x02\x00\x01"
    assert encode(Disconnect(RC.SERVER_BUSY), 4) == b"\xe0\x00"
    assert encode(Unsuback(1, [0x11]), 4) == b"\xb0\x02\x00\x01"
    with pytest.raises(ValueError):
        encode(Auth(), 4)


def test_multi_byte_remaining_length():
    packet = Publish("t", b"z" * 20000)
    wire = encode(packet, 4)
    assert wire[1:4] == bytes((0xA3, 0x9C, 0x01))  # 20003 = 35 + 28 * 128 + 1 * 16384
    assert decode(wire, 4) == packet


# ------------------------------------------------------------------------------- encode_publish_parts


@pytest.mark.parametrize("version", [3, 4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_parts_splice_packet_id(version, qos):
    props = {P.MESSAGE_EXPIRY_INTERVAL: 9} if version == 5 else P.NO_PROPERTIES
    head, tail = encode_publish_parts(version, "a/b", b"x" * 200, qos, True, qos > 0, props)
    wire = head + (b"\x12\x34" if qos else b"") + tail
    expected = Publish("a/b", b"x" * 200, qos, True, qos > 0, 0x1234 if qos else 0, props)
    assert wire == encode(expected, version)
    assert decode(wire, version) == expected


def test_publish_parts_rejects_oversize_topic():
    with pytest.raises(ValueError):
        encode_publish_parts(4, "a" * 65536, b"", 0, False, False, P.NO_PROPERTIES)


# ------------------------------------------------------------------------------- incremental framing


def stream_for(version):
    return [p for p in packets_for(version) if not isinstance(p, Connect)]


@pytest.mark.parametrize("version", [3, 4, 5])
def test_one_byte_at_a_time(version):
    packets = stream_for(version)
    wire = b"".join(encode(p, version) for p in packets)
    reader = FrameReader(version=version)
    out = []
    for index in range(len(wire)):
        out += reader.feed(wire[index : index + 1])
    assert out == packets


@pytest.mark.parametrize("version", [3, 4, 5])
def test_many_packets_in_one_chunk_and_odd_splits(version):
    packets = stream_for(version) * 3
    wire = b"".join(encode(p, version) for p in packets)
    assert FrameReader(version=version).feed(wire) == packets
    for step in (3, 7, 1000, 65536):
        reader = FrameReader(version=version)
        out = []
        for index in range(0, len(wire), step):
            out += reader.feed(bytearray(wire[index : index + step]))
        assert out == packets


@pytest.mark.parametrize("version", [3, 4, 5])
def test_connect_sets_reader_version(version):
    connect = Connect(proto_name=PROTO_NAME[version], proto_ver=version, client_id="x")
    follow = Puback(5, RC.NO_MATCHING_SUBSCRIBERS) if version == 5 else Puback(5)
    reader = FrameReader()
    assert reader.feed(encode(connect, version) + encode(follow, version)) == [connect, follow]
    assert reader.version == version


def test_packet_too_large_is_refused_from_the_header_alone():
    reader = FrameReader(max_packet_size=100)
    assert reader.feed(encode(Publish("t", b"x" * 95), 4)) == [
        Publish("t", b"x" * 95)
    ]  # 2 + 2 + 1 + 95 bytes
    with pytest.raises(PacketTooLarge) as info:
        FrameReader(max_packet_size=100).feed(b"\x30\x80\x80\x01")  # announces 16384 bytes, sends none
    assert info.value.reason_code == RC.PACKET_TOO_LARGE


def test_partial_packet_waits_without_reparsing():
    wire = encode(Publish("t", b"x" * 100000), 4)
    reader = FrameReader()
    assert reader.feed(wire[:10]) == []
    for index in range(10, len(wire) - 1, 4096):
        assert reader.feed(wire[index : min(index + 4096, len(wire) - 1)]) == []
    assert reader.feed(wire[-1:]) == [Publish("t", b"x" * 100000)]


# ------------------------------------------------------------------------------- malformed input


def connect_v4(flags, tail=b"\x00\x01c"):
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + b"\x00\x3c" + tail
    return bytes((0x10, len(body))) + body


BAD_INPUT = [
    # (version, wire, error class, what)
    (4, b"\x30\xff\xff\xff\xff\x01", MalformedPacket, "remaining length of 5 bytes"),
    (4, b"\x00\x00", MalformedPacket, "reserved packet type 0"),
    (4, b"\xf0\x00", MalformedPacket, "AUTH before MQTT 5"),
    (4, b"\x41\x02\x00\x01", MalformedPacket, "PUBACK flags"),
    (4, b"\x60\x02\x00\x01", MalformedPacket, "PUBREL flags 0000"),
    (4, b"\x80\x06\x00\x01\x00\x01a\x00", MalformedPacket, "SUBSCRIBE flags 0000"),
    (4, b"\xa0\x05\x00\x01\x00\x01a", MalformedPacket, "UNSUBSCRIBE flags 0000"),
    (4, b"\xc1\x00", MalformedPacket, "PINGREQ flags"),
    (4, b"\x36\x05\x00\x01a\x00\x01", MalformedPacket, "PUBLISH QoS 3"),
    (4, b"\x38\x03\x00\x01a", MalformedPacket, "DUP with QoS 0 in 3.1.1"),
    (5, b"\x38\x04\x00\x01a\x00", MalformedPacket, "DUP with QoS 0 in 5.0"),
    (4, b"\x32\x05\x00\x01a\x00\x00", ProtocolError, "PUBLISH QoS 1 packet id 0"),
    (4, b"\x30\x01\x00", MalformedPacket, "PUBLISH without topic length"),
    (4, b"\x30\x03\x00\x05a", MalformedPacket, "PUBLISH topic longer than the packet"),
    (4, b"\x32\x04\x00\x01a\x00", MalformedPacket, "PUBLISH truncated packet id"),
    (4, b"\x30\x04\x00\x02\xc3\x28", MalformedPacket, "PUBLISH topic invalid UTF-8"),
    (4, b"\x30\x05\x00\x03\xed\xa0\x80", MalformedPacket, "PUBLISH topic UTF-16 surrogate"),
    (4, b"\x30\x03\x00\x01\x00", MalformedPacket, "PUBLISH topic U+0000"),
    (5, b"\x30\x03\x00\x01a", MalformedPacket, "v5 PUBLISH without property length"),
    (5, b"\x30\x06\x00\x01a\x05\x01\x01", MalformedPacket, "v5 property length beyond the packet"),
    (5, b"\x30\x06\x00\x01a\x02\x01\x02", ProtocolError, "payload format indicator 2"),
    (5, b"\x30\x08\x00\x01a\x04\x01\x01\x01\x00", ProtocolError, "duplicate property"),
    (5, b"\x30\x07\x00\x01a\x03\x23\x00\x00", ProtocolError, "topic alias 0"),
    (5, b"\x30\x06\x00\x01a\x02\x11\x00", ProtocolError, "session expiry not allowed in PUBLISH"),
    (5, b"\x30\x06\x00\x01a\x02\x7f\x00", MalformedPacket, "unknown property"),
    (5, b"\x30\x06\x00\x01a\x02\x0b\x00", ProtocolError, "subscription identifier 0"),
    (5, b"\x30\x08\x00\x01a\x04\x02\x00\x00\x00", MalformedPacket, "truncated four-byte property"),
    (4, b"\x40\x03\x00\x01\x00", MalformedPacket, "v4 PUBACK with trailing byte"),
    (4, b"\x40\x01\x00", MalformedPacket, "truncated PUBACK"),
    (4, b"\x40\x02\x00\x00", ProtocolError, "PUBACK packet id 0"),
    (5, b"\x40\x03\x00\x01\x92", MalformedPacket, "PUBACK reason 0x92 is PUBREL/PUBCOMP only"),
    (5, b"\x62\x03\x00\x01\x10", MalformedPacket, "PUBREL reason 0x10"),
    (5, b"\xe0\x01\x05", MalformedPacket, "DISCONNECT reason 0x05"),
    (5, b"\xf0\x01\x01", MalformedPacket, "AUTH reason 0x01"),
    (5, b"\x20\x03\x00\x10\x00", MalformedPacket, "CONNACK reason 0x10"),
    (4, b"\x20\x02\x02\x00", MalformedPacket, "CONNACK reserved flags"),
    (4, b"\x20\x03\x00\x00\x00", MalformedPacket, "CONNACK trailing byte"),
    (4, b"\xe0\x01\x00", MalformedPacket, "v4 DISCONNECT with a body"),
    (4, b"\xc0\x01\x00", MalformedPacket, "PINGREQ with a body"),
    (4, b"\x82\x02\x00\x01", ProtocolError, "SUBSCRIBE without topics"),
    (4, b"\x82\x06\x00\x00\x00\x01a\x00", ProtocolError, "SUBSCRIBE packet id 0"),
    (4, b"\x82\x06\x00\x01\x00\x01a\x03", MalformedPacket, "SUBSCRIBE QoS 3"),
    (4, b"\x82\x06\x00\x01\x00\x01a\x04", MalformedPacket, "v4 SUBSCRIBE reserved option bits"),
    (5, b"\x82\x07\x00\x01\x00\x00\x01a\x40", MalformedPacket, "v5 SUBSCRIBE reserved option bits"),
    (5, b"\x82\x07\x00\x01\x00\x00\x01a\x30", ProtocolError, "v5 SUBSCRIBE retain handling 3"),
    (4, b"\x82\x05\x00\x01\x00\x01a", MalformedPacket, "SUBSCRIBE missing options byte"),
    (
        5,
        b"\x82\x0b\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00",
        ProtocolError,
        "SUBSCRIBE two subscription ids",
    ),
    (4, b"\xa2\x02\x00\x01", ProtocolError, "UNSUBSCRIBE without topics"),
    (4, b"\xa2\x05\x00\x00\x00\x01a", ProtocolError, "UNSUBSCRIBE packet id 0"),
    (4, b"\x90\x02\x00\x01", ProtocolError, "SUBACK without codes"),
    (4, b"\x90\x03\x00\x01\x03", MalformedPacket, "v4 SUBACK code 3"),
    (5, b"\xb0\x03\x00\x01\x00", ProtocolError, "v5 UNSUBACK without codes"),
    (4, b"\xb0\x03\x00\x01\x00", MalformedPacket, "v4 UNSUBACK with a code"),
    (4, connect_v4(0x03), MalformedPacket, "CONNECT reserved flag"),
    (4, connect_v4(0x12), MalformedPacket, "will QoS without will flag"),
    (4, connect_v4(0x22), MalformedPacket, "will retain without will flag"),
    (4, connect_v4(0x1E, b"\x00\x01c\x00\x01t\x00\x00"), MalformedPacket, "will QoS 3"),
    (4, connect_v4(0x42, b"\x00\x01c\x00\x01p"), ProtocolError, "3.1.1 password without user name"),
    (4, connect_v4(0x02, b"\x00\x01c\x00"), MalformedPacket, "CONNECT trailing byte"),
    (4, connect_v4(0x02, b"\x00\x05c"), MalformedPacket, "CONNECT truncated client id"),
    (4, connect_v4(0x82, b"\x00\x01c"), MalformedPacket, "CONNECT user name flag without user name"),
    (4, b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00", UnsupportedProtocolVersion, "protocol level 6"),
    (4, b"\x10\x0c\x00\x04MQTT\x03\x02\x00\x3c\x00\x00", UnsupportedProtocolVersion, "MQTT with level 3"),
    (4, b"\x10\x0c\x00\x04HTTP\x04\x02\x00\x3c\x00\x00", UnsupportedProtocolVersion, "unknown protocol name"),
    (4, b"\x10\x07\x00\x04MQTT\x04", MalformedPacket, "CONNECT truncated after level"),
    (4, b"\x11\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", MalformedPacket, "CONNECT header flags"),
    (
        4,
        b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x03\x26\x00\x01\x00\x00\x00",
        MalformedPacket,
        "user property truncated inside v5 CONNECT",
    ),
    (
        4,
        b"\x10\x12\x00\x04MQTT\x05\x02\x00\x3c\x03\x24\x00\x00\x00\x00\x00\x00",
        ProtocolError,
        "maximum QoS not allowed in CONNECT",
    ),
    (
        4,
        b"\x10\x0f\x00\x04MQTT\x05\x02\x00\x3c\x03\x21\x00\x00\x00\x00",
        ProtocolError,
        "receive maximum 0",
    ),
]


@pytest.mark.parametrize(("version", "wire", "error", "what"), BAD_INPUT, ids=[case[3] for case in BAD_INPUT])
def test_bad_input_raises(version, wire, error, what):
    with pytest.raises(error) as info:
        FrameReader(version=version).feed(wire)
    assert isinstance(info.value, MQTTError)
    assert info.value.reason_code == error.reason_code
    assert info.value.message


def test_v31_accepts_what_311_rejects():
    assert FrameReader(version=3).feed(b"\x38\x03\x00\x01a") == [Publish("a", b"", dup=True)]
    assert FrameReader(version=3).feed(b"\x6a\x02\x00\x01") == [Pubrel(1)]


def test_errors_carry_reason_codes():
    assert MalformedPacket("x").reason_code == RC.MALFORMED_PACKET
    assert ProtocolError("x").reason_code == RC.PROTOCOL_ERROR
    assert UnsupportedProtocolVersion("x").reason_code == RC.UNSUPPORTED_PROTOCOL_VERSION
    assert PacketTooLarge("x").reason_code == RC.PACKET_TOO_LARGE
    error = MQTTError(RC.QUOTA_EXCEEDED, "full")
    assert (error.reason_code, error.message) == (0x97, "full")


# ------------------------------------------------------------------------------- reason codes, properties


def test_connack_code_mapping_and_names():
    assert RC.connack_code_for(5, RC.NOT_AUTHORIZED) == 0x87
    assert [RC.connack_code_for(4, code) for code in (0x00, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x80)] == [
        0,
        1,
        2,
        4,
        5,
        3,
        3,
        3,
    ]
    assert RC.reason_name(0x86) == "bad_user_name_or_password"
    assert RC.reason_name(0x00, 14) == "normal_disconnection"
    assert RC.reason_name(0x00, 2) == "success"
    assert RC.reason_name(0x00, 9) == "granted_qos_0"
    assert RC.V3_CONNACK_NAMES[4] == "bad_username_or_password"


def test_properties_encode_empty_and_decode_bounds():
    assert P.encode_properties({}) == b"\x00"
    wire = P.encode_properties({P.USER_PROPERTY: [("a", "b")], P.REASON_STRING: "r"})
    props, offset = P.decode_properties(wire + b"tail", 0, 4)
    assert props == {P.USER_PROPERTY: [("a", "b")], P.REASON_STRING: "r"}
    assert offset == len(wire)
    with pytest.raises(MalformedPacket):
        P.decode_properties(wire, 0, 4, end=len(wire) - 1)
    with pytest.raises(ProtocolError):
        P.decode_properties(P.encode_properties({P.WILL_DELAY_INTERVAL: 1}), 0, 1)
    assert P.decode_properties(P.encode_properties({P.WILL_DELAY_INTERVAL: 1}), 0, P.WILL)[0] == {
        P.WILL_DELAY_INTERVAL: 1
    }


def test_a_malformed_packet_hands_over_the_packets_decoded_before_it():
    good = encode(Publish("a/b", b"first"), 4) + encode(Pingreq(), 4)
    reader = FrameReader()
    with pytest.raises(MalformedPacket) as failure:
        reader.feed(good + b"\x30\x01\x00")  # PUBLISH too short for its topic length
    assert failure.value.packets == [Publish("a/b", b"first"), Pingreq()]
