"""Persistent sessions written through to the store.

A `DurableSession` is a broker Session whose state outlives the process while
its expiry interval is not 0: its subscriptions, its QoS 1/2 messages (one row
each: queued, then in flight with its packet id, then released after PUBREC,
deleted on the final ack) and the QoS 2 ids it received awaiting PUBREL. While
the client is offline (and until what piled up meanwhile has been sent) new
messages go to the store only, as do those past a page (_PAGE) of the queue:
`backlog` counts them and pages of them are read back as the client's window
drains, so a session holds at most a page of its queue in memory and an offline
session gains none per message queued. Sessions without a store never see this module.
"""

from __future__ import annotations

from time import monotonic

from ..broker.session import Outgoing, Session
from .codec import message_from, unpack

_PAGE = 256  # queued messages read back from the store at a time

_PAGE_SQL = (
    "SELECT seq, qos, retain, sub_ids, topic, payload, props, from_client, from_user, expires FROM msgs "
    "WHERE client_id = ? AND seq > ? AND pid IS NULL ORDER BY seq LIMIT ?"
)
_SUB_SET = "INSERT OR REPLACE INTO subs(client_id, filter, qos, no_local, rap, rh, sub_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
_SUB_DELETE = "DELETE FROM subs WHERE client_id = ? AND filter = ?"
_REL_SET = "INSERT OR IGNORE INTO rel(client_id, pid) VALUES (?, ?)"
_REL_DELETE = "DELETE FROM rel WHERE client_id = ? AND pid = ?"


class DurableSubscriptions(dict):
    """filter -> Subscription; setting and popping one is written through."""

    __slots__ = ("session",)

    def __setitem__(self, flt, sub):
        dict.__setitem__(self, flt, sub)
        session = self.session
        if session.expiry_interval != 0:
            opts = sub.opts
            session.store.write(
                _SUB_SET,
                (
                    session.client_id,
                    flt,
                    opts.qos,
                    int(opts.no_local),
                    int(opts.retain_as_published),
                    opts.retain_handling,
                    sub.sub_id,
                ),
            )

    def pop(self, flt, *default):
        sub = dict.pop(self, flt, *default)
        session = self.session
        if sub is not None and session.saved:
            session.store.write(_SUB_DELETE, (session.client_id, flt))
        return sub


class DurableAwaitingRel(dict):
    """Incoming QoS 2 packet id -> receive time; an id is durable with the PUBREC that answers it."""

    __slots__ = ("session",)

    def __setitem__(self, pid, received_at):
        dict.__setitem__(self, pid, received_at)
        session = self.session
        if session.expiry_interval != 0:
            session.store.write(_REL_SET, (session.client_id, pid))

    def pop(self, pid, *default):
        found = dict.pop(self, pid, *default)
        session = self.session
        if found is not None and session.saved:
            session.store.write(_REL_DELETE, (session.client_id, pid))
        return found

    def __delitem__(self, pid):
        dict.__delitem__(self, pid)
        session = self.session
        if session.saved:
            session.store.write(_REL_DELETE, (session.client_id, pid))


