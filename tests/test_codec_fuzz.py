"""Hostile and random input to FrameReader: only MQTTError may escape; valid packets round-trip.

The example budget is small for CI; set NANOMQ_FUZZ_EXAMPLES to run more.
"""

import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanomq_py.mqtt import properties as P
from nanomq_py.mqtt.codec import FrameReader, decode, encode
from nanomq_py.mqtt.errors import MQTTError
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
from nanomq_py.mqtt.reason_codes import VALID_REASON_CODES

EXAMPLES = int(os.environ.get("NANOMQ_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VERSIONS = st.sampled_from([3, 4, 5])
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
blob = st.binary(max_size=40)
packet_ids = st.integers(1, 0xFFFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
user_props = st.lists(st.tuples(text, text), min_size=1, max_size=3)


def props_of(draw, packet_type, version):
    """Random valid property dicts for ``packet_type`` (empty outside v5)."""
    if version != 5:
        return P.NO_PROPERTIES
    pools = {
        P.PAYLOAD_FORMAT_INDICATOR: st.integers(0, 1),
        P.MESSAGE_EXPIRY_INTERVAL: u32,
        P.CONTENT_TYPE: text,
        P.RESPONSE_TOPIC: text,
        P.CORRELATION_DATA: blob,
        P.SUBSCRIPTION_IDENTIFIER: st.lists(
            st.integers(1, P.MAX_VARINT), min_size=1, max_size=3 if packet_type == 3 else 1
        ),
        P.SESSION_EXPIRY_INTERVAL: u32,
        P.ASSIGNED_CLIENT_IDENTIFIER: text,
        P.SERVER_KEEP_ALIVE: u16,
        P.AUTHENTICATION_METHOD: text,
        P.AUTHENTICATION_DATA: blob,
        P.REQUEST_PROBLEM_INFORMATION: st.integers(0, 1),
        P.WILL_DELAY_INTERVAL: u32,
        P.REQUEST_RESPONSE_INFORMATION: st.integers(0, 1),
        P.RESPONSE_INFORMATION: text,
        P.SERVER_REFERENCE: text,
        P.REASON_STRING: text,
        P.RECEIVE_MAXIMUM: st.integers(1, 0xFFFF),
        P.TOPIC_ALIAS_MAXIMUM: u16,
        P.TOPIC_ALIAS: st.integers(1, 0xFFFF),
        P.MAXIMUM_QOS: st.integers(0, 1),
        P.RETAIN_AVAILABLE: st.integers(0, 1),
        P.USER_PROPERTY: user_props,
        P.MAXIMUM_PACKET_SIZE: st.integers(1, 0xFFFFFFFF),
        P.WILDCARD_SUBSCRIPTION_AVAILABLE: st.integers(0, 1),
        P.SUBSCRIPTION_IDENTIFIER_AVAILABLE: st.integers(0, 1),
        P.SHARED_SUBSCRIPTION_AVAILABLE: st.integers(0, 1),
    }
    allowed = sorted(pid for pid, spec in P.PROPERTY_SPECS.items() if packet_type in spec[2])
    chosen = draw(st.lists(st.sampled_from(allowed), unique=True, max_size=4)) if allowed else []
    return {pid: draw(pools[pid]) for pid in chosen}


def reason(draw, packet_type, version):
    return draw(st.sampled_from(sorted(VALID_REASON_CODES[packet_type]))) if version == 5 else 0


@st.composite
def packets(draw):
    version = draw(VERSIONS)
    kind = draw(st.integers(1, 15 if version == 5 else 14))
    if kind == 1:
        will = None
        if draw(st.booleans()):
            will = Will(
                draw(text),
                draw(blob),
                draw(st.integers(0, 2)),
                draw(st.booleans()),
                props_of(draw, P.WILL, version),
            )
        username = draw(st.none() | text)
        password = draw(st.none() | blob) if username is not None or version != 4 else None
        packet = Connect(
            "MQIsdp" if version == 3 else "MQTT",
            version,
            draw(st.booleans()),
            draw(u16),
            draw(text),
            username,
            password,
            will,
            props_of(draw, 1, version),
        )
    elif kind == 2:
        code = reason(draw, 2, version) if version == 5 else draw(st.integers(0, 5))
        packet = Connack(draw(st.booleans()), code, props_of(draw, 2, version))
    elif kind == 3:
        qos = draw(st.integers(0, 2))
        packet = Publish(
            draw(text),
            draw(blob),
            qos,
            draw(st.booleans()),
            draw(st.booleans()) if qos else False,
            draw(packet_ids) if qos else 0,
            props_of(draw, 3, version),
        )
    elif kind in (4, 5, 6, 7):
        cls = {4: Puback, 5: Pubrec, 6: Pubrel, 7: Pubcomp}[kind]
        packet = cls(draw(packet_ids), reason(draw, kind, version), props_of(draw, kind, version))
    elif kind == 8:
        options = (
            st.builds(SubOptions, st.integers(0, 2), st.booleans(), st.booleans(), st.integers(0, 2))
            if version == 5
            else st.builds(SubOptions, st.integers(0, 2))
        )
        topics = draw(st.lists(st.tuples(text, options), min_size=1, max_size=4))
        packet = Subscribe(draw(packet_ids), topics, props_of(draw, 8, version))
    elif kind == 9:
        valid = sorted(VALID_REASON_CODES[9]) if version == 5 else [0, 1, 2, 0x80]
        codes = draw(st.lists(st.sampled_from(valid), min_size=1, max_size=4))
        packet = Suback(draw(packet_ids), codes, props_of(draw, 9, version))
    elif kind == 10:
        packet = Unsubscribe(
            draw(packet_ids), draw(st.lists(text, min_size=1, max_size=4)), props_of(draw, 10, version)
        )
    elif kind == 11:
        codes = draw(st.lists(st.sampled_from(sorted(VALID_REASON_CODES[11])), min_size=1, max_size=4))
        packet = (
            Unsuback(draw(packet_ids), codes, props_of(draw, 11, version))
            if version == 5
            else Unsuback(draw(packet_ids))
        )
    elif kind == 12:
        packet = Pingreq()
    elif kind == 13:
        packet = Pingresp()
    elif kind == 14:
        packet = Disconnect(reason(draw, 14, version), props_of(draw, 14, version))
    else:
        packet = Auth(reason(draw, 15, version), props_of(draw, 15, version))
    return version, packet


@FUZZ
@given(packets())
def test_generated_packets_round_trip(case):
    version, packet = case
    wire = encode(packet, version)
    assert decode(wire, version) == packet


@FUZZ
@given(st.lists(packets(), min_size=1, max_size=5), st.integers(1, 50))
def test_generated_streams_survive_any_split(cases, step):
    version = cases[0][0]
    stream = [packet for v, packet in cases if v == version and not isinstance(packet, Connect)]
    wire = b"".join(encode(packet, version) for packet in stream)
    reader = FrameReader(version=version)
    out = []
    for index in range(0, len(wire), step):
        out += reader.feed(wire[index : index + step])
    assert out == stream


def feed_all(version, chunks):
    reader = FrameReader(max_packet_size=4096, version=version)
    try:
        for chunk in chunks:
            reader.feed(chunk)
    except MQTTError as error:
        assert error.message


@FUZZ
@given(VERSIONS, st.lists(st.binary(max_size=64), max_size=8))
def test_random_bytes_raise_only_mqtt_errors(version, chunks):
    feed_all(version, chunks)


@FUZZ
@given(packets(), st.data())
def test_mutated_valid_packets_raise_only_mqtt_errors(case, data):
    version, packet = case
    wire = bytearray(encode(packet, version))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(wire) - 1))
        wire[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    feed_all(version, [bytes(wire[:cut]), bytes(wire[cut:])])


def test_plain_random_mutations_raise_only_mqtt_errors():
    rng = random.Random(1234)
    seeds = [
        encode(Publish("a/b", b"xyz", 1, packet_id=5, properties={P.USER_PROPERTY: [("k", "v")]}), 5),
        encode(Subscribe(1, [("a/#", SubOptions(1, True, False, 1))], {P.SUBSCRIPTION_IDENTIFIER: [7]}), 5),
        encode(Connect(proto_ver=5, client_id="c", username="u", password=b"p", will=Will("w", b"m", 1)), 5),
        encode(Connect(client_id="c", username="u", password=b"p", will=Will("w", b"m", 1)), 4),
        encode(Disconnect(0x8E, {P.REASON_STRING: "r"}), 5),
    ]
    for _ in range(EXAMPLES * 20):
        wire = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            wire[rng.randrange(len(wire))] = rng.randrange(256)
        feed_all(rng.choice((3, 4, 5)), [bytes(wire)])
