"""CONNECT, DISCONNECT, PINGREQ and AUTH: how a client joins, stays and leaves.

CONNECT is validated as the spec says (client id rules, credentials,
authentication method), an existing connection with the same client id is
taken over, the session is resumed or started, and CONNACK is sent with the
limits the broker enforces. Unacknowledged messages are then resent.
"""

from __future__ import annotations

import os
from time import monotonic, time

from ..mqtt import properties as p
from ..mqtt import reason_codes as rc
from ..mqtt.packets import Connack, Pingresp
from ..mqtt.properties import NO_PROPERTIES
from ..mqtt.topics import validate_topic_name
from .client import CONNECTED, NEW
from .events import ClientInfo
from .message import Message
from .session import Session
from .sys_topics import client_online
from .will import cancel_will

_V5_CODE_FOR = {
    "bad_username_or_password": rc.BAD_USER_NAME_OR_PASSWORD,
    "not_authorized": rc.NOT_AUTHORIZED,
    "server_busy": rc.SERVER_BUSY,
}
_V3_CODE_FOR = {
    "bad_username_or_password": rc.CONNACK_V3_BAD_USERNAME_OR_PASSWORD,
    "not_authorized": rc.CONNACK_V3_NOT_AUTHORIZED,
    "server_busy": rc.CONNACK_V3_SERVER_UNAVAILABLE,
}
_NEVER = 0xFFFFFFFF


def handle_connect(broker, client, packet):
    version = packet.proto_ver
    client.version = version
    v5 = version == 5
    props = packet.properties
    client_id = packet.client_id
    assigned = False
    peer_host, peer_port = client.transport.peer
    if not client_id:
        if version == 3 or (version == 4 and not packet.clean_start):
            client.info = ClientInfo(
                "", packet.username, version, packet.keepalive, peer_host, peer_port, 0, False
            )
            return _refuse(broker, client, "identifier_rejected", rc.CLIENT_IDENTIFIER_NOT_VALID, 2)
        client_id = "nanomq-" + os.urandom(8).hex()
        assigned = True
    info = ClientInfo(
        client_id,
        packet.username,
        version,
        packet.keepalive,
        peer_host,
        peer_port,
        int(time() * 1000),
        packet.clean_start,
    )
    client.info = info
    hooks = broker.hooks
    if hooks is not None:
        hooks.on_client_connect(info)

    if v5 and p.AUTHENTICATION_METHOD in props:
        return _refuse(broker, client, "bad_authentication_method", rc.BAD_AUTHENTICATION_METHOD, 5)
    if _over_connection_limit(broker, client_id):
        return _refuse_busy(broker, client)
    auth = broker.auth
    sockport = _local_port(client.transport) if auth.http is not None else 0
    verdict = auth.authenticate(info, packet.password, sockport)
    if client.state != NEW:
        return None  # closed while authentication waited (connect_timeout)
    if verdict != "success":
        return _refuse(broker, client, verdict, _V5_CODE_FOR[verdict], _V3_CODE_FOR[verdict])
    client.superuser = auth.is_superuser(info, packet.password, sockport)
    if client.state != NEW:
        return None
    if auth.http is not None and _over_connection_limit(broker, client_id):
        return _refuse_busy(broker, client)  # others connected while this one waited for HTTP

    will = None
    if packet.will is not None:
        will = _will_message(broker, client, packet.will, info)
        if will is None:
            return None
        if not auth.may_publish(client, will[0].topic):
            return _refuse(broker, client, "not_authorized", rc.NOT_AUTHORIZED, rc.CONNACK_V3_NOT_AUTHORIZED)
        if client.state != NEW:
            return None
    client.will = will
    keepalive = packet.keepalive
    max_keepalive = broker.settings.mqtt.max_keepalive
    if max_keepalive and (keepalive == 0 or keepalive > max_keepalive):
        if not v5:  # 3.x has no way to tell the client: refuse it, as Mosquitto does
            return _refuse(broker, client, "identifier_rejected", rc.CLIENT_IDENTIFIER_NOT_VALID, 2)
        keepalive = max_keepalive  # announced as Server Keep Alive
    client.keepalive = keepalive
    client.last_seen = monotonic()
    if v5:
        _apply_client_limits(client, props)

    old = broker.clients.get(client_id)
    if old is not None and old is not client:
        # Closing settles the old connection at once (connection_lost), so the
        # new one owns the client id and the session from here on.
        broker.server_disconnect(old, rc.SESSION_TAKEN_OVER, "takenover")

    session, present = _attach_session(broker, client, packet, props)
    ack_props = _connack_properties(broker, client, session, assigned, client_id) if v5 else NO_PROPERTIES
    if hooks is not None:
        hooks.on_client_connack(info, "success")
    # MQTT 3.1 has no Session Present flag: that CONNACK byte is reserved there.
    client.send(Connack(present and version != 3, 0, ack_props))
    client.state = CONNECTED
    broker.clients[client_id] = client
    if hooks is not None:
        hooks.on_client_connected(info)
    client_online(broker, info)
    if present:
        session.resend_inflight(client)
    session.fill_window()
    return None


