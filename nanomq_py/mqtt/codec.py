"""Encode MQTT 3.1 / 3.1.1 / 5.0 packets to bytes, and frame and decode a byte stream into packets.

``FrameReader.feed`` keeps at most one partial packet between calls.  Its cost stays linear in
the bytes received, whatever the peer sends: a fixed header announcing more than
``max_packet_size`` is refused before its body is buffered; while a packet is incomplete, new
bytes are only appended (nothing is re-parsed until the announced length has arrived); complete
packets are parsed with offsets into one ``bytes`` object, and the unparsed rest is copied once.
Every length field inside a packet is checked against the packet's end, so a lying length can
neither read into the next packet nor allocate more than the packet holds.

``encode_publish_parts`` is the broker's fan-out path: one encoding per wire form, the packet id
spliced per subscriber.
"""

from .errors import MalformedPacket, MQTTError, PacketTooLarge, ProtocolError, UnsupportedProtocolVersion
from .packets import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
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
from .properties import (
    MAX_VARINT,
    NO_PROPERTIES,
    WILL,
    decode_binary,
    decode_properties,
    decode_utf8,
    decode_varint,
    encode_binary,
    encode_properties,
    encode_utf8,
    encode_varint,
)
from .reason_codes import VALID_REASON_CODES

DEFAULT_MAX_PACKET_SIZE = 10 * 1024 * 1024

# The protocol (name, level) pairs this codec speaks.
SUPPORTED_PROTOCOLS = frozenset({("MQIsdp", 3), ("MQTT", 4), ("MQTT", 5)})

_PINGREQ_BYTES = b"\xc0\x00"
_PINGRESP_BYTES = b"\xd0\x00"
_DISCONNECT_BYTES = b"\xe0\x00"
_AUTH_BYTES = b"\xf0\x00"


# ---------------------------------------------------------------------------------------------- encoding


def _frame(first: int, body: bytes) -> bytes:
    """Fixed header + body."""
    length = len(body)
    if length < 128:
        return bytes((first, length)) + body
    if length > MAX_VARINT:
        raise ValueError("packet body longer than 268435455 bytes")
    return bytes((first,)) + encode_varint(length) + body


def encode_publish_parts(version, topic, payload, qos, retain, dup, properties) -> tuple[bytes, bytes]:
    """(head, tail) of a PUBLISH: ``head + tail`` at QoS 0, ``head + packet_id(2 bytes) + tail`` otherwise."""
    raw_topic = topic.encode()
    topic_length = len(raw_topic)
    if topic_length > 0xFFFF:
        raise ValueError("topic longer than 65535 bytes")
    if type(payload) is not bytes:
        payload = bytes(payload)
    tail = payload
    if version == 5:
        tail = (encode_properties(properties) if properties else b"\x00") + payload
    length = 2 + topic_length + len(tail)
    if qos:
        length += 2
    first = 0x30 | (qos << 1)
    if retain:
        first |= 1
    if dup:
        first |= 8
    if length < 128:
        return bytes((first, length, topic_length >> 8, topic_length & 0xFF)) + raw_topic, tail
    if length > MAX_VARINT:
        raise ValueError("PUBLISH longer than 268435455 bytes")
    return bytes((first,)) + encode_varint(length) + topic_length.to_bytes(2, "big") + raw_topic, tail


def _encode_publish(packet: Publish, version: int) -> bytes:
    head, tail = encode_publish_parts(
        version, packet.topic, packet.payload, packet.qos, packet.retain, packet.dup, packet.properties
    )
    if packet.qos:
        return head + packet.packet_id.to_bytes(2, "big") + tail
    return head + tail


def _encode_connect(packet: Connect, version: int) -> bytes:
    version = packet.proto_ver
    will = packet.will
    flags = 0x02 if packet.clean_start else 0
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if packet.password is not None:
        flags |= 0x40
    if packet.username is not None:
        flags |= 0x80
    parts = [
        encode_utf8(packet.proto_name),
        bytes((packet.proto_ver, flags)),
        packet.keepalive.to_bytes(2, "big"),
    ]
    if version == 5:
        parts.append(encode_properties(packet.properties))
    parts.append(encode_utf8(packet.client_id))
    if will is not None:
        if version == 5:
            parts.append(encode_properties(will.properties))
        parts.append(encode_utf8(will.topic))
        parts.append(encode_binary(will.payload))
    if packet.username is not None:
        parts.append(encode_utf8(packet.username))
    if packet.password is not None:
        parts.append(encode_binary(packet.password))
    return _frame(0x10, b"".join(parts))


