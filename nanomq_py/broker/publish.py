"""PUBLISH from clients and the QoS 1/2 acknowledgement flows both ways.

Inbound: topic alias resolution (v5), topic and capability checks, ACL,
QoS 2 duplicate suppression by packet id (a message is routed once, on the
first PUBLISH; PUBREL only releases the id), then routing. Outbound acks
(PUBACK/PUBREC/PUBCOMP from subscribers) release inflight slots.
"""

from __future__ import annotations

from time import monotonic

from ..mqtt import properties as p
from ..mqtt import reason_codes as rc
from ..mqtt.codec import encode
from ..mqtt.packets import Puback, Pubcomp, Pubrec, Pubrel
from ..mqtt.topics import validate_topic_name
from .client import CONNECTED
from .message import Message

_PUBACK_V3 = b"\x40\x02"  # a 3.1/3.1.1 PUBACK's fixed header; the packet id follows


def handle_publish(broker, client, packet):
    topic = packet.topic
    props = packet.properties
    v5 = client.version == 5
    if props:
        topic, props = _resolve_properties(broker, client, packet, topic, props)
        if topic is None:
            return
    if client.acl_cache is None or topic not in client.acl_cache:
        if not _check_topic(broker, client, topic):
            return
    qos = packet.qos
    mqtt = broker.settings.mqtt
    if qos > mqtt.max_qos or (packet.retain and not mqtt.retain_available):
        if v5:
            code = rc.QOS_NOT_SUPPORTED if qos > mqtt.max_qos else rc.RETAIN_NOT_SUPPORTED
            broker.protocol_violation(client, code, "QoS or retain not supported")
        else:
            broker.close(client, "protocol_error", log_reason="QoS or retain not supported")
        return
    allowed = client.acl_cache[topic] if client.acl_cache is not None else True
    if not allowed:
        _denied(broker, client, packet)
        return
    if v5 and props.get(p.PAYLOAD_FORMAT_INDICATOR) == 1 and not _is_utf8(packet.payload):
        if qos == 0:
            broker.protocol_violation(client, rc.PAYLOAD_FORMAT_INVALID, "payload is not UTF-8")
        else:
            ack = Puback if qos == 1 else Pubrec
            client.send(
                ack(packet.packet_id, rc.PAYLOAD_FORMAT_INVALID, client.reason("payload is not UTF-8"))
            )
        return
    info = client.info
    if qos == 2:
        awaiting = client.session.awaiting_rel
        pid = packet.packet_id
        if pid in awaiting:
            if broker.queue_store is not None:  # the first PUBREC may still wait for its commit
                broker.queue_store.after_commit(client, encode(Pubrec(pid), client.version))
                return
            client.send(Pubrec(pid))
            return
        if len(awaiting) >= broker.receive_maximum:
            broker.protocol_violation(
                client, rc.RECEIVE_MAXIMUM_EXCEEDED, "too many QoS 2 messages awaiting PUBREL"
            )
            return
        awaiting[pid] = monotonic()
    expires_at = None
    if v5 and p.MESSAGE_EXPIRY_INTERVAL in props:
        expires_at = monotonic() + props[p.MESSAGE_EXPIRY_INTERVAL]
    msg = Message(topic, packet.payload, qos, packet.retain, props, info.client_id, info.username, expires_at)
    matched = broker.route(msg, info.client_id)
    if broker.queue_store is not None and qos:
        broker.queue_store.acknowledge(client, packet, matched)  # once what the message changed is durable
        return
    if qos == 1:
        if v5:
            client.send(Puback(packet.packet_id, rc.SUCCESS if matched else rc.NO_MATCHING_SUBSCRIBERS))
        else:
            client.write(_PUBACK_V3 + packet.packet_id.to_bytes(2, "big"))
    elif qos == 2:
        code = rc.SUCCESS if matched or not v5 else rc.NO_MATCHING_SUBSCRIBERS
        client.send(Pubrec(packet.packet_id, code))


