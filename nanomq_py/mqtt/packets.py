"""MQTT control packets as small plain classes: one per packet type, fields named as in the spec.

They hold already-decoded values only (str topics, bytes payloads, dict properties) and no
behaviour beyond equality and repr; ``codec`` turns them into bytes and back.  ``__slots__``
keeps a per-message object at a few dozen bytes.
"""

from .properties import NO_PROPERTIES

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

PACKET_NAMES = {
    CONNECT: "CONNECT",
    CONNACK: "CONNACK",
    PUBLISH: "PUBLISH",
    PUBACK: "PUBACK",
    PUBREC: "PUBREC",
    PUBREL: "PUBREL",
    PUBCOMP: "PUBCOMP",
    SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK",
    UNSUBSCRIBE: "UNSUBSCRIBE",
    UNSUBACK: "UNSUBACK",
    PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT",
    AUTH: "AUTH",
}


class _Fields:
    """Equality and repr over ``__slots__``, so tests can compare and print packets."""

    __slots__ = ()
    _fields: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._fields = cls._fields + tuple(cls.__dict__.get("__slots__", ()))

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    __hash__ = None

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"


class Will(_Fields):
    """The will message carried by CONNECT."""

    __slots__ = ("topic", "payload", "qos", "retain", "properties")

    def __init__(self, topic, payload=b"", qos=0, retain=False, properties=NO_PROPERTIES):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties


class Connect(_Fields):
    """proto_ver is the protocol level: 3 ("MQIsdp"), 4 (3.1.1) or 5; password is bytes."""

    TYPE = CONNECT
    __slots__ = (
        "proto_name",
        "proto_ver",
        "clean_start",
        "keepalive",
        "client_id",
        "username",
        "password",
        "will",
        "properties",
    )

    def __init__(
        self,
        proto_name="MQTT",
        proto_ver=4,
        clean_start=True,
        keepalive=60,
        client_id="",
        username=None,
        password=None,
        will=None,
        properties=NO_PROPERTIES,
    ):
        self.proto_name = proto_name
        self.proto_ver = proto_ver
        self.clean_start = clean_start
        self.keepalive = keepalive
        self.client_id = client_id
        self.username = username
        self.password = password
        self.will = will
        self.properties = properties


class Connack(_Fields):
    """reason_code is the v3 return code or the v5 reason code, written as given."""

    TYPE = CONNACK
    __slots__ = ("session_present", "reason_code", "properties")

    def __init__(self, session_present=False, reason_code=0, properties=NO_PROPERTIES):
        self.session_present = session_present
        self.reason_code = reason_code
        self.properties = properties


class Publish(_Fields):
    """topic may be "" in v5 when a TOPIC_ALIAS property names it (the broker resolves aliases)."""

    TYPE = PUBLISH
    __slots__ = ("topic", "payload", "qos", "retain", "dup", "packet_id", "properties")

    def __init__(
        self, topic, payload=b"", qos=0, retain=False, dup=False, packet_id=0, properties=NO_PROPERTIES
    ):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packet_id = packet_id
        self.properties = properties


class _Ack(_Fields):
    """PUBACK / PUBREC / PUBREL / PUBCOMP: a packet id and (v5) a reason code."""

    __slots__ = ("packet_id", "reason_code", "properties")

    def __init__(self, packet_id, reason_code=0, properties=NO_PROPERTIES):
        self.packet_id = packet_id
        self.reason_code = reason_code
        self.properties = properties


class Puback(_Ack):
    TYPE = PUBACK
    __slots__ = ()


class Pubrec(_Ack):
    TYPE = PUBREC
    __slots__ = ()


class Pubrel(_Ack):
    TYPE = PUBREL
    __slots__ = ()


class Pubcomp(_Ack):
    TYPE = PUBCOMP
    __slots__ = ()


class SubOptions(_Fields):
    """Per-filter SUBSCRIBE options; v3.x only carries qos."""

    __slots__ = ("qos", "no_local", "retain_as_published", "retain_handling")

    def __init__(self, qos=0, no_local=False, retain_as_published=False, retain_handling=0):
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling


class Subscribe(_Fields):
    """topics: list of (filter, SubOptions)."""

    TYPE = SUBSCRIBE
    __slots__ = ("packet_id", "topics", "properties")

    def __init__(self, packet_id, topics, properties=NO_PROPERTIES):
        self.packet_id = packet_id
        self.topics = topics
        self.properties = properties


class Suback(_Fields):
    TYPE = SUBACK
    __slots__ = ("packet_id", "reason_codes", "properties")

    def __init__(self, packet_id, reason_codes, properties=NO_PROPERTIES):
        self.packet_id = packet_id
        self.reason_codes = reason_codes
        self.properties = properties


class Unsubscribe(_Fields):
    TYPE = UNSUBSCRIBE
    __slots__ = ("packet_id", "filters", "properties")

    def __init__(self, packet_id, filters, properties=NO_PROPERTIES):
        self.packet_id = packet_id
        self.filters = filters
        self.properties = properties


class Unsuback(_Fields):
    """reason_codes are only on the wire in v5."""

    TYPE = UNSUBACK
    __slots__ = ("packet_id", "reason_codes", "properties")

    def __init__(self, packet_id, reason_codes=(), properties=NO_PROPERTIES):
        self.packet_id = packet_id
        self.reason_codes = reason_codes
        self.properties = properties


class Pingreq(_Fields):
    TYPE = PINGREQ
    __slots__ = ()


class Pingresp(_Fields):
    TYPE = PINGRESP
    __slots__ = ()


class Disconnect(_Fields):
    TYPE = DISCONNECT
    __slots__ = ("reason_code", "properties")

    def __init__(self, reason_code=0, properties=NO_PROPERTIES):
        self.reason_code = reason_code
        self.properties = properties


class Auth(_Fields):
    TYPE = AUTH
    __slots__ = ("reason_code", "properties")

    def __init__(self, reason_code=0, properties=NO_PROPERTIES):
        self.reason_code = reason_code
        self.properties = properties
