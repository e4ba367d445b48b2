"""Start-up: the store's contents back into the broker, before any listener opens.

Retained messages, sessions with their subscriptions, QoS 2 ids awaiting
PUBREL, and messages in flight are read into memory; queued messages are only
counted (they are read back page by page when their client is online). A
session whose client was connected when the broker died lost its connection
then: its expiry starts now and its will is sent (after its delay).
"""

from __future__ import annotations

from time import monotonic, time

from ..broker.session import _AWAIT_COMP, Outgoing
from ..broker.trie import Subscription
from ..broker.will import publish_will
from ..mqtt.packets import SubOptions
from .codec import message_from, to_monotonic, unpack, unpack_will
from .retained import DurableRetained
from .session import DurableSession


def load(store, broker):
    store.load_counts()
    reader = store.db.reader
    retained = DurableRetained(store)
    retained.load(reader, time())
    retained.keep_unwritten(broker.retained)  # the broker's own, set before the load ($SYS/broker/version)
    broker.retained = retained
    sessions = _load_sessions(store, broker, reader)
    for client_id, flt, qos, no_local, rap, rh, sub_id in reader.execute("SELECT * FROM subs"):
        session = sessions.get(client_id)
        if session is not None:
            sub = Subscription(session, flt, SubOptions(qos, bool(no_local), bool(rap), rh), sub_id)
            dict.__setitem__(session.subscriptions, flt, sub)
            broker.trie.add(sub)
    now = monotonic()
    for client_id, pid in reader.execute("SELECT client_id, pid FROM rel"):
        session = sessions.get(client_id)
        if session is not None:
            dict.__setitem__(session.awaiting_rel, pid, now)
    _load_inflight(store, sessions, reader, now)
    for client_id, count in reader.execute(
        "SELECT client_id, count(*) FROM msgs WHERE pid IS NULL GROUP BY client_id"
    ):
        session = sessions.get(client_id)
        if session is not None:
            session.backlog = count
            store.messages += count
    for sql in (
        "DELETE FROM subs WHERE client_id NOT IN (SELECT client_id FROM sessions)",
        "DELETE FROM rel WHERE client_id NOT IN (SELECT client_id FROM sessions)",
        "DELETE FROM msgs WHERE client_id NOT IN (SELECT client_id FROM sessions)",
    ):
        store.write(sql, ())
    for session in sessions.values():
        if session.will_at is not None and session.will_at <= now:
            publish_will(broker, session)


def _load_sessions(store, broker, reader):
    sessions = {}
    now = monotonic()
    crashed = []
    for client_id, expiry, expires, online, will, will_at in reader.execute(
        "SELECT client_id, expiry, expires, online, will, will_at FROM sessions"
    ):
        if expiry == 0:
            store.write("DELETE FROM sessions WHERE client_id = ?", (client_id,))
            continue
        session = DurableSession(broker, client_id)
        session.saved = True
        session.expiry_interval = expiry
        if online:  # its connection died with the broker
            session.expires_at = None if expiry is None else now + expiry
            if will is not None:
                msg, delay = unpack_will(will)
                session.pending_will = msg
                session.will_at = now + delay
                broker.delayed_wills.add(session)
            crashed.append(session)
        else:
            session.expires_at = None if expiry is None else to_monotonic(expires)
            if will is not None:
                session.pending_will = unpack_will(will)[0]
                session.will_at = to_monotonic(will_at) if will_at is not None else now
                broker.delayed_wills.add(session)
        sessions[client_id] = session
        broker.sessions[client_id] = session
        store.sessions += 1
    for session in crashed:
        store.left(session)
    return sessions


def _load_inflight(store, sessions, reader, now):
    for row in reader.execute(
        "SELECT seq, client_id, pid, comp, qos, retain, sub_ids, topic, payload, props, from_client, "
        "from_user, expires FROM msgs WHERE pid IS NOT NULL ORDER BY seq"
    ):
        (
            seq,
            client_id,
            pid,
            comp,
            qos,
            retain,
            sub_ids,
            topic,
            payload,
            props,
            from_client,
            from_user,
            expires,
        ) = row
        session = sessions.get(client_id)
        if session is None:
            continue
        msg = message_from(topic, payload, qos, retain, props, from_client, from_user, expires)
        out = Outgoing(msg, qos, bool(retain), unpack(sub_ids), None, now)
        if comp:
            out.state = _AWAIT_COMP
        session.inflight[pid] = out
        session.seqs[msg] = seq
        session.next_pid = pid + 1 if pid < 65535 else 1
        store.messages += 1
