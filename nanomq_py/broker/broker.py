"""The broker: its state, the packet dispatch, routing, and connection life.

Plain synchronous code, no sockets and no gevent: the transport hands in
decoded packets and gets bytes back through each Client's transport. Each
packet type has its own handler module (connect, publish, subscribe, ...).
"""

from __future__ import annotations

import logging
from time import monotonic

from ..mqtt import reason_codes as rc
from ..mqtt.errors import UnsupportedProtocolVersion
from ..mqtt.packets import DISCONNECT, Connack, Disconnect
from ..mqtt.properties import NO_PROPERTIES, REASON_STRING
from . import connect, publish, subscribe
from .auth import Authenticator
from .client import CLOSED, CONNECTED, NEW, Client
from .flow import FlowControl
from .retained import RetainedStore
from .stats import Stats
from .sys_stats import SysStats
from .sys_topics import client_offline
from .trie import SubscriptionTrie
from .will import publish_will, schedule_will

log = logging.getLogger("nanomq.broker")

_REASON_BY_ERROR_CODE = {
    rc.MALFORMED_PACKET: "malformed_packet",
    rc.PROTOCOL_ERROR: "protocol_error",
    rc.PACKET_TOO_LARGE: "packet_too_large",
}


class Broker:
    def __init__(self, settings, hooks=None):
        self.settings = settings
        self.hooks = hooks  # a BrokerEvents, or None: no event work at all
        mqtt = settings.mqtt
        self.max_mqueue_len = mqtt.max_mqueue_len
        self.max_outgoing_bytes = mqtt.max_outgoing_bytes
        # QoS 2 messages a client may have awaiting PUBREL (v5 Receive Maximum); 0 means the protocol's 65535.
        self.receive_maximum = min(mqtt.max_awaiting_rel, 65535) or 65535
        self.trie = SubscriptionTrie()
        self.retained = RetainedStore()
        self.auth = Authenticator(settings.auth)
        self.acl_caches_expire_at = 0.0  # when HTTP ACL verdicts cached per connection go stale
        self.stats = Stats()
        self.flow = FlowControl(mqtt.max_mqueue_len)
        self.drop_warning_at = 0.0
        self.connections = set()  # every Client with an open network connection
        self.clients = {}  # client id -> connected Client
        self.sessions = {}  # client id -> Session (connected or kept)
        self.delayed_wills = set()  # sessions holding a will that waits for its delay
        self.handlers = publish.HANDLERS | subscribe.HANDLERS | connect.HANDLERS
        self.sys_stats = SysStats(self, mqtt.sys_interval) if mqtt.sys_interval else None
        self.bridges = {}  # name -> bridge.Bridge, filled by the server when bridges are configured
        self.store = None  # the durable store (nanomq_py.store) when `sqlite { }` is configured
        # The store whose commit a QoS 1/2 PUBLISH's ack waits for: `store`, or with only a
        # `bridges.mqtt.cache { }` block the one that holds just the bridges' queues.
        self.queue_store = None

    # -- connection life ----------------------------------------------------

    def reload_auth(self, auth_settings):
        """New passwords, ACL and http_auth (nanomq reload): for new CONNECTs, and for
        every connection's next publish or subscribe (cached verdicts are dropped)."""
        self.auth = Authenticator(auth_settings)
        self.settings.auth = auth_settings
        for client in self.connections:
            client.acl_cache = None

    def connection_made(self, transport):
        client = Client(self, transport)
        self.connections.add(client)
        return client

    def packet_received(self, client, packet):
        self.stats.packets_received += 1
        self.flow.current = client
        if client.state != CONNECTED:
            if client.state == NEW and packet.TYPE == 1:
                connect.handle_connect(self, client, packet)
            elif client.state == NEW:
                self.close(client, "protocol_error", log_reason="first packet is not CONNECT")
            return
        handler = self.handlers.get(packet.TYPE)
        if handler is None:  # CONNECT again, or a server-to-client packet type
            self.protocol_violation(client, rc.PROTOCOL_ERROR, f"unexpected {type(packet).__name__} packet")
            return
        handler(self, client, packet)

    def decode_failed(self, client, exc, data=b""):
        """The codec refused the client's bytes (`data`, the chunk that failed):
        answer as the spec says and close."""
        if client.state == NEW:
            if isinstance(exc, UnsupportedProtocolVersion):
                # The level is not one we speak, so answer in the 3.1.1 format every client reads.
                client.send(Connack(False, rc.CONNACK_V3_UNACCEPTABLE_PROTOCOL_VERSION))
                self.stats.refused += 1
                self.close(client, "unacceptable_protocol_version", log_reason=exc.message)
                return
            if connect.sniff_protocol_level(data) == 5:
                # A v5 CONNECT that does not decode is refused with a CONNACK carrying the reason.
                client.version = 5
                client.send(Connack(False, exc.reason_code, {REASON_STRING: exc.message}))
                self.stats.refused += 1
        self.protocol_violation(client, exc.reason_code, exc.message)

    def protocol_violation(self, client, code, why):
        """End a connection that broke the protocol (v5: DISCONNECT with the reason code,
        which also names the reason events report)."""
        self.stats.protocol_errors += 1
        if client.v5:
            if client.state == CONNECTED:
                client.send(Disconnect(code, {REASON_STRING: why} if client.problem_info else NO_PROPERTIES))
            reason = rc.reason_name(code, DISCONNECT)
        else:
            reason = _REASON_BY_ERROR_CODE.get(code, "protocol_error")
        self.close(client, reason, log_reason=why)

    def server_disconnect(self, client, code, reason):
        """Broker-initiated close of a connected client (v5 clients get a DISCONNECT)."""
        if client.state == CONNECTED and client.v5:
            client.send(Disconnect(code, client.reason(rc.reason_name(code, DISCONNECT).replace("_", " "))))
        self.close(client, reason)

    def close(self, client, reason, log_reason=None):
        """Close the network connection; connection_lost follows from the transport."""
        if client.close_reason is None:
            client.close_reason = reason
            if log_reason:
                log.warning(
                    "closing client %r from %s:%s: %s", client.client_id, *client.transport.peer, log_reason
                )
        client.transport.close()

    def connection_lost(self, client, reason="tcp_closed"):
        """The transport's socket is gone; settle the session and the will."""
        self.flow.current = None  # a will routed from here was published by nobody being read
        self.connections.discard(client)
        state = client.state
        client.state = CLOSED
        if state != CONNECTED:
            return
        reason = client.close_reason or reason
        info = client.info
        session = client.session
        if self.clients.get(info.client_id) is client:
            del self.clients[info.client_id]
        if session.client is client:
            session.client = None
            if session in self.flow.sessions:
                self.flow.drained(session)
        if reason != "takenover" and (session.inflight or session.queue):
            self.hand_over_shared(session)
        if client.will is not None:
            schedule_will(self, session, client.will, reason)
            client.will = None
        if session.client is None and self.sessions.get(info.client_id) is session:
            if session.expiry_interval == 0:
                self.end_session(session, reason)
            else:
                session.expires_at = (
                    None if session.expiry_interval is None else monotonic() + session.expiry_interval
                )
                if self.store is not None:
                    self.store.left(session)
        client_offline(self, info, reason)
        if self.hooks is not None:
            self.hooks.on_client_disconnected(info, reason)

    def hand_over_shared(self, session, group=None):
        """A shared-subscription member left (or unsubscribed from `group`): the
        QoS 1/2 messages it had not received go to another member of their
        group (kept if it has none)."""
        for entry in session.take_shared(group):
            msg, owner = entry[0], entry[4]
            if msg.expired():
                self.message_dropped(session, msg, "expired")
                continue
            sub = owner.pick(exclude=session)
            if sub is None:
                session.queue.append(entry)
                continue
            opts = sub.opts
            sub.session.deliver(
                msg,
                msg.qos if msg.qos < opts.qos else opts.qos,
                msg.retain and opts.retain_as_published,
                (sub.sub_id,) if sub.sub_id else None,
                owner,
            )

    def end_session(self, session, reason):
        """Discard a session: subscriptions, queued messages, a delayed will is sent now."""
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        for sub in session.subscriptions.values():
            self.trie.remove(sub)
            for bridge in self.bridges.values():  # transparent bridges stop mirroring it
                bridge.mirror_unsubscribe(sub.filter)
        session.subscriptions.clear()
        if session.pending_will is not None:
            publish_will(self, session)
        dropped = len(session.queue)
        if dropped:
            self.stats.dropped += dropped
        session.clear()
        if self.hooks is not None and session.info is not None:
            self.hooks.on_session_terminated(session.info, reason)

    # -- routing ------------------------------------------------------------

    def route(self, msg, publisher_id=None, cache=True):
        """Hand msg to every session whose subscriptions match its topic;
        returns how many subscriptions matched (0: nobody, PUBACK says so in v5).
        `cache` False keeps a one-off topic out of the trie's match cache."""
        stats = self.stats
        stats.received += 1
        if self.hooks is not None:
            self.hooks.on_message_publish(msg)
        if msg.retain:
            self.retained.store(msg)
        deliveries, groups = self.trie.match(msg.topic, cache)
        msg_qos = msg.qos
        msg_retain = msg.retain
        for d in deliveries:
            if d.no_local and d.session.client_id == publisher_id:
                continue
            d.session.deliver(
                msg,
                msg_qos if msg_qos < d.qos else d.qos,
                msg_retain and d.retain_as_published,
                d.sub_ids,
            )
        for group in groups:
            sub = group.pick()
            if sub is not None:
                qos = sub.opts.qos
                sub.session.deliver(
                    msg,
                    msg_qos if msg_qos < qos else qos,
                    msg_retain and sub.opts.retain_as_published,
                    (sub.sub_id,) if sub.sub_id else None,
                    group,
                )
        matched = len(deliveries) + len(groups)
        stats.routed += matched
        return matched

    def message_dropped(self, session, msg, reason):
        self.stats.dropped += 1
        if self.hooks is not None:
            self.hooks.on_message_dropped(session.info if session is not None else None, msg, reason)
        now = monotonic()
        if now >= self.drop_warning_at:  # one line per 10 s however many are dropped
            self.drop_warning_at = now + 10.0
            log.warning(
                "dropped message on %r for %r: %s (%d dropped so far)",
                msg.topic,
                session.client_id if session is not None else None,
                reason,
                self.stats.dropped,
            )

    # -- time ---------------------------------------------------------------

    def tick(self, now=None):
        """The one periodic sweep: keepalive, CONNECT timeout, QoS retry,
        session expiry, delayed wills and stale HTTP ACL verdicts. Called
        about once a second."""
        now = monotonic() if now is None else now
        self.flow.current = None
        mqtt = self.settings.mqtt
        multiplier = mqtt.keepalive_multiplier
        connect_deadline = now - mqtt.connect_timeout
        retry_before = now - mqtt.retry_interval
        released_before = now - mqtt.await_rel_timeout
        ttl = self.auth.verdict_ttl
        forget_verdicts = ttl is not None and now >= self.acl_caches_expire_at
        if forget_verdicts:
            self.acl_caches_expire_at = now + ttl
        for client in list(self.connections):
            if forget_verdicts:
                client.acl_cache = None
            state = client.state
            if state == NEW:
                if client.opened_at < connect_deadline:
                    self.stats.connect_timeouts += 1
                    self.close(client, "connect_timeout", log_reason="no CONNECT within connect_timeout")
                continue
            if state != CONNECTED:
                continue
            if (
                client.keepalive
                and now - client.last_seen > client.keepalive * multiplier
                and not client.transport.paused  # held back by flow control, not silent
            ):
                self.server_disconnect(client, rc.KEEP_ALIVE_TIMEOUT, "keepalive_timeout")
                continue
            session = client.session
            if session.awaiting_rel:
                _forget_unreleased(session.awaiting_rel, released_before)
            if session.inflight and not client.v5:
                oldest = session.oldest_sent()
                if oldest is not None and oldest <= retry_before:
                    session.resend_inflight(client, older_than=retry_before)
        expired = [s for s in self.sessions.values() if s.expires_at is not None and s.expires_at <= now]
        for session in expired:
            self.end_session(session, "expired")
        for session in [s for s in self.delayed_wills if s.will_at <= now]:
            publish_will(self, session)
        if self.flow.sessions:
            self.flow.release_stuck(now)
        if self.sys_stats is not None:
            self.sys_stats.tick(now)

    def shutdown(self):
        """Close every connection as the server going down (v5: DISCONNECT 0x8B)."""
        for client in list(self.connections):
            if client.state == CONNECTED:
                self.server_disconnect(client, rc.SERVER_SHUTTING_DOWN, "server_shutdown")
            else:
                self.close(client, "server_shutdown")
        for session in list(self.delayed_wills):
            publish_will(self, session)


def _forget_unreleased(awaiting_rel, received_before):
    """Free the incoming QoS 2 packet ids whose PUBREL has not come within
    await_rel_timeout. The dict is in arrival order: only its stale head is read."""
    stale = []
    for packet_id, received_at in awaiting_rel.items():
        if received_at > received_before:
            break
        stale.append(packet_id)
    for packet_id in stale:
        del awaiting_rel[packet_id]