def _encode_connack(packet: Connack, version: int) -> bytes:
    body = bytes((1 if packet.session_present else 0, packet.reason_code))
    if version == 5:
        body += encode_properties(packet.properties)
    return _frame(0x20, body)


def _encode_ack(first: int, packet, version: int) -> bytes:
    packet_id = packet.packet_id
    if version == 5 and (packet.reason_code or packet.properties):
        body = bytes((packet_id >> 8, packet_id & 0xFF, packet.reason_code))
        if packet.properties:
            body += encode_properties(packet.properties)
        return _frame(first, body)
    return bytes((first, 2, packet_id >> 8, packet_id & 0xFF))


def _encode_subscribe(packet: Subscribe, version: int) -> bytes:
    parts = [packet.packet_id.to_bytes(2, "big")]
    if version == 5:
        parts.append(encode_properties(packet.properties))
    for topic_filter, options in packet.topics:
        parts.append(encode_utf8(topic_filter))
        byte = options.qos
        if version == 5:
            byte |= (
                (4 if options.no_local else 0)
                | (8 if options.retain_as_published else 0)
                | (options.retain_handling << 4)
            )
        parts.append(bytes((byte,)))
    return _frame(0x82, b"".join(parts))


def _encode_suback(packet: Suback, version: int) -> bytes:
    body = packet.packet_id.to_bytes(2, "big")
    if version == 5:
        body += encode_properties(packet.properties)
    return _frame(0x90, body + bytes(packet.reason_codes))


def _encode_unsubscribe(packet: Unsubscribe, version: int) -> bytes:
    parts = [packet.packet_id.to_bytes(2, "big")]
    if version == 5:
        parts.append(encode_properties(packet.properties))
    parts.extend(encode_utf8(topic_filter) for topic_filter in packet.filters)
    return _frame(0xA2, b"".join(parts))


def _encode_unsuback(packet: Unsuback, version: int) -> bytes:
    body = packet.packet_id.to_bytes(2, "big")
    if version == 5:
        body += encode_properties(packet.properties) + bytes(packet.reason_codes)
    return _frame(0xB0, body)


def _encode_reason_only(first: int, short: bytes, packet, version: int) -> bytes:
    """DISCONNECT / AUTH: v5 reason code and properties, each omitted when it is the default."""
    if version != 5 or (not packet.reason_code and not packet.properties):
        return short
    body = bytes((packet.reason_code,))
    if packet.properties:
        body += encode_properties(packet.properties)
    return _frame(first, body)


def _encode_auth(packet: Auth, version: int) -> bytes:
    if version != 5:
        raise ValueError("AUTH exists only in MQTT 5")
    return _encode_reason_only(0xF0, _AUTH_BYTES, packet, version)


_ENCODERS = {
    CONNECT: _encode_connect,
    CONNACK: _encode_connack,
    PUBLISH: _encode_publish,
    PUBACK: lambda packet, version: _encode_ack(0x40, packet, version),
    PUBREC: lambda packet, version: _encode_ack(0x50, packet, version),
    PUBREL: lambda packet, version: _encode_ack(0x62, packet, version),
    PUBCOMP: lambda packet, version: _encode_ack(0x70, packet, version),
    SUBSCRIBE: _encode_subscribe,
    SUBACK: _encode_suback,
    UNSUBSCRIBE: _encode_unsubscribe,
    UNSUBACK: _encode_unsuback,
    PINGREQ: lambda packet, version: _PINGREQ_BYTES,
    PINGRESP: lambda packet, version: _PINGRESP_BYTES,
    DISCONNECT: lambda packet, version: _encode_reason_only(0xE0, _DISCONNECT_BYTES, packet, version),
    AUTH: _encode_auth,
}


def encode(packet, version: int) -> bytes:
    """Wire bytes of ``packet`` for protocol level ``version`` (3, 4 or 5; CONNECT uses its own proto_ver)."""
    return _ENCODERS[packet.TYPE](packet, version)


# ---------------------------------------------------------------------------------------------- decoding
# Each decoder gets the whole buffer and the [start, end) bounds of one packet's variable header + payload.