class DurableSession(Session):
    __slots__ = ("store", "seqs", "backlog", "loaded_upto", "saved")

    def __init__(self, broker, client_id):
        super().__init__(broker, client_id)
        self.store = broker.store
        self.subscriptions = DurableSubscriptions()
        self.subscriptions.session = self
        self.awaiting_rel = DurableAwaitingRel()
        self.awaiting_rel.session = self
        self.seqs = {}  # Message held in memory (queue or inflight) -> its row
        self.backlog = 0  # rows queued in the store only, after every message held in memory
        self.loaded_upto = 0  # seq of the last queued row read back
        self.saved = False  # the session has a row in the store

    # -- delivery -----------------------------------------------------------

    def deliver(self, msg, qos, retain, sub_ids, group=None):
        if qos == 0 or (self.expiry_interval == 0 and not self.backlog) or msg in self.seqs:
            Session.deliver(self, msg, qos, retain, sub_ids, group)
            return
        broker = self.broker
        store = self.store
        limit = broker.max_mqueue_len
        if self in broker.flow.sessions:
            limit *= 2
        if self.backlog + len(self.queue) >= limit or store.messages >= store.capacity:
            broker.message_dropped(self, msg, "queue_full")
            return
        seq = store.add_message(self.client_id, msg, qos, retain, sub_ids)
        client = self.client
        if client is None or self.backlog or len(self.queue) >= _PAGE:
            if not self.backlog:
                self.loaded_upto = seq - 1  # rows before it are in memory, in flight or gone
            self.backlog += 1  # memory holds at most a page of the queue
            if client is not None:
                if len(self.queue) < _PAGE:
                    store.starved.add(self)  # read it back once committed
                if self.backlog + len(self.queue) >= broker.flow.high_water:
                    broker.flow.congested(self)
            return
        self.seqs[msg] = seq
        Session.deliver(self, msg, qos, retain, sub_ids, group)

    def _send_new(self, client, msg, qos, retain, sub_ids, group):
        pid = self._allocate_pid()
        if client.send_publish(msg, qos, retain, sub_ids, pid):
            self.inflight[pid] = Outgoing(msg, qos, retain, sub_ids, group, monotonic())
            seq = self.seqs.get(msg)
            if seq is not None:
                self.store.message_sent(self.client_id, seq, pid)
        else:
            self._forget(msg)

    def fill_window(self):
        client = self.client
        if client is None:
            return
        queue = self.queue
        if self.backlog and len(queue) < _PAGE // 2:
            self._page_in()
        now = self.progress_at = monotonic()
        transport = client.transport
        limit = self.broker.max_outgoing_bytes
        inflight = self.inflight
        window = client.send_window
        while queue and len(inflight) < window and transport.pending <= limit:
            msg, qos, retain, sub_ids, group = queue.popleft()
            if msg.expires_at is not None and now >= msg.expires_at:
                self.broker.message_dropped(self, msg, "expired")
                self._forget(msg)
            else:
                self._send_new(client, msg, qos, retain, sub_ids, group)
            if not queue and self.backlog:
                self._page_in()
        flow = self.broker.flow
        if flow.sessions and len(queue) + self.backlog <= flow.low_water:
            flow.drained(self)

    def _page_in(self):
        """Read the next queued rows back into memory, oldest first."""
        store = self.store
        rows = store.db.reader.execute(_PAGE_SQL, (self.client_id, self.loaded_upto, _PAGE)).fetchall()
        queue = self.queue
        seqs = self.seqs
        for seq, qos, retain, sub_ids, topic, payload, props, from_client, from_user, expires in rows:
            msg = message_from(topic, payload, qos, retain, props, from_client, from_user, expires)
            seqs[msg] = seq
            queue.append((msg, qos, bool(retain), unpack(sub_ids), None))
            self.loaded_upto = seq
        self.backlog -= len(rows)
        if self.backlog > 0 and len(rows) < _PAGE:
            if store.ops or store.busy:
                store.starved.add(self)  # the rest is in a batch not committed yet
            else:
                store.messages -= self.backlog  # lost to a failed commit
                self.backlog = 0

    def _forget(self, msg):
        seq = self.seqs.pop(msg, None)
        if seq is not None:
            self.store.delete_message(self.client_id, seq)

    def take_shared(self, group=None):
        taken = Session.take_shared(self, group)
        for entry in taken:
            self._forget(entry[0])
        return taken

    # -- acknowledgements ---------------------------------------------------

    def acked(self, pid, expect_comp):
        msg = Session.acked(self, pid, expect_comp)
        if msg is not None:
            self._forget(msg)
        return msg

    def received(self, pid, failed):
        out = self.inflight.get(pid)
        result = Session.received(self, pid, failed)
        if out is not None and out.qos == 2:
            if result:
                seq = self.seqs.get(out.msg)
                if seq is not None:
                    self.store.message_released(self.client_id, seq)
            elif failed:
                self._forget(out.msg)
        return result

    def clear(self):
        Session.clear(self)
        store = self.store
        if self.saved:
            store.forget_session(self.client_id, len(self.seqs) + self.backlog)
            self.saved = False
        self.seqs.clear()
        self.backlog = 0
        store.starved.discard(self)