def _check_topic(broker, client, topic):
    """Validate a topic seen for the first time on this connection and cache its ACL verdict."""
    try:
        validate_topic_name(topic, broker.settings.mqtt.max_topic_levels)
    except ValueError as exc:
        if client.version == 5:
            broker.protocol_violation(client, rc.TOPIC_NAME_INVALID, f"invalid topic name: {exc}")
        else:
            broker.close(client, "protocol_error", log_reason=f"invalid topic name {topic!r}: {exc}")
        return False
    allowed = broker.auth.may_publish(client, topic)
    if client.state != CONNECTED:
        return False  # closed while an HTTP ACL check waited
    cache = client.acl_cache  # read after the check: the sweeper may have replaced it meanwhile
    if cache is None:
        cache = client.acl_cache = {}
    elif len(cache) >= 1024:
        cache.clear()
    cache[topic] = allowed
    return True


def _resolve_properties(broker, client, packet, topic, props):
    """Apply and strip the v5 Topic Alias; refuse client-sent subscription ids.
    Returns (topic, properties to keep) or (None, None) after closing the client."""
    if p.SUBSCRIPTION_IDENTIFIER in props:
        broker.protocol_violation(
            client, rc.PROTOCOL_ERROR, "PUBLISH from a client carries a Subscription Identifier"
        )
        return None, None
    alias = props.get(p.TOPIC_ALIAS)
    if alias is None:
        return topic, props
    if alias > broker.settings.mqtt.max_topic_alias:
        broker.protocol_violation(client, rc.TOPIC_ALIAS_INVALID, f"topic alias {alias} out of range")
        return None, None
    aliases = client.aliases_in
    if aliases is None:
        aliases = client.aliases_in = {}
    if topic:
        aliases[alias] = topic
    else:
        topic = aliases.get(alias)
        if topic is None:
            broker.protocol_violation(client, rc.PROTOCOL_ERROR, f"unknown topic alias {alias}")
            return None, None
    props = dict(props)
    del props[p.TOPIC_ALIAS]
    return topic, props


def _denied(broker, client, packet):
    """An ACL-denied publish: v3 acks it anyway (the spec's rule), v5 says 0x87."""
    broker.stats.publishes_denied += 1
    if broker.settings.auth.deny_action == "disconnect":
        broker.server_disconnect(client, rc.NOT_AUTHORIZED, "not_authorized")
        return
    if packet.qos == 0:
        return
    code = rc.NOT_AUTHORIZED if client.version == 5 else 0
    why = client.reason(f"not authorized to publish to {packet.topic}")
    if packet.qos == 1:
        client.send(Puback(packet.packet_id, code, why))
    else:
        if not code:
            client.session.awaiting_rel[packet.packet_id] = monotonic()
        client.send(Pubrec(packet.packet_id, code, why))


def _is_utf8(payload):
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def handle_puback(broker, client, packet):
    msg = client.session.acked(packet.packet_id, expect_comp=False)
    if msg is not None and broker.hooks is not None:
        broker.hooks.on_message_acked(client.info, msg)


def handle_pubrec(broker, client, packet):
    if client.session.received(packet.packet_id, failed=packet.reason_code >= 0x80):
        client.write(encode(Pubrel(packet.packet_id), client.version))
    elif client.version == 5 and packet.reason_code < 0x80:
        client.send(Pubrel(packet.packet_id, rc.PACKET_IDENTIFIER_NOT_FOUND))


def handle_pubrel(broker, client, packet):
    found = client.session.awaiting_rel.pop(packet.packet_id, None) is not None
    code = 0 if found or client.version != 5 else rc.PACKET_IDENTIFIER_NOT_FOUND
    if broker.store is not None:  # the id may be reused after PUBCOMP: its release must be durable first
        broker.store.after_commit(client, encode(Pubcomp(packet.packet_id, code), client.version))
        return
    client.send(Pubcomp(packet.packet_id, code))


def handle_pubcomp(broker, client, packet):
    msg = client.session.acked(packet.packet_id, expect_comp=True)
    if msg is not None and broker.hooks is not None:
        broker.hooks.on_message_acked(client.info, msg)


HANDLERS = {3: handle_publish, 4: handle_puback, 5: handle_pubrec, 6: handle_pubrel, 7: handle_pubcomp}
