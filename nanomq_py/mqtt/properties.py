"""MQTT 5 properties: identifiers, the packets each may appear in, and their wire encoding.

A properties value is a plain dict ``{property_id: value}``; USER_PROPERTY is a list of
``(name, value)`` pairs and SUBSCRIPTION_IDENTIFIER a list of ints.  Decoding walks the
property block once with an offset, bounded by its declared length (itself bounded by the
packet, which the frame reader bounded by ``max_packet_size``): linear time, no copies
beyond the values themselves, and every duplicate or out-of-range value is rejected.
"""

from .errors import MalformedPacket, ProtocolError

PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTHENTICATION_METHOD = 0x15
AUTHENTICATION_DATA = 0x16
REQUEST_PROBLEM_INFORMATION = 0x17
WILL_DELAY_INTERVAL = 0x18
REQUEST_RESPONSE_INFORMATION = 0x19
RESPONSE_INFORMATION = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

NO_PROPERTIES: dict = {}
"""Shared empty properties of every packet that has none; never mutate a packet's properties."""

WILL = "will"
"""Pseudo packet type of the will properties inside CONNECT."""

MAX_VARINT = 268_435_455

# Packet type numbers (packets.py imports this module, so they are spelled out here).
_CONNECT, _CONNACK, _PUBLISH, _PUBACK, _PUBREC, _PUBREL, _PUBCOMP = 1, 2, 3, 4, 5, 6, 7
_SUBSCRIBE, _SUBACK, _UNSUBSCRIBE, _UNSUBACK, _DISCONNECT, _AUTH = 8, 9, 10, 11, 14, 15

_BYTE, _TWO, _FOUR, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
_ALL_WITH_REASON = (_CONNACK, _PUBACK, _PUBREC, _PUBREL, _PUBCOMP, _SUBACK, _UNSUBACK, _DISCONNECT, _AUTH)

# property id -> (name, wire type, packet types it may appear in); spec table 2-4.
PROPERTY_SPECS = {
    PAYLOAD_FORMAT_INDICATOR: ("payload_format_indicator", _BYTE, (_PUBLISH, WILL)),
    MESSAGE_EXPIRY_INTERVAL: ("message_expiry_interval", _FOUR, (_PUBLISH, WILL)),
    CONTENT_TYPE: ("content_type", _UTF8, (_PUBLISH, WILL)),
    RESPONSE_TOPIC: ("response_topic", _UTF8, (_PUBLISH, WILL)),
    CORRELATION_DATA: ("correlation_data", _BINARY, (_PUBLISH, WILL)),
    SUBSCRIPTION_IDENTIFIER: ("subscription_identifier", _VARINT, (_PUBLISH, _SUBSCRIBE)),
    SESSION_EXPIRY_INTERVAL: ("session_expiry_interval", _FOUR, (_CONNECT, _CONNACK, _DISCONNECT)),
    ASSIGNED_CLIENT_IDENTIFIER: ("assigned_client_identifier", _UTF8, (_CONNACK,)),
    SERVER_KEEP_ALIVE: ("server_keep_alive", _TWO, (_CONNACK,)),
    AUTHENTICATION_METHOD: ("authentication_method", _UTF8, (_CONNECT, _CONNACK, _AUTH)),
    AUTHENTICATION_DATA: ("authentication_data", _BINARY, (_CONNECT, _CONNACK, _AUTH)),
    REQUEST_PROBLEM_INFORMATION: ("request_problem_information", _BYTE, (_CONNECT,)),
    WILL_DELAY_INTERVAL: ("will_delay_interval", _FOUR, (WILL,)),
    REQUEST_RESPONSE_INFORMATION: ("request_response_information", _BYTE, (_CONNECT,)),
    RESPONSE_INFORMATION: ("response_information", _UTF8, (_CONNACK,)),
    SERVER_REFERENCE: ("server_reference", _UTF8, (_CONNACK, _DISCONNECT)),
    REASON_STRING: ("reason_string", _UTF8, _ALL_WITH_REASON),
    RECEIVE_MAXIMUM: ("receive_maximum", _TWO, (_CONNECT, _CONNACK)),
    TOPIC_ALIAS_MAXIMUM: ("topic_alias_maximum", _TWO, (_CONNECT, _CONNACK)),
    TOPIC_ALIAS: ("topic_alias", _TWO, (_PUBLISH,)),
    MAXIMUM_QOS: ("maximum_qos", _BYTE, (_CONNACK,)),
    RETAIN_AVAILABLE: ("retain_available", _BYTE, (_CONNACK,)),
    USER_PROPERTY: (
        "user_property",
        _PAIR,
        (_CONNECT, _PUBLISH, WILL, _SUBSCRIBE, _UNSUBSCRIBE) + _ALL_WITH_REASON,
    ),
    MAXIMUM_PACKET_SIZE: ("maximum_packet_size", _FOUR, (_CONNECT, _CONNACK)),
    WILDCARD_SUBSCRIPTION_AVAILABLE: ("wildcard_subscription_available", _BYTE, (_CONNACK,)),
    SUBSCRIPTION_IDENTIFIER_AVAILABLE: ("subscription_identifier_available", _BYTE, (_CONNACK,)),
    SHARED_SUBSCRIPTION_AVAILABLE: ("shared_subscription_available", _BYTE, (_CONNACK,)),
}