def _packet_id(data, offset: int, end: int) -> int:
    if offset + 2 > end:
        raise MalformedPacket("truncated packet identifier")
    packet_id = (data[offset] << 8) | data[offset + 1]
    if not packet_id:
        raise ProtocolError("packet identifier 0")
    return packet_id


def _reason_code(data, offset: int, packet_type: int) -> int:
    code = data[offset]
    if code not in VALID_REASON_CODES[packet_type]:
        raise MalformedPacket(f"reason code 0x{code:02X} not valid in this packet")
    return code


def _expect_end(offset: int, end: int) -> None:
    if offset != end:
        raise MalformedPacket("unexpected bytes after the packet's fields")


def _decode_connect(data, start: int, end: int, version: int) -> Connect:
    proto_name, offset = decode_utf8(data, start, end)
    if offset >= end:
        raise MalformedPacket("truncated CONNECT")
    proto_ver = data[offset]
    if (proto_name, proto_ver) not in SUPPORTED_PROTOCOLS:
        raise UnsupportedProtocolVersion(f"unsupported protocol {proto_name!r} level {proto_ver}")
    if offset + 4 > end:
        raise MalformedPacket("truncated CONNECT")
    flags = data[offset + 1]
    keepalive = (data[offset + 2] << 8) | data[offset + 3]
    offset += 4
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set")
    will_flag = flags & 0x04
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    if not will_flag and (will_qos or will_retain):
        raise MalformedPacket("will QoS/retain set without the will flag")
    if will_qos == 3:
        raise MalformedPacket("will QoS 3")
    has_username = flags & 0x80
    has_password = flags & 0x40
    if proto_ver == 4 and has_password and not has_username:
        raise ProtocolError("password flag set without user name flag")
    properties = NO_PROPERTIES
    if proto_ver == 5:
        properties, offset = decode_properties(data, offset, CONNECT, end)
    client_id, offset = decode_utf8(data, offset, end)
    will = None
    if will_flag:
        will_properties = NO_PROPERTIES
        if proto_ver == 5:
            will_properties, offset = decode_properties(data, offset, WILL, end)
        will_topic, offset = decode_utf8(data, offset, end)
        will_payload, offset = decode_binary(data, offset, end)
        will = Will(will_topic, will_payload, will_qos, will_retain, will_properties)
    username = password = None
    if has_username:
        username, offset = decode_utf8(data, offset, end)
    if has_password:
        password, offset = decode_binary(data, offset, end)
    _expect_end(offset, end)
    return Connect(
        proto_name, proto_ver, bool(flags & 0x02), keepalive, client_id, username, password, will, properties
    )


def _decode_connack(data, start: int, end: int, version: int) -> Connack:
    if end - start < 2:
        raise MalformedPacket("truncated CONNACK")
    flags = data[start]
    if flags & 0xFE:
        raise MalformedPacket("CONNACK reserved flags set")
    properties = NO_PROPERTIES
    if version == 5:
        code = _reason_code(data, start + 1, CONNACK)
        properties, offset = decode_properties(data, start + 2, CONNACK, end)
        _expect_end(offset, end)
    else:
        code = data[start + 1]
        _expect_end(start + 2, end)
    return Connack(bool(flags & 1), code, properties)


def _ack_decoder(cls, packet_type: int):
    def decode_ack(data, start: int, end: int, version: int):
        packet_id = _packet_id(data, start, end)
        length = end - start
        if version != 5 or length == 2:
            _expect_end(start + 2, end)
            return cls(packet_id)
        code = _reason_code(data, start + 2, packet_type)
        if length == 3:
            return cls(packet_id, code)
        properties, offset = decode_properties(data, start + 3, packet_type, end)
        _expect_end(offset, end)
        return cls(packet_id, code, properties)

    return decode_ack


def _decode_subscribe(data, start: int, end: int, version: int) -> Subscribe:
    packet_id = _packet_id(data, start, end)
    offset = start + 2
    properties = NO_PROPERTIES
    if version == 5:
        properties, offset = decode_properties(data, offset, SUBSCRIBE, end)
    reserved = 0xC0 if version == 5 else 0xFC
    topics = []
    while offset < end:
        topic_filter, offset = decode_utf8(data, offset, end)
        if offset >= end:
            raise MalformedPacket("missing subscription options")
        byte = data[offset]
        offset += 1
        if byte & reserved:
            raise MalformedPacket("subscription options reserved bits set")
        qos = byte & 0x03
        if qos == 3:
            raise MalformedPacket("subscription QoS 3")
        if version == 5:
            retain_handling = byte >> 4
            if retain_handling == 3:
                raise ProtocolError("retain handling 3")
            options = SubOptions(qos, bool(byte & 0x04), bool(byte & 0x08), retain_handling)
        else:
            options = SubOptions(qos)
        topics.append((topic_filter, options))
    if not topics:
        raise ProtocolError("SUBSCRIBE without topic filters")
    return Subscribe(packet_id, topics, properties)