def sniff_protocol_level(data):
    """The protocol level byte of a CONNECT at the start of `data`, or None.
    Lets a CONNECT that failed to decode still be answered in its own version."""
    if len(data) < 2 or data[0] != 0x10:
        return None
    offset = 1
    while offset < 5 and offset < len(data) and data[offset] & 0x80:
        offset += 1
    offset += 1  # past the last remaining-length byte
    if len(data) < offset + 2:
        return None
    level_at = offset + 2 + ((data[offset] << 8) | data[offset + 1])
    return data[level_at] if level_at < len(data) else None


def _refuse(broker, client, reason, v5_code, v3_code, log_reason=None):
    broker.stats.refused += 1
    hooks = broker.hooks
    if hooks is not None:
        hooks.on_client_connack(client.info, reason)
    if client.version == 5:
        client.send(Connack(False, v5_code, client.reason(log_reason or reason.replace("_", " "))))
    else:
        client.send(Connack(False, v3_code))
    broker.close(client, reason, log_reason=log_reason)


def _over_connection_limit(broker, client_id):
    limit = broker.settings.mqtt.max_connections
    return limit and len(broker.clients) >= limit and client_id not in broker.clients


def _refuse_busy(broker, client):
    broker.stats.connections_refused += 1
    limit = broker.settings.mqtt.max_connections
    why = f"max_connections ({limit}) reached"
    return _refuse(broker, client, "server_busy", rc.SERVER_BUSY, rc.CONNACK_V3_SERVER_UNAVAILABLE, why)


def _local_port(transport):
    """The port the client connected to (the %p of http_auth)."""
    try:
        return transport.sock.getsockname()[1]
    except (AttributeError, OSError):
        return 0


def _will_message(broker, client, will, info):
    """The will as a Message, or None after refusing the CONNECT for it."""
    try:
        validate_topic_name(will.topic, broker.settings.mqtt.max_topic_levels)
    except ValueError as exc:
        code = rc.TOPIC_NAME_INVALID
        if client.version == 5:
            _refuse(broker, client, "topic_name_invalid", code, code)
        else:
            broker.close(client, "protocol_error", log_reason=f"invalid will topic: {exc}")
        return None
    mqtt = broker.settings.mqtt
    if will.qos > mqtt.max_qos or (will.retain and not mqtt.retain_available):
        if client.version == 5:
            code = rc.QOS_NOT_SUPPORTED if will.qos > mqtt.max_qos else rc.RETAIN_NOT_SUPPORTED
            _refuse(broker, client, rc.reason_name(code), code, code)
            return None
    props = dict(will.properties) if will.properties else NO_PROPERTIES
    delay = 0
    if props:
        delay = props.pop(p.WILL_DELAY_INTERVAL, 0)
        if props.get(p.PAYLOAD_FORMAT_INDICATOR) == 1:
            try:
                will.payload.decode("utf-8")
            except UnicodeDecodeError:
                code = rc.PAYLOAD_FORMAT_INVALID
                _refuse(broker, client, "payload_format_invalid", code, code, "will payload is not UTF-8")
                return None
    # The Message Expiry Interval of a will starts when it is published (will.publish_will).
    msg = Message(
        will.topic,
        will.payload,
        min(will.qos, mqtt.max_qos),
        will.retain and mqtt.retain_available,
        props,
        info.client_id,
        info.username,
    )
    return (msg, delay)