_TYPE_OF = {pid: spec[1] for pid, spec in PROPERTY_SPECS.items()}
_ALLOWED = {}
for _pid, (_name, _kind, _packets) in PROPERTY_SPECS.items():
    for _packet in _packets:
        _ALLOWED.setdefault(_packet, set()).add(_pid)
_ALLOWED = {packet: frozenset(ids) for packet, ids in _ALLOWED.items()}
# Byte properties whose only legal values are 0 and 1 (MAXIMUM_QOS included: 2 is expressed by absence).
_BOOLEAN_BYTES = frozenset(pid for pid, kind in _TYPE_OF.items() if kind == _BYTE)
_NONZERO = frozenset((RECEIVE_MAXIMUM, MAXIMUM_PACKET_SIZE, TOPIC_ALIAS))


def encode_varint(value: int) -> bytes:
    """Variable Byte Integer encoding (1..4 bytes); ValueError outside 0..268435455."""
    if value < 128:
        if value < 0:
            raise ValueError(f"variable byte integer out of range: {value}")
        return bytes((value,))
    if value > MAX_VARINT:
        raise ValueError(f"variable byte integer out of range: {value}")
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data, offset: int, end: int, partial_ok: bool = False, what: str = "variable byte integer"):
    """Decode a Variable Byte Integer at ``offset`` -> (value, next offset); MalformedPacket naming
    ``what`` if longer than 4 bytes, and if truncated unless ``partial_ok`` (then None: more bytes
    are coming)."""
    value = 0
    shift = 0
    for index in range(offset, min(offset + 4, end)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 128:
            return value, index + 1
        shift += 7
    if end - offset >= 4:
        raise MalformedPacket(f"{what} longer than 4 bytes")
    if partial_ok:
        return None
    raise MalformedPacket(f"truncated {what}")


def encode_utf8(text: str) -> bytes:
    """Two-byte length prefixed UTF-8 string; ValueError if longer than 65535 bytes."""
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise ValueError("UTF-8 string longer than 65535 bytes")
    return len(raw).to_bytes(2, "big") + raw


def encode_binary(data: bytes) -> bytes:
    """Two-byte length prefixed binary data; ValueError if longer than 65535 bytes."""
    if len(data) > 0xFFFF:
        raise ValueError("binary data longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + bytes(data)


def decode_utf8(data, offset: int, end: int) -> tuple[str, int]:
    """Read a length-prefixed UTF-8 string (MQTT-1.5.3: well-formed, no U+0000)."""
    start = offset + 2
    if start > end:
        raise MalformedPacket("truncated string length")
    stop = start + ((data[offset] << 8) | data[offset + 1])
    if stop > end:
        raise MalformedPacket("truncated string")
    try:
        text = bytes(data[start:stop]).decode()
    except UnicodeDecodeError:
        raise MalformedPacket("string is not valid UTF-8") from None
    if "\x00" in text:
        raise MalformedPacket("string contains U+0000")
    return text, stop


def decode_binary(data, offset: int, end: int) -> tuple[bytes, int]:
    """Read two-byte length prefixed binary data."""
    start = offset + 2
    if start > end:
        raise MalformedPacket("truncated binary length")
    stop = start + ((data[offset] << 8) | data[offset + 1])
    if stop > end:
        raise MalformedPacket("truncated binary data")
    return bytes(data[start:stop]), stop


def _encode_byte(pid: int, value: int) -> bytes:
    return bytes((pid, value))


def _encode_two(pid: int, value: int) -> bytes:
    return bytes((pid, value >> 8, value & 0xFF))


def _encode_four(pid: int, value: int) -> bytes:
    return bytes((pid,)) + value.to_bytes(4, "big")


def _encode_string(pid: int, value: str) -> bytes:
    return bytes((pid,)) + encode_utf8(value)


def _encode_data(pid: int, value: bytes) -> bytes:
    return bytes((pid,)) + encode_binary(value)


def _encode_pairs(pid: int, pairs) -> bytes:
    return b"".join(bytes((pid,)) + encode_utf8(name) + encode_utf8(value) for name, value in pairs)


def _encode_varints(pid: int, values) -> bytes:
    return b"".join(bytes((pid,)) + encode_varint(value) for value in values)


_KIND_ENCODERS = {
    _BYTE: _encode_byte,
    _TWO: _encode_two,
    _FOUR: _encode_four,
    _UTF8: _encode_string,
    _BINARY: _encode_data,
    _PAIR: _encode_pairs,
    _VARINT: _encode_varints,
}
_VALUE_ENCODERS = {pid: _KIND_ENCODERS[kind] for pid, kind in _TYPE_OF.items()}


def encode_properties(props: dict) -> bytes:
    """The property block including its varint length prefix; ``b"\\x00"`` when empty."""
    if not props:
        return b"\x00"
    parts = []
    for pid, value in props.items():
        encoder = _VALUE_ENCODERS.get(pid)
        if encoder is None:
            raise ValueError(f"unknown property 0x{pid:02X}")
        parts.append(encoder(pid, value))
    body = b"".join(parts)
    length = len(body)
    return (bytes((length,)) if length < 128 else encode_varint(length)) + body


def decode_properties(data, offset: int, packet_type, end: int | None = None) -> tuple[dict, int]:
    """Decode the property block at ``offset`` for ``packet_type`` (an int, or WILL); returns (props, new_offset).

    ``end`` bounds the enclosing packet (default: end of ``data``).  Raises MalformedPacket for
    truncation or an unknown identifier, ProtocolError for a duplicate, a property not allowed in
    this packet, or a value out of range.
    """
    if end is None:
        end = len(data)
    length, offset = decode_varint(data, offset, end)
    if length == 0:
        return NO_PROPERTIES, offset
    stop = offset + length
    if stop > end:
        raise MalformedPacket("property length exceeds the packet")
    allowed = _ALLOWED.get(packet_type, frozenset())
    props: dict = {}
    while offset < stop:
        pid = data[offset]
        offset += 1
        kind = _TYPE_OF.get(pid)
        if kind is None:
            raise MalformedPacket(f"unknown property identifier 0x{pid:02X}")
        if pid not in allowed:
            raise ProtocolError(f"property {PROPERTY_SPECS[pid][0]} not allowed in this packet")
        if kind == _BYTE:
            if offset >= stop:
                raise MalformedPacket("truncated property")
            value = data[offset]
            offset += 1
        elif kind in (_TWO, _FOUR):
            size = 2 if kind == _TWO else 4
            if offset + size > stop:
                raise MalformedPacket("truncated property")
            value = int.from_bytes(data[offset : offset + size], "big")
            offset += size
        elif kind == _UTF8:
            value, offset = decode_utf8(data, offset, stop)
        elif kind == _BINARY:
            value, offset = decode_binary(data, offset, stop)
        elif kind == _PAIR:
            name, offset = decode_utf8(data, offset, stop)
            val, offset = decode_utf8(data, offset, stop)
            props.setdefault(USER_PROPERTY, []).append((name, val))
            continue
        else:
            value, offset = decode_varint(data, offset, stop)
            if not 1 <= value <= MAX_VARINT:
                raise ProtocolError("subscription identifier must be 1..268435455")
            ids = props.setdefault(SUBSCRIPTION_IDENTIFIER, [])
            if ids and packet_type != _PUBLISH:
                raise ProtocolError("subscription identifier repeated")
            ids.append(value)
            continue
        if pid in props:
            raise ProtocolError(f"property {PROPERTY_SPECS[pid][0]} repeated")
        if pid in _BOOLEAN_BYTES and value > 1:
            raise ProtocolError(f"property {PROPERTY_SPECS[pid][0]} must be 0 or 1")
        if value == 0 and pid in _NONZERO:
            raise ProtocolError(f"property {PROPERTY_SPECS[pid][0]} must not be 0")
        props[pid] = value
    return props, offset
