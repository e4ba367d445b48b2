"""A session: what the broker keeps for one client id across connections.

Subscriptions, QoS 1/2 messages in flight to the client (bounded by the
inflight window and the client's Receive Maximum), messages waiting for a
window slot, for room in the connection's output buffer (max_outgoing_bytes)
or for the client to come back (bounded by max_mqueue_len; the overflow is
dropped and counted), and QoS 2 packet ids received but not yet released.
Waiting in the queue rather than the output buffer keeps one shared Message
per subscriber instead of a private copy of its bytes, and lets flow control
see a subscriber that reads slowly. Writing goes through the attached Client; with none attached the
session only queues.
"""

from __future__ import annotations

from collections import deque
from time import monotonic

from ..mqtt.codec import encode
from ..mqtt.packets import Pubrel

_AWAIT_ACK = 0
_AWAIT_COMP = 1


def allocate_packet_id(owner):
    """The next packet id (1..65535, wrapping) of `owner` that is not in its `inflight`
    map; a method of every MQTT endpoint with `next_pid` and `inflight` (sessions, bridges)."""
    pid = owner.next_pid
    inflight = owner.inflight
    while pid in inflight:
        pid = pid + 1 if pid < 65535 else 1
    owner.next_pid = pid + 1 if pid < 65535 else 1
    return pid


class Outgoing:
    """A QoS 1/2 message sent to the client and not yet acknowledged."""

    __slots__ = ("msg", "qos", "retain", "sub_ids", "group", "state", "sent_at")

    def __init__(self, msg, qos, retain, sub_ids, group, sent_at):
        self.msg = msg
        self.qos = qos
        self.retain = retain
        self.sub_ids = sub_ids
        self.group = group  # the SharedGroup it was picked for, or None
        self.state = _AWAIT_ACK
        self.sent_at = sent_at


