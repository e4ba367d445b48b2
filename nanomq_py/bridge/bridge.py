"""A bridge: one `bridges.mqtt.<name>` block at work.

To the broker a bridge is a subscriber (its `forwards` filters are in the subscription trie,
held by a `BridgeSession`) and a publisher (what its `subscription` rules receive upstream is
routed locally with the bridge's client id as origin). A message whose origin is this bridge
never goes back up it; MQTT 5 links also subscribe with No Local, and 3.1.1 links remember
what they sent to topics they also subscribe to and drop the echo the upstream sends back.

Forwarded QoS 1/2 messages (QoS 0 too with retry_qos_0) go into the cache first and leave it
only when the upstream acknowledged them; the writer greenlet sends them oldest first within
the in-flight window (max_send_queue_len). QoS 0 messages otherwise go through a small
bounded queue and are dropped (counted) while the link is down. The broker's path only
appends and wakes the writer: a slow or dead upstream costs local clients nothing.

The supervisor greenlet connects, runs the writer, and on failure waits an exponential
back-off with jitter (up to backoff_max) and tries the next server (hybrid_servers).
"""

from __future__ import annotations

import logging
import random
from collections import deque
from time import monotonic, time

import gevent

from ..broker.events import ClientInfo
from ..broker.message import Message
from ..broker.session import allocate_packet_id
from ..broker.sys_topics import client_offline, client_online
from ..broker.trie import Subscription
from ..mqtt import properties as p
from ..mqtt.codec import encode, encode_publish_parts
from ..mqtt.packets import (
    DISCONNECT,
    PINGREQ,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    UNSUBACK,
    Disconnect,
    Pingreq,
    Puback,
    Pubcomp,
    Pubrec,
    Pubrel,
    SubOptions,
    Subscribe,
    Unsubscribe,
)
from ..mqtt.topics import split_shared, topic_matches
from .link import Link, LinkError, open_link, tls_context
from .mapping import forward_map, subscription_map

log = logging.getLogger("nanomq.bridge")

CONNECTING, CONNECTED, DOWN = "connecting", "connected", "down"
_V3_WINDOW = 20  # in-flight QoS 1/2 messages at most on a 3.1.1 link
_QOS0_QUEUE = 1024  # QoS 0 messages waiting for the writer; more are dropped
_OUT_LIMIT = 256 * 1024  # bytes buffered for the socket before the writer stops filling
_ECHO_LIMIT = 65536  # remembered (topic, payload) of messages whose echo we expect (3.1.1)
_WARN_EVERY = 10.0
_FIRST_BACKOFF = 0.5
_AWAIT_ACK, _AWAIT_COMP = 0, 1
_DROPPED_PROPERTIES = (p.TOPIC_ALIAS, p.SUBSCRIPTION_IDENTIFIER)
_PINGREQ = encode(Pingreq(), 4)


class BridgeSession:
    """The bridge as a subscriber in the trie: `deliver` is called on the broker's path."""

    __slots__ = ("bridge", "client_id")

    def __init__(self, bridge):
        self.bridge = bridge
        self.client_id = f"$bridge/{bridge.name}"  # its key in the trie, apart from client ids

    def deliver(self, msg, qos, retain, sub_ids, group=None):
        bridge = self.bridge
        if msg.from_client_id == bridge.clientid:
            return  # came down this bridge: never back up it
        hit = bridge.forwards.lookup(msg.topic)
        if hit is None:
            return
        rule, topic = hit
        if rule.qos is not None:
            qos = rule.qos
        if rule.retain is not None:
            retain = rule.retain
        bridge.forward(topic, msg.payload, qos, retain, msg.properties)


