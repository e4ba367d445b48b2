"""SUBSCRIBE and UNSUBSCRIBE.

Each filter is validated, checked against the ACL and the broker's
capabilities, granted min(requested, maximum) QoS and added to the session
and the trie; SUBACK goes out before the retained messages the subscription
asks for (Retain Handling 0: always, 1: only for a new subscription, 2: never;
none for shared subscriptions).
"""

from __future__ import annotations

import logging

from ..mqtt import properties as p
from ..mqtt import reason_codes as rc
from ..mqtt.packets import Suback, SubOptions, Unsuback
from ..mqtt.properties import NO_PROPERTIES
from ..mqtt.topics import split_shared, validate_topic_filter
from .client import CONNECTED
from .trie import Subscription

_V3_FAILURE = 0x80

log = logging.getLogger("nanomq.broker")


def handle_subscribe(broker, client, packet):
    session = client.session
    info = client.info
    hooks = broker.hooks
    v5 = client.version == 5
    sub_ids = packet.properties.get(p.SUBSCRIPTION_IDENTIFIER) if packet.properties else None
    sub_id = sub_ids[0] if sub_ids else None
    codes = []
    problems = []
    retained_to_send = []
    for flt, opts in packet.topics:
        if hooks is not None:
            hooks.on_client_subscribe(info, flt, opts)
        code = _refusal(broker, client, flt, opts)
        if code is None:
            return  # the connection was closed for a protocol error
        if code:
            codes.append(code if v5 else _V3_FAILURE)
            problems.append(f"{flt}: {rc.reason_name(code)}")
            if broker.settings.auth.deny_action == "disconnect" and code == rc.NOT_AUTHORIZED:
                _log_refusals(broker, client, problems)
                client.send(Suback(packet.packet_id, codes, client.reason("; ".join(problems))))
                broker.server_disconnect(client, rc.NOT_AUTHORIZED, "not_authorized")
                return
            continue
        granted = min(opts.qos, broker.settings.mqtt.max_qos)
        if granted != opts.qos:
            opts = SubOptions(granted, opts.no_local, opts.retain_as_published, opts.retain_handling)
        sub = Subscription(session, flt, opts, sub_id)
        old = session.subscriptions.get(flt)
        if old is not None:
            broker.trie.remove(old)
        session.subscriptions[flt] = sub
        broker.trie.add(sub)
        if old is None:
            for bridge in broker.bridges.values():  # transparent bridges mirror it upstream
                bridge.mirror_subscribe(flt)
        codes.append(granted)
        if hooks is not None:
            hooks.on_session_subscribed(info, flt, opts)
        if opts.retain_handling == 0 or (opts.retain_handling == 1 and old is None):
            if split_shared(flt)[0] is None:
                retained_to_send.append(sub)
    if problems:
        _log_refusals(broker, client, problems)
    suback = Suback(
        packet.packet_id, codes, client.reason("; ".join(problems)) if problems else NO_PROPERTIES
    )
    if broker.store is not None and session.expiry_interval != 0:
        broker.store.send_after_commit(client, suback)  # the subscription is durable first
    else:
        client.send(suback)
    for sub in retained_to_send:
        for msg in broker.retained.matching(sub.filter):
            if msg.from_client_id == info.client_id and sub.opts.no_local:
                continue
            qos = min(msg.qos, sub.opts.qos)
            session.deliver(msg, qos, True, (sub.sub_id,) if sub.sub_id else None)


def _log_refusals(broker, client, problems):
    """One line per SUBSCRIBE however many filters it had refused, and a count of each."""
    broker.stats.subscriptions_refused += len(problems)
    host, port = client.transport.peer
    log.warning(
        "refused subscriptions of client %r from %s:%s: %s", client.client_id, host, port, "; ".join(problems)
    )


def _refusal(broker, client, flt, opts):
    """0 if the filter may be subscribed, else the v5 reason code; None if the
    connection was closed (No Local on a shared subscription is a protocol error)."""
    mqtt = broker.settings.mqtt
    try:
        validate_topic_filter(flt, mqtt.max_topic_levels)
    except ValueError:
        return rc.TOPIC_FILTER_INVALID
    group, real = split_shared(flt)
    if group is not None:
        if not mqtt.shared_subscription:
            return rc.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED
        if opts.no_local and client.version == 5:
            broker.protocol_violation(client, rc.PROTOCOL_ERROR, "No Local set on a shared subscription")
            return None
    if not mqtt.wildcard_subscription and ("+" in real or "#" in real):
        return rc.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED
    session = client.session
    if mqtt.max_subscriptions and flt not in session.subscriptions:
        if len(session.subscriptions) >= mqtt.max_subscriptions:
            return rc.QUOTA_EXCEEDED
    allowed = broker.auth.may_subscribe(client, flt)
    if client.state != CONNECTED:
        return None  # closed while an HTTP ACL check waited
    return 0 if allowed else rc.NOT_AUTHORIZED


def handle_unsubscribe(broker, client, packet):
    session = client.session
    info = client.info
    hooks = broker.hooks
    codes = []
    for flt in packet.filters:
        if hooks is not None:
            hooks.on_client_unsubscribe(info, flt)
        sub = session.subscriptions.pop(flt, None)
        if sub is None:
            codes.append(rc.NO_SUBSCRIPTION_EXISTED)
            continue
        broker.trie.remove(sub)
        for bridge in broker.bridges.values():
            bridge.mirror_unsubscribe(flt)
        if sub.group is not None and session.queue:
            broker.hand_over_shared(session, sub.group)  # what it has not started to receive
        codes.append(rc.SUCCESS)
        if hooks is not None:
            hooks.on_session_unsubscribed(info, flt)
    if broker.store is not None and session.expiry_interval != 0:
        broker.store.send_after_commit(client, Unsuback(packet.packet_id, codes))
    else:
        client.send(Unsuback(packet.packet_id, codes))


HANDLERS = {8: handle_subscribe, 10: handle_unsubscribe}