def _apply_client_limits(client, props):
    receive_max = props.get(p.RECEIVE_MAXIMUM)
    if receive_max:
        client.send_window = min(client.send_window, receive_max)
    client.max_packet_size = props.get(p.MAXIMUM_PACKET_SIZE, 0)
    client.topic_alias_max = props.get(p.TOPIC_ALIAS_MAXIMUM, 0)
    if client.topic_alias_max:
        client.aliases_out = {}
    client.problem_info = props.get(p.REQUEST_PROBLEM_INFORMATION, 1) == 1


def _attach_session(broker, client, packet, props):
    """Resume the client's session or start a new one; returns (session, present)."""
    mqtt = broker.settings.mqtt
    client_id = client.info.client_id
    session = broker.sessions.get(client_id)
    if session is not None and packet.clean_start:
        broker.end_session(session, "discarded")
        session = None
    present = session is not None
    if session is None:
        make_session = Session if broker.store is None else broker.store.new_session
        session = make_session(broker, client_id)
        broker.sessions[client_id] = session
    else:
        cancel_will(broker, session)
        session.expires_at = None
    if client.version == 5:
        session.expiry_interval = _session_expiry(mqtt, props.get(p.SESSION_EXPIRY_INTERVAL, 0))
    elif packet.clean_start:
        session.expiry_interval = 0
    else:
        session.expiry_interval = mqtt.session_expiry_interval or None
    session.client = client
    session.info = client.info
    client.session = session
    if broker.store is not None:
        broker.store.attached(session, client)
    return session, present


def _session_expiry(mqtt, expiry):
    """A v5 Session Expiry Interval as the session keeps it: at most
    max_session_expiry_interval when that is set; None for never (0xFFFFFFFF)."""
    cap = mqtt.max_session_expiry_interval
    if cap and (expiry == _NEVER or expiry > cap):
        return cap
    return None if expiry == _NEVER else expiry


def _connack_properties(broker, client, session, assigned, client_id):
    mqtt = broker.settings.mqtt
    props = {
        p.RECEIVE_MAXIMUM: broker.receive_maximum,
        p.MAXIMUM_PACKET_SIZE: mqtt.max_packet_size,
        p.TOPIC_ALIAS_MAXIMUM: mqtt.max_topic_alias,
    }
    if mqtt.max_qos < 2:
        props[p.MAXIMUM_QOS] = mqtt.max_qos
    if not mqtt.retain_available:
        props[p.RETAIN_AVAILABLE] = 0
    if not mqtt.wildcard_subscription:
        props[p.WILDCARD_SUBSCRIPTION_AVAILABLE] = 0
    if not mqtt.shared_subscription:
        props[p.SHARED_SUBSCRIPTION_AVAILABLE] = 0
    if assigned:
        props[p.ASSIGNED_CLIENT_IDENTIFIER] = client_id
    if mqtt.max_session_expiry_interval:
        props[p.SESSION_EXPIRY_INTERVAL] = int(session.expiry_interval)
    if client.keepalive != client.info.keepalive:
        props[p.SERVER_KEEP_ALIVE] = client.keepalive
    return props


def handle_pingreq(broker, client, packet):
    client.send(Pingresp())


def handle_disconnect(broker, client, packet):
    """A client's DISCONNECT: the will is dropped (v5: unless reason 0x04) and the
    session expiry may be changed, but not from 0 to non-zero."""
    session = client.session
    if client.v5:
        expiry = packet.properties.get(p.SESSION_EXPIRY_INTERVAL)
        if expiry is not None:
            if session.expiry_interval == 0 and expiry != 0:
                broker.protocol_violation(
                    client, rc.PROTOCOL_ERROR, "session expiry changed from 0 on DISCONNECT"
                )
                return
            session.expiry_interval = _session_expiry(broker.settings.mqtt, expiry)
    code = packet.reason_code if client.v5 else 0
    if code != rc.DISCONNECT_WITH_WILL:
        client.will = None
    broker.close(client, "normal" if code == 0 else rc.reason_name(code, 14))


def handle_auth(broker, client, packet):
    """No enhanced authentication method is offered, so AUTH is never expected."""
    broker.protocol_violation(client, rc.PROTOCOL_ERROR, "AUTH without an authentication method")


HANDLERS = {12: handle_pingreq, 14: handle_disconnect, 15: handle_auth}