class Bridge:
    def __init__(self, broker, settings, cache):
        self.broker = broker
        self.settings = settings
        self.name = settings.name
        self.clientid = settings.clientid
        self.v5 = settings.proto_ver == 5
        self.forwards = forward_map(settings)
        self.subscriptions = subscription_map(settings)
        self.cache = cache
        self.session = BridgeSession(self)
        self.qos0 = deque()
        self.state = DOWN
        self.since = time()
        self.last_error = ""
        self.logged_error = None
        self.log_down_at = 0.0
        self.server = settings.servers[0]
        self.link = None
        self.inflight = {}  # packet id -> [seq, entry, state, sent_at], in send order
        self.sent_upto = 0  # highest cache seq handed to the link
        self.window = settings.max_send_queue_len  # in-flight limit of the current link
        self.keepalive = int(settings.keepalive)  # of the current link (MQTT 5: Server Keep Alive)
        self.limits = None  # (Maximum QoS, Retain Available, Maximum Packet Size) of an MQTT 5 upstream
        self.next_pid = 1
        self.awaiting_rel = set()  # incoming QoS 2 packet ids routed, PUBREL not yet seen
        self.echoes = {}  # (remote topic, payload) -> copies sent that the upstream will echo (3.1.1)
        self.mirrored = {}  # transparent: local filter -> local subscribers count
        self.forwarded = 0
        self.received = 0
        self.dropped_qos0 = 0
        self.dropped_too_large = 0
        self.echoes_dropped = 0
        self.connects = 0
        self.warned_at = 0.0
        self.info = None
        self._supervisor = None
        self._stopping = False
        self._context = tls_context(settings.tls) if settings.tls is not None else None

    # -- life ----------------------------------------------------------------

    def start(self):
        broker = self.broker
        for rule in self.forwards.rules:
            broker.trie.add(Subscription(self.session, rule.source, SubOptions(2, False, True)))
        for session in broker.sessions.values():  # sessions the store brought back
            for flt in session.subscriptions:
                self.mirror_subscribe(flt)
        self._supervisor = gevent.spawn(self._supervise)

    def stop(self):
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.kill(block=True, timeout=2)
        link = self.link
        if link is not None and not link.closed:
            try:
                link.out.append(encode(Disconnect(), self.settings.proto_ver))
                link.sock.settimeout(1.0)
                link.flush()
            except OSError:
                pass
        if link is not None:
            link.close()

    def counters(self):
        return {
            "state": self.state,
            "since": int(self.since),
            "forwarded": self.forwarded,
            "received": self.received,
            "cached": len(self.cache),
            "inflight": len(self.inflight),
            "queued_qos0": len(self.qos0),
            "dropped": self.cache.dropped + self.dropped_qos0 + self.dropped_too_large,
            "echoes_dropped": self.echoes_dropped,
            "connects": self.connects,
        }

    # -- the broker's path ---------------------------------------------------

    def forward(self, topic, payload, qos, retain, properties):
        """A local message for upstream: cached (QoS 1/2, or retry_qos_0) or queued (QoS 0)."""
        entry = (topic, payload, qos, retain, properties if self.v5 else {})
        if qos or self.settings.retry_qos_0:
            self.cache.append(entry)
        elif self.state == CONNECTED and len(self.qos0) < _QOS0_QUEUE:
            self.qos0.append(entry)
        else:
            self.dropped_qos0 += 1
            self._warn_dropped()
            return
        link = self.link
        if link is not None:
            link.wake()

    def _warn_dropped(self):
        now = monotonic()
        if now >= self.warned_at:
            self.warned_at = now + _WARN_EVERY
            log.warning(
                "bridge %s: %s, dropping QoS 0 messages (%d dropped so far)",
                self.name,
                "link down" if self.state != CONNECTED else "upstream too slow",
                self.dropped_qos0,
            )

    # -- the connection ------------------------------------------------------

    def _supervise(self):
        servers = self.settings.servers
        index = 0
        failures = 0
        while not self._stopping:
            self.server = servers[index]
            self._set_state(CONNECTING)
            try:
                sock, connack, reader, leftover = open_link(self.settings, self.server, self._context)
            except LinkError as exc:
                self.last_error = str(exc)
                self._set_state(DOWN)
                failures += 1
                index = (index + 1) % len(servers)
                self._backoff(failures)
                continue
            failures = 0
            link = self.link = Link(sock, reader)
            self._connected(connack)
            try:
                for packet in leftover:
                    self._handle(packet)
                link.start_reader(self._handle, self.keepalive * 1.5)
                self._run_writer(link)
            except OSError as exc:
                link.fail(f"connection lost: {exc.strerror or exc}")
            except Exception:  # a bug must cost this link, not the bridge
                log.exception("bridge %s: the link failed", self.name)
                link.fail("internal error (see the log)")
            link.close()
            self.last_error = link.error or "closed"
            self._disconnected()
            self._backoff(1)

    def _backoff(self, failures):
        if self._stopping:
            return
        wait = min(self.settings.backoff_max, _FIRST_BACKOFF * 2 ** min(failures - 1, 16))
        gevent.sleep(wait * random.uniform(0.5, 1.0))

    def _set_state(self, state):
        if state != self.state:
            self.state = state
            self.since = time()
        scheme, host, port = self.server
        if state == CONNECTING:
            log.debug("bridge %s: connecting to %s://%s:%s", self.name, scheme, host, port)
        elif state == DOWN and (self.last_error != self.logged_error or monotonic() >= self.log_down_at):
            self.logged_error = self.last_error  # the same failure again is logged once a minute
            self.log_down_at = monotonic() + 60.0
            log.warning(
                "bridge %s: down (%s); forwarded=%d received=%d cached=%d dropped=%d",
                self.name,
                self.last_error,
                self.forwarded,
                self.received,
                len(self.cache),
                self.cache.dropped + self.dropped_qos0,
            )

    def _connected(self, connack):
        settings = self.settings
        self.connects += 1
        self.state = CONNECTED
        self.since = time()
        scheme, host, port = self.server
        log.info(
            "bridge %s: connected to %s://%s:%s as %r (session present: %s); cached=%d",
            self.name,
            scheme,
            host,
            port,
            self.clientid,
            connack.session_present,
            len(self.cache),
        )
        # Mosquitto (and others) silently drop QoS 2 messages beyond their in-flight limit
        # (20 by default) from a 3.1.1 client; MQTT 5 says its limit in Receive Maximum.
        props = connack.properties
        limit = props.get(p.RECEIVE_MAXIMUM, 65535) if self.v5 else _V3_WINDOW
        self.window = min(settings.max_send_queue_len, limit)
        self.keepalive = props.get(p.SERVER_KEEP_ALIVE, int(settings.keepalive))  # the server's word wins
        self.limits = None
        if p.MAXIMUM_QOS in props or props.get(p.RETAIN_AVAILABLE, 1) == 0 or p.MAXIMUM_PACKET_SIZE in props:
            self.limits = (
                props.get(p.MAXIMUM_QOS, 2),
                props.get(p.RETAIN_AVAILABLE, 1) == 1,
                props.get(p.MAXIMUM_PACKET_SIZE, 0),
            )
        if not connack.session_present:
            self.inflight.clear()
            self.sent_upto = 0
            self.awaiting_rel.clear()
        self._subscribe()
        self._resend_inflight()
        self.info = ClientInfo(
            self.clientid,
            settings.username,
            settings.proto_ver,
            int(settings.keepalive),
            host,
            port,
            int(time() * 1000),
            settings.clean_start,
        )
        broker = self.broker
        client_online(broker, self.info)
        if broker.hooks is not None:
            broker.hooks.on_client_connack(self.info, "success")

    def _disconnected(self):
        self.link = None
        self.dropped_qos0 += len(self.qos0)
        self.qos0.clear()
        self._set_state(DOWN)
        broker = self.broker
        if self.info is not None:
            reason = "normal" if self._stopping else "tcp_closed"
            client_offline(broker, self.info, reason)
            if broker.hooks is not None:
                broker.hooks.on_client_disconnected(self.info, reason)

    def _subscribe(self):
        """SUBSCRIBE for the subscription rules (and, transparent, the mirrored local filters)."""
        settings = self.settings
        topics = [
            (r.remote_topic, SubOptions(r.qos, r.no_local, r.retain_as_published, r.retain_handling))
            for r in settings.subscription
        ]
        topics += [(flt, SubOptions(2, True)) for flt in self.mirrored]
        if topics:
            self.link.send(
                encode(Subscribe(self._pid(), topics, settings.sub_properties), settings.proto_ver)
            )

    def mirror_subscribe(self, flt):
        """transparent: a local client subscribed to flt (its real filter goes upstream)."""
        if not self.settings.transparent:
            return
        flt = split_shared(flt)[1]
        if flt.startswith("$"):
            return
        count = self.mirrored.get(flt, 0)
        self.mirrored[flt] = count + 1
        if not count and self.link is not None:
            packet = Subscribe(self._pid(), [(flt, SubOptions(2, True))], self.settings.sub_properties)
            self.link.send(encode(packet, self.settings.proto_ver))

    def mirror_unsubscribe(self, flt):
        if not self.settings.transparent:
            return
        flt = split_shared(flt)[1]
        count = self.mirrored.get(flt, 0)
        if count > 1:
            self.mirrored[flt] = count - 1
            return
        if self.mirrored.pop(flt, None) is not None and self.link is not None:
            self.link.send(encode(Unsubscribe(self._pid(), [flt]), self.settings.proto_ver))

    _pid = allocate_packet_id

    def _resend_inflight(self):
        """On a resumed session: every unacknowledged message again, DUP set, in order."""
        link = self.link
        version = self.settings.proto_ver
        now = monotonic()
        for pid, out in self.inflight.items():
            out[3] = now
            if out[2] == _AWAIT_COMP:
                link.send(encode(Pubrel(pid), version))
            else:
                link.send(self._publish_bytes(out[1], pid, dup=True))

    def _publish_bytes(self, entry, pid, dup=False):
        topic, payload, qos, retain, props = entry
        head, tail = encode_publish_parts(5 if self.v5 else 4, topic, payload, qos, retain, dup, props)
        if qos:
            return head + pid.to_bytes(2, "big") + tail
        return head + tail

    # -- the writer ----------------------------------------------------------

    def _run_writer(self, link):
        """Fill the link from the QoS 0 queue and the cache, write, ping; until the link fails."""
        keepalive = self.keepalive
        resend = self.settings.resend_interval
        window = self.window
        cache = self.cache
        inflight = self.inflight
        qos0 = self.qos0
        expect_echo = not self.v5 and bool(self.subscriptions.rules or self.settings.transparent)
        last_write = monotonic()
        while not link.closed:
            link.wake_event.clear()  # before the work: a wake-up during it is not lost
            progressed = True
            while progressed and not link.closed:
                progressed = False
                if qos0 and link.out_bytes < _OUT_LIMIT:
                    self._send_qos0(link, expect_echo)
                    progressed = True
                room = window - len(inflight)
                if room > 0 and len(cache) > len(inflight) and link.out_bytes < _OUT_LIMIT:
                    progressed = self._send_cached(link, room, expect_echo) or progressed
                if link.out:
                    link.flush()
                    last_write = monotonic()
            if link.closed:
                break
            idle = monotonic() - last_write
            if keepalive and idle >= keepalive:
                link.send(_PINGREQ)
                continue
            timeout = (keepalive - idle) if keepalive else None
            if inflight and not self.v5:
                self._resend_stale(link)
                timeout = min(timeout or resend, resend)
            link.wake_event.wait(timeout=timeout)

    def _send_qos0(self, link, expect_echo):
        """Move queued QoS 0 messages into the link's buffer (the busiest loop: kept flat)."""
        qos0 = self.qos0
        out = link.out
        version = 5 if self.v5 else 4
        size = link.out_bytes
        sent = 0
        while qos0 and size < _OUT_LIMIT:
            entry = qos0.popleft()
            if self.limits is not None:
                entry = self._fit(entry)
                if entry is None:
                    self.dropped_too_large += 1
                    continue
            head, tail = encode_publish_parts(version, entry[0], entry[1], 0, entry[3], False, entry[4])
            out.append(head)
            out.append(tail)
            size += len(head) + len(tail)
            sent += 1
            if expect_echo:
                self._expect_echo(entry)
        link.out_bytes = size
        self.forwarded += sent

    def _fit(self, entry):
        """An MQTT 5 upstream's CONNACK limits: QoS lowered to its Maximum QoS, retain cleared
        when it has none; None when the message exceeds its Maximum Packet Size."""
        max_qos, retain_ok, max_size = self.limits
        topic, payload, qos, retain, props = entry
        if qos > max_qos or (retain and not retain_ok):
            entry = (topic, payload, min(qos, max_qos), retain and retain_ok, props)
        if max_size and len(self._publish_bytes(entry, 1)) > max_size:
            return None
        return entry

    def _send_cached(self, link, room, expect_echo):
        """Hand the oldest unsent cached messages to the link, up to `room` of them."""
        cache = self.cache
        inflight = self.inflight
        now = monotonic()
        sent_qos0 = []
        progressed = False
        for seq, entry in cache.peek(len(inflight) + room):
            if seq <= self.sent_upto:
                continue
            self.sent_upto = seq
            progressed = True
            if self.limits is not None:
                entry = self._fit(entry)
                if entry is None:  # larger than the upstream accepts: it would end the link every time
                    sent_qos0.append(seq)
                    self.dropped_too_large += 1
                    continue
            if entry[2] == 0:
                link.send(self._publish_bytes(entry, 0))
                sent_qos0.append(seq)
                self.forwarded += 1
            else:
                pid = self._pid()
                inflight[pid] = [seq, entry, _AWAIT_ACK, now]
                link.send(self._publish_bytes(entry, pid))
            if expect_echo:
                self._expect_echo(entry)
        if sent_qos0:
            cache.remove(sent_qos0)
        return progressed

    def _resend_stale(self, link):
        """3.1.1: a message unacknowledged for resend_interval goes again (MQTT 5 resends only on reconnect)."""
        if self.v5 or not self.inflight:
            return
        before = monotonic() - self.settings.resend_interval
        for pid, out in self.inflight.items():
            if out[3] > before:
                break
            out[3] = monotonic()
            if out[2] == _AWAIT_COMP:
                link.send(encode(Pubrel(pid), 4))
            else:
                link.send(self._publish_bytes(out[1], pid, dup=True))

    def _expect_echo(self, entry):
        topic = entry[0]
        if self.subscriptions.lookup(topic) is None and not any(
            topic_matches(flt, topic) for flt in self.mirrored
        ):
            return
        echoes = self.echoes
        if len(echoes) >= _ECHO_LIMIT:
            echoes.clear()
        key = (entry[0], entry[1])
        echoes[key] = echoes.get(key, 0) + 1

    # -- the reader ----------------------------------------------------------

    def _handle(self, packet):
        kind = packet.TYPE
        if kind == PUBLISH:
            self._received(packet)
        elif kind == PUBACK:
            self._acked(packet.packet_id, False)
        elif kind == PUBREC:
            out = self.inflight.get(packet.packet_id)
            if out is None:
                return
            if packet.reason_code >= 0x80:
                self._acked(packet.packet_id, None)
                return
            out[2] = _AWAIT_COMP
            self.link.send(encode(Pubrel(packet.packet_id), self.settings.proto_ver))
        elif kind == PUBCOMP:
            self._acked(packet.packet_id, True)
        elif kind == PUBREL:
            self.awaiting_rel.discard(packet.packet_id)
            self.link.send(encode(Pubcomp(packet.packet_id), self.settings.proto_ver))
        elif kind == SUBACK:
            codes = packet.reason_codes
            refused = sum(1 for code in codes if code >= 0x80)
            if refused:
                log.warning(
                    "bridge %s: the upstream refused %d of %d filters", self.name, refused, len(codes)
                )
            else:
                log.info("bridge %s: subscribed upstream to %d filters", self.name, len(codes))
        elif kind == UNSUBACK:
            log.info(
                "bridge %s: unsubscribed upstream from %d filters", self.name, len(packet.reason_codes) or 1
            )
        elif kind == DISCONNECT:
            raise LinkError(f"the upstream disconnected us (reason 0x{packet.reason_code:02X})")
        elif kind == PINGREQ:
            raise LinkError("the upstream sent PINGREQ, a client's packet")

    def _acked(self, pid, completed):
        """PUBACK (completed False), PUBCOMP (True) or a refusing PUBREC (None)."""
        out = self.inflight.get(pid)
        if out is None:
            return
        qos = out[1][2]
        if (completed is False and qos != 1) or (completed is True and out[2] != _AWAIT_COMP):
            return
        del self.inflight[pid]
        self.cache.remove([out[0]])
        self.forwarded += 1
        self.link.wake()

    def _received(self, packet):
        settings = self.settings
        qos = packet.qos
        pid = packet.packet_id
        link = self.link
        if qos == 2 and pid in self.awaiting_rel:
            link.send(encode(Pubrec(pid), settings.proto_ver))
            return
        topic = packet.topic
        payload = packet.payload
        echoes = self.echoes
        if echoes and (topic, payload) in echoes:
            key = (topic, payload)
            left = echoes[key] - 1
            if left:
                echoes[key] = left
            else:
                del echoes[key]
            self.echoes_dropped += 1
        else:
            self._route(packet, topic, payload, qos)
        if qos == 1:
            link.send(encode(Puback(pid), settings.proto_ver))
        elif qos == 2:
            self.awaiting_rel.add(pid)
            link.send(encode(Pubrec(pid), settings.proto_ver))

    def _route(self, packet, topic, payload, qos):
        hit = self.subscriptions.lookup(topic)
        retain = packet.retain
        if hit is not None:
            rule, topic = hit
            if rule.retain is not None:
                retain = rule.retain
        props = packet.properties
        expires_at = None
        if props:
            if any(pid in props for pid in _DROPPED_PROPERTIES):
                props = {k: v for k, v in props.items() if k not in _DROPPED_PROPERTIES}
            if p.MESSAGE_EXPIRY_INTERVAL in props:
                expires_at = monotonic() + props[p.MESSAGE_EXPIRY_INTERVAL]
        msg = Message(topic, payload, qos, retain, props, self.clientid, self.settings.username, expires_at)
        broker = self.broker
        broker.flow.current = None  # nobody local to hold back for it
        self.received += 1
        broker.route(msg, self.clientid)