def _decode_suback(data, start: int, end: int, version: int) -> Suback:
    packet_id = _packet_id(data, start, end)
    offset = start + 2
    properties = NO_PROPERTIES
    if version == 5:
        properties, offset = decode_properties(data, offset, SUBACK, end)
        valid = VALID_REASON_CODES[SUBACK]
    else:
        valid = (0x00, 0x01, 0x02, 0x80)
    codes = list(data[offset:end])
    if not codes:
        raise ProtocolError("SUBACK without return codes")
    for code in codes:
        if code not in valid:
            raise MalformedPacket(f"SUBACK return code 0x{code:02X} not valid")
    return Suback(packet_id, codes, properties)


def _decode_unsubscribe(data, start: int, end: int, version: int) -> Unsubscribe:
    packet_id = _packet_id(data, start, end)
    offset = start + 2
    properties = NO_PROPERTIES
    if version == 5:
        properties, offset = decode_properties(data, offset, UNSUBSCRIBE, end)
    filters = []
    while offset < end:
        topic_filter, offset = decode_utf8(data, offset, end)
        filters.append(topic_filter)
    if not filters:
        raise ProtocolError("UNSUBSCRIBE without topic filters")
    return Unsubscribe(packet_id, filters, properties)


def _decode_unsuback(data, start: int, end: int, version: int) -> Unsuback:
    packet_id = _packet_id(data, start, end)
    if version != 5:
        _expect_end(start + 2, end)
        return Unsuback(packet_id)
    properties, offset = decode_properties(data, start + 2, UNSUBACK, end)
    codes = list(data[offset:end])
    if not codes:
        raise ProtocolError("UNSUBACK without reason codes")
    valid = VALID_REASON_CODES[UNSUBACK]
    for code in codes:
        if code not in valid:
            raise MalformedPacket(f"UNSUBACK reason code 0x{code:02X} not valid")
    return Unsuback(packet_id, codes, properties)


def _empty_decoder(cls):
    def decode_empty(data, start: int, end: int, version: int):
        _expect_end(start, end)
        return cls()

    return decode_empty


def _reason_only_decoder(cls, packet_type: int):
    """DISCONNECT / AUTH: v5 may omit the properties, or both reason code and properties."""

    def decode_reason_only(data, start: int, end: int, version: int):
        if version != 5 or start == end:
            _expect_end(start, end)
            return cls()
        code = _reason_code(data, start, packet_type)
        if end - start == 1:
            return cls(code)
        properties, offset = decode_properties(data, start + 1, packet_type, end)
        _expect_end(offset, end)
        return cls(code, properties)

    return decode_reason_only


def _decode_reserved(data, start: int, end: int, version: int):
    raise MalformedPacket("reserved packet type 0")


# Indexed by packet type; PUBLISH (3) is decoded inline by FrameReader.feed.
_DECODERS = (
    _decode_reserved,
    _decode_connect,
    _decode_connack,
    None,
    _ack_decoder(Puback, PUBACK),
    _ack_decoder(Pubrec, PUBREC),
    _ack_decoder(Pubrel, PUBREL),
    _ack_decoder(Pubcomp, PUBCOMP),
    _decode_subscribe,
    _decode_suback,
    _decode_unsubscribe,
    _decode_unsuback,
    _empty_decoder(Pingreq),
    _empty_decoder(Pingresp),
    _reason_only_decoder(Disconnect, DISCONNECT),
    _reason_only_decoder(Auth, AUTH),
)

# Fixed-header flag bits every packet but PUBLISH must carry (MQTT-2.2.2-1).
_REQUIRED_FLAGS = (0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0)