class Session:
    __slots__ = (
        "broker",
        "client_id",
        "subscriptions",
        "inflight",
        "queue",
        "awaiting_rel",
        "next_pid",
        "expiry_interval",
        "expires_at",
        "client",
        "pending_will",
        "will_at",
        "info",
        "progress_at",
    )

    def __init__(self, broker, client_id):
        self.broker = broker
        self.client_id = client_id
        self.subscriptions = {}  # filter as written -> trie.Subscription
        self.inflight = {}  # packet id -> Outgoing, in send order
        self.queue = deque()  # (msg, qos, retain, sub_ids, group) waiting for a slot or the client
        self.awaiting_rel = {}  # incoming QoS 2 packet id -> receive time
        self.next_pid = 1
        self.expiry_interval = 0.0  # seconds kept after disconnect; None: never expires
        self.expires_at = None  # monotonic deadline while disconnected
        self.client = None  # the connected broker.client.Client, if any
        self.pending_will = None  # will message waiting for its delay (v5)
        self.will_at = None
        self.info = None  # ClientInfo of the last connection, for events after it ended
        self.progress_at = 0.0  # when the client last freed window space (acked): it is draining

    # -- delivery -----------------------------------------------------------

    def deliver(self, msg, qos, retain, sub_ids, group=None):
        """Send now if possible, else queue (QoS 1/2, and QoS 0 never while offline).
        `group` is the shared subscription group the message was picked for."""
        client = self.client
        if qos == 0:
            if client is not None:
                client.send_publish(msg, 0, retain, sub_ids, 0)
            return
        if (
            client is not None
            and not self.queue
            and len(self.inflight) < client.send_window
            and client.transport.pending <= self.broker.max_outgoing_bytes
        ):
            self._send_new(client, msg, qos, retain, sub_ids, group)
        elif len(self.queue) < self.broker.max_mqueue_len or (
            # Draining while publishers are held back: room for what they sent before the hold.
            self in self.broker.flow.sessions and len(self.queue) < 2 * self.broker.max_mqueue_len
        ):
            self.queue.append((msg, qos, retain, sub_ids, group))
            if client is not None and len(self.queue) >= self.broker.flow.high_water:
                self.broker.flow.congested(self)
        else:
            self.broker.message_dropped(self, msg, "queue_full")

    def _send_new(self, client, msg, qos, retain, sub_ids, group):
        pid = self._allocate_pid()
        if client.send_publish(msg, qos, retain, sub_ids, pid):
            self.inflight[pid] = Outgoing(msg, qos, retain, sub_ids, group, monotonic())

    _allocate_pid = allocate_packet_id

    def fill_window(self):
        """Move queued messages into flight while the window and the output
        buffer have room. Called on acks and when the output buffer drains."""
        client = self.client
        queue = self.queue
        if client is None:
            return
        now = self.progress_at = monotonic()
        transport = client.transport
        limit = self.broker.max_outgoing_bytes
        inflight = self.inflight
        window = client.send_window
        while queue and len(inflight) < window and transport.pending <= limit:
            msg, qos, retain, sub_ids, group = queue.popleft()
            if msg.expires_at is not None and now >= msg.expires_at:
                self.broker.message_dropped(self, msg, "expired")
                continue
            self._send_new(client, msg, qos, retain, sub_ids, group)
        flow = self.broker.flow
        if flow.sessions and len(queue) <= flow.low_water:
            flow.drained(self)

    def take_shared(self, group=None):
        """Remove and return shared-subscription messages the client has not
        received, as (msg, qos, retain, sub_ids, group) entries. With no group
        (the connection ended): those in flight before PUBACK/PUBREC and those
        queued, one pass over each, only then. With a group (the client
        unsubscribed from it): only that group's queued ones; delivery of those
        in flight is completed, as the spec asks of an unsubscribe."""
        taken = []
        inflight = self.inflight
        if group is None:
            for pid in [
                pid for pid, out in inflight.items() if out.group is not None and out.state == _AWAIT_ACK
            ]:
                out = inflight.pop(pid)
                taken.append((out.msg, out.qos, out.retain, out.sub_ids, out.group))
            if not any(entry[4] is not None for entry in self.queue):
                return taken
        elif not any(entry[4] is group for entry in self.queue):
            return taken
        kept = deque()
        for entry in self.queue:
            entry_group = entry[4]
            if entry_group is not None and (group is None or entry_group is group):
                taken.append(entry)
            else:
                kept.append(entry)
        self.queue = kept
        return taken

    # -- acknowledgements ---------------------------------------------------

    def acked(self, pid, expect_comp):
        """PUBACK (expect_comp False) or PUBCOMP (True) for pid; returns the message or None."""
        out = self.inflight.get(pid)
        if out is None or (out.qos == 2) != expect_comp or (expect_comp and out.state != _AWAIT_COMP):
            return None
        del self.inflight[pid]
        self.fill_window()
        return out.msg

    def received(self, pid, failed):
        """PUBREC for pid: True if a PUBREL must be sent (False: unknown pid or refused)."""
        out = self.inflight.get(pid)
        if out is None or out.qos != 2:
            return False
        if failed:
            del self.inflight[pid]
            self.fill_window()
            return False
        out.state = _AWAIT_COMP
        out.sent_at = monotonic()
        return True

    # -- reconnect and retry ------------------------------------------------

    def resend_inflight(self, client, older_than=None):
        """Resend unacknowledged messages with DUP (PUBREL for those past PUBREC).
        With older_than set, only those sent before that monotonic time."""
        now = monotonic()
        for pid, out in self.inflight.items():
            if older_than is not None and out.sent_at > older_than:
                continue
            out.sent_at = now
            if out.state == _AWAIT_COMP:
                client.write(encode(Pubrel(pid), client.version))
            else:
                client.send_publish(out.msg, out.qos, out.retain, out.sub_ids, pid, dup=True)

    def oldest_sent(self):
        for out in self.inflight.values():
            return out.sent_at
        return None

    def clear(self):
        """Forget everything queued; used when the session ends."""
        self.inflight.clear()
        self.queue.clear()
        self.awaiting_rel.clear()
