"""Per-connection protocol state: who the client is, what it negotiated, and
how messages are written to it.

The transport owns the socket; a Client only sees an object with
`write(bytes)`, `close()`, `pending` (bytes not yet written) and `peer`.
"""

from __future__ import annotations

from time import monotonic

from ..mqtt.codec import encode
from ..mqtt.properties import NO_PROPERTIES, REASON_STRING

NEW = 0  # waiting for CONNECT
CONNECTED = 1
CLOSED = 2

# Outgoing topic aliases only for topics at least this long: the alias costs 3
# bytes per PUBLISH and a wire form of its own, shorter topics gain nothing.
_ALIAS_MIN_TOPIC_LENGTH = 8


class Client:
    __slots__ = (
        "broker",
        "transport",
        "state",
        "version",
        "info",
        "session",
        "will",
        "keepalive",
        "last_seen",
        "opened_at",
        "send_window",
        "max_packet_size",
        "topic_alias_max",
        "aliases_in",
        "aliases_out",
        "problem_info",
        "close_reason",
        "acl_cache",
        "superuser",
    )

    def __init__(self, broker, transport):
        self.broker = broker
        self.transport = transport
        self.state = NEW
        self.version = 4
        self.info = None  # events.ClientInfo once CONNECT is read
        self.session = None
        self.will = None  # will Message, dropped on a normal DISCONNECT
        self.keepalive = 0
        now = monotonic()
        self.last_seen = now  # refreshed by the transport on every read
        self.opened_at = now
        self.send_window = broker.settings.mqtt.max_inflight_window  # min(ours, client's Receive Maximum)
        self.max_packet_size = 0  # client's Maximum Packet Size (v5), 0: none
        self.topic_alias_max = 0  # aliases the client accepts from us (v5)
        self.aliases_in = None  # topic alias -> topic, for PUBLISH from the client
        self.aliases_out = None  # topic -> alias we gave it, when the client accepts aliases (v5)
        self.problem_info = True  # v5 Request Problem Information
        self.close_reason = None
        self.acl_cache = None  # topic -> may publish, for topics this connection used
        self.superuser = False  # http_auth super_req said so at CONNECT: no ACL checks

    @property
    def client_id(self):
        return self.info.client_id if self.info is not None else ""

    @property
    def v5(self):
        return self.version == 5

    def reason(self, why):
        """Properties carrying a Reason String, if this is a v5 client that asked for problem information."""
        return {REASON_STRING: why} if self.version == 5 and self.problem_info else NO_PROPERTIES

    def write(self, data):
        stats = self.broker.stats
        stats.packets_sent += 1
        stats.bytes_sent += len(data)
        self.transport.write(data)

    def send(self, packet):
        data = encode(packet, self.version)
        if self.max_packet_size and len(data) > self.max_packet_size:
            # The client's Maximum Packet Size: a Reason String is the part that may go.
            props = getattr(packet, "properties", NO_PROPERTIES)
            if REASON_STRING in props:
                packet.properties = {k: v for k, v in props.items() if k != REASON_STRING}
                data = encode(packet, self.version)
        stats = self.broker.stats
        stats.packets_sent += 1
        stats.bytes_sent += len(data)
        self.transport.write(data)

    def send_publish(self, msg, qos, retain, sub_ids, pid, dup=False):
        """Write msg as a PUBLISH; False if it was dropped for this client
        (too large for the client, or the client is not reading and its
        output buffer is full for QoS 0)."""
        aliases = self.aliases_out
        new_alias = 0
        if aliases is None or len(msg.topic) < _ALIAS_MIN_TOPIC_LENGTH:
            head, tail = msg.wire_parts(self.version == 5, qos, retain, sub_ids)
        else:
            alias = aliases.get(msg.topic)
            if alias is not None:
                head, tail = msg.wire_parts(True, qos, retain, sub_ids, alias, True)
            elif len(aliases) < self.topic_alias_max:
                new_alias = len(aliases) + 1
                head, tail = msg.wire_parts(True, qos, retain, sub_ids, new_alias)
            else:
                head, tail = msg.wire_parts(True, qos, retain, sub_ids)
        if dup:
            head = bytes((head[0] | 0x08,)) + head[1:]
        size = len(head) + len(tail) + (2 if qos else 0)
        if self.max_packet_size and size > self.max_packet_size:
            self.broker.message_dropped(self.session, msg, "too_large")
            return False
        transport = self.transport
        if qos == 0:
            if transport.pending > self.broker.max_outgoing_bytes:
                self.broker.message_dropped(self.session, msg, "queue_full")
                return False
            transport.write(head + tail)
        else:
            transport.write(head + pid.to_bytes(2, "big") + tail)
        if new_alias:
            aliases[msg.topic] = new_alias
        stats = self.broker.stats
        stats.packets_sent += 1
        stats.publish_sent += 1
        stats.bytes_sent += size
        hooks = self.broker.hooks
        if hooks is not None:
            hooks.on_message_delivered(self.info, msg)
        return True