def _decode_other(first: int, data, start: int, end: int, version: int):
    packet_type = first >> 4
    # MQTT 3.1 predates the strict flag rule; Mosquitto accepts any flags there too.
    if first & 0x0F != _REQUIRED_FLAGS[packet_type] and (version != 3 or packet_type == CONNECT):
        raise MalformedPacket("invalid fixed header flags")
    if packet_type == AUTH and version != 5:
        raise MalformedPacket("AUTH exists only in MQTT 5")
    return _DECODERS[packet_type](data, start, end, version)


class FrameReader:
    """Incremental decoder of one connection's byte stream: ``feed(bytes) -> [packet, ...]``.

    ``version`` (3/4/5) selects the wire format; it follows a decoded CONNECT's level and the
    broker may set it.  After an MQTTError the reader must be discarded; the error's
    ``packets`` holds the complete packets decoded before the bad one, in order.
    """

    __slots__ = ("max_packet_size", "version", "_buffer", "_needed")

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, version: int = 4) -> None:
        self.max_packet_size = max_packet_size
        self.version = version
        self._buffer = bytearray()
        self._needed = 0  # buffered bytes needed before parsing is worth trying again

    def feed(self, data) -> list:
        """Every complete packet in the bytes received so far, in order; the partial rest stays buffered."""
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._needed:
                return []
            data = bytes(buffer)
            buffer.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        packets = []
        append = packets.append
        version = self.version
        limit = self.max_packet_size
        size = len(data)
        pos = 0
        needed = 0
        try:
            while pos < size:
                if size - pos < 2:
                    needed = 2
                    break
                first = data[pos]
                start = pos + 2
                length = data[pos + 1]
                if length > 127:
                    header = decode_varint(data, pos + 1, size, True, "remaining length")
                    if header is None:
                        needed = size - pos + 1
                        break
                    length, start = header
                end = start + length
                if end - pos > limit:
                    raise PacketTooLarge(f"packet of {end - pos} bytes exceeds the maximum of {limit}")
                if end > size:
                    needed = end - pos
                    break
                if first >> 4 == 3:
                    # PUBLISH, inlined: the broker's per-message path.
                    qos = (first >> 1) & 3
                    if length < 2:
                        raise MalformedPacket("truncated PUBLISH topic")
                    offset = start + 2 + ((data[start] << 8) | data[start + 1])
                    if qos:
                        if offset + 2 > end:
                            raise MalformedPacket("truncated PUBLISH")
                        if qos == 3:
                            raise MalformedPacket("PUBLISH QoS 3")
                        packet_id = (data[offset] << 8) | data[offset + 1]
                        if not packet_id:
                            raise ProtocolError("PUBLISH packet identifier 0")
                        body = offset + 2
                    else:
                        if offset > end:
                            raise MalformedPacket("truncated PUBLISH topic")
                        if first & 8 and version != 3:
                            raise MalformedPacket("DUP set on a QoS 0 PUBLISH")
                        packet_id = 0
                        body = offset
                    try:
                        topic = data[start + 2 : offset].decode()
                    except UnicodeDecodeError:
                        raise MalformedPacket("PUBLISH topic is not valid UTF-8") from None
                    if "\x00" in topic:
                        raise MalformedPacket("PUBLISH topic contains U+0000")
                    if version == 5:
                        if body < end and not data[body]:
                            properties = NO_PROPERTIES
                            body += 1
                        else:
                            properties, body = decode_properties(data, body, PUBLISH, end)
                    else:
                        properties = NO_PROPERTIES
                    append(
                        Publish(
                            topic, data[body:end], qos, first & 1 == 1, first & 8 == 8, packet_id, properties
                        )
                    )
                else:
                    packet = _decode_other(first, data, start, end, version)
                    if first >> 4 == CONNECT:
                        version = self.version = packet.proto_ver
                    append(packet)
                pos = end
        except MQTTError as exc:
            exc.packets = packets  # the valid packets before the bad one still count
            raise
        if pos < size:
            buffer += memoryview(data)[pos:]
            self._needed = needed
        return packets


def decode(data: bytes, version: int) -> object:
    """Decode exactly one complete packet (for tests and tools); MalformedPacket if more or less is given."""
    reader = FrameReader(max_packet_size=MAX_VARINT + 5, version=version)
    packets = reader.feed(data)
    if len(packets) != 1 or reader._buffer:
        raise MalformedPacket(
            f"expected exactly one packet, got {len(packets)} and {len(reader._buffer)} spare bytes"
        )
    return packets[0]
