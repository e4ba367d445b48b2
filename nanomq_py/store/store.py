"""The store as the broker sees it: every durable change is appended to the
current batch as one SQL statement; a committer greenlet hands the batch to a
writer thread of its own (sqlite3 releases the GIL while it writes and syncs;
the thread wakes the hub through an async watcher when done), so the hub keeps
serving. The QoS 1/2 acks of everything read while a
batch was filling wait for that batch's commit: one commit per burst, not per
message. A failed commit (disk full) refuses the acks that waited for it.
"""

from __future__ import annotations

import logging
import threading
from queue import SimpleQueue
from time import monotonic

import gevent
from gevent.event import Event

from ..broker.client import CONNECTED
from ..mqtt import reason_codes as rc
from ..mqtt.codec import encode
from ..mqtt.packets import Puback, Pubrec
from .codec import message_columns, pack, pack_will, to_wall
from .db import Database
from .queue import DurableQueue
from .session import DurableSession

log = logging.getLogger("nanomq.store")

_ERROR_LOG_INTERVAL = 10.0
_SESSION_SET = (
    "INSERT OR REPLACE INTO sessions(client_id, expiry, expires, online, will, will_at) "
    "VALUES (?, ?, NULL, 1, ?, NULL)"
)
_SESSION_LEFT = (
    "UPDATE sessions SET expiry = ?, expires = ?, online = 0, will = ?, will_at = ? WHERE client_id = ?"
)
_WILL_SENT = "UPDATE sessions SET will = NULL, will_at = NULL WHERE client_id = ?"
_ADD = (
    "INSERT INTO msgs(seq, client_id, pid, comp, qos, retain, sub_ids, topic, payload, props, "
    "from_client, from_user, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# One b-tree keyed (client_id, seq): an insert or a delete touches nothing else.
_SENT = "UPDATE msgs SET pid = ? WHERE client_id = ? AND seq = ?"
_RELEASED = "UPDATE msgs SET comp = 1 WHERE client_id = ? AND seq = ?"
_DELETE = "DELETE FROM msgs WHERE client_id = ? AND seq = ?"
_FORGET = (
    "DELETE FROM sessions WHERE client_id = ?",
    "DELETE FROM subs WHERE client_id = ?",
    "DELETE FROM rel WHERE client_id = ?",
    "DELETE FROM msgs WHERE client_id = ?",
)


class Store:
    def __init__(self, settings, broker):
        self.settings = settings
        self.broker = broker
        self.capacity = settings.disk_cache_size
        self.resend_interval = settings.resend_interval
        self.db = Database(settings.mounted_file_path, settings.synchronous)
        self.ops = []  # (sql, params) of the batch being filled
        self.acks = []  # (client, bytes, qos, pid) waiting for that batch
        self.touched = set()  # queues changed in the batch being filled
        self.fresh = {}  # seq -> (index in ops, params) of a message row added in the batch being filled
        self.starved = set()  # online sessions whose next queued messages were not committed yet
        self.flush = _nothing  # the server's ConnectionSet.flush, once listening
        self.busy = False
        self._seq = 0
        self._queues = {}
        self._queue_counts = {}
        self._wake = Event()
        self._closing = False
        self._greenlet = None
        self._thread = None
        self._outcome = None  # what the writer thread's last commit raised, or None
        self._error_logged_at = -_ERROR_LOG_INTERVAL
        # counters
        self.commits = 0
        self.rows_skipped = 0  # message rows acked before their batch was taken: never written
        self.write_errors = 0
        self.messages = 0
        self.sessions = 0
        self.queue_dropped = 0
        self.commit_ms_max = 0.0
        self.batch_max = 0
        self.load_seconds = 0.0
        self.db_bytes = 0

    # -- the batch ----------------------------------------------------------

    def write(self, sql, params):
        ops = self.ops
        if not ops:
            self._wake.set()
        ops.append((sql, params))

    def next_seq(self):
        self._seq += 1
        return self._seq

    # A message row lives from its session's deliver to the subscriber's ack. When
    # both happen before the batch is taken (a subscriber online and quick), the
    # row is never written at all; a send before the commit goes into the INSERT.

    def add_message(self, client_id, msg, qos, retain, sub_ids):
        """Queue a message row for client_id's session; returns its seq. Its columns are
        made on the writer thread, and only if the row is still wanted then."""
        seq = self.next_seq()
        params = [seq, client_id, None, 0, qos, retain, sub_ids, msg]
        self.fresh[seq] = (len(self.ops), params)
        self.write(_ADD, params)
        self.messages += 1
        return seq

    def message_sent(self, client_id, seq, pid):
        fresh = self.fresh.get(seq)
        if fresh is not None:
            fresh[1][2] = pid
        else:
            self.write(_SENT, (pid, client_id, seq))

    def message_released(self, client_id, seq):
        fresh = self.fresh.get(seq)
        if fresh is not None:
            fresh[1][3] = 1
        else:
            self.write(_RELEASED, (client_id, seq))

    def delete_message(self, client_id, seq):
        self.messages -= 1
        fresh = self.fresh.pop(seq, None)
        if fresh is not None:
            self.ops[fresh[0]] = None  # never written
            self.rows_skipped += 1
        else:
            self.write(_DELETE, (client_id, seq))

    def acknowledge(self, client, packet, matched):
        """PUBACK/PUBREC for a QoS 1/2 PUBLISH, once what it changed is committed."""
        qos, pid = packet.qos, packet.packet_id
        if matched or client.version != 5:  # success: the short form, in every version
            data = (b"\x40\x02" if qos == 1 else b"\x50\x02") + pid.to_bytes(2, "big")
        else:
            ack = Puback if qos == 1 else Pubrec
            data = encode(ack(pid, rc.NO_MATCHING_SUBSCRIBERS), 5)
        self.after_commit(client, data, qos, pid)

    def after_commit(self, client, data, qos=0, pid=0):
        """Write `data` to client once the current batch is committed (at once if
        nothing is pending). With qos 1/2 a failed commit refuses instead."""
        if not self.ops and not self.acks and not self.busy:
            client.write(data)
            return
        self.acks.append((client, data, qos, pid))
        if not self.ops and not self.busy:  # otherwise the committer is awake already
            self._wake.set()

    def send_after_commit(self, client, packet):
        """SUBACK/UNSUBACK of a persistent session, once the change is committed
        (MQTT lets the matching PUBLISHes, retained ones too, go out before it)."""
        if not self.ops and not self.acks and not self.busy:
            client.send(packet)
            return
        self.acks.append((client, packet, 0, 0))
        if not self.ops and not self.busy:
            self._wake.set()

    # -- the committer --------------------------------------------------------

    def start(self, flush):
        self.flush = flush
        self._jobs = SimpleQueue()
        self._committed = Event()
        self._done = gevent.get_hub().loop.async_()
        self._done.start(self._committed.set)
        self._thread = threading.Thread(target=self._write_forever, name="nanomq-store", daemon=True)
        self._thread.start()
        self._greenlet = gevent.spawn(self._run)

    def _run(self):
        while True:
            self._wake.wait()
            self._wake.clear()
            while self.ops or self.acks:
                self._commit_batch(self._commit_in_thread)
            if self._closing:
                return

    def _commit_in_thread(self, ops):
        """Hand the batch to the writer thread; this greenlet waits, the hub serves on."""
        self._committed.clear()
        self._jobs.put(ops)
        self._committed.wait()
        if self._outcome is not None:
            raise self._outcome

    def _write_forever(self):
        """The writer thread: one batch at a time, then wake the hub."""
        while True:
            ops = self._jobs.get()
            if ops is None:
                return
            try:
                self._commit(ops)
                self._outcome = None
            except Exception as exc:
                self._outcome = exc
            self._done.send()

    def _commit_batch(self, run):
        ops, acks, touched = self.ops, self.acks, self.touched
        self.ops, self.acks, self.touched, self.fresh = [], [], set(), {}
        for queue in touched:
            queue.batch_taken()
        ok = True
        if any(ops):  # not only rows cancelled before the commit
            self.busy = True
            started = monotonic()
            try:
                run(ops)
            except Exception as exc:
                ok = False
                self._failed(exc, len(ops))
            finally:
                self.busy = False
            elapsed = (monotonic() - started) * 1000.0
            if elapsed > self.commit_ms_max:
                self.commit_ms_max = elapsed
            if len(ops) > self.batch_max:  # (cancelled rows included)
                self.batch_max = len(ops)
        for queue in touched:
            queue.batch_done(ok)
        self._release(acks, ok)
        for session in list(self.starved):
            self.starved.discard(session)
            session.fill_window()
        self.flush()

    def _commit(self, ops):
        """On the writer thread."""
        self.db.commit([op if op is None or op[0] is not _ADD else (_ADD, _row(op[1])) for op in ops])
        self.commits += 1
        self.db_bytes = self.db.size()

    def _failed(self, exc, count):
        self.write_errors += 1
        now = monotonic()
        if now - self._error_logged_at >= _ERROR_LOG_INTERVAL:
            self._error_logged_at = now
            log.error(
                "store %s: a commit of %d changes failed: %s (%d failed commits so far); "
                "QoS 1/2 messages that needed it are refused",
                self.db.path,
                count,
                exc,
                self.write_errors,
            )

    def _release(self, acks, ok):
        broker = self.broker
        for client, data, qos, pid in acks:
            if client.state != CONNECTED:
                continue
            if type(data) is not bytes:
                client.send(data)  # a packet (send_after_commit), whatever the commit's outcome
            elif ok or not qos:
                client.write(data)
            elif client.version == 5:
                if qos == 2:
                    client.session.awaiting_rel.pop(pid, None)
                ack = Puback if qos == 1 else Pubrec
                why = client.reason("the message could not be stored (store write failed)")
                client.send(ack(pid, rc.UNSPECIFIED_ERROR, why))
            else:
                broker.close(client, "store_error", log_reason="the message could not be stored")

    def commit_now(self):
        """Commit what is pending on this thread (start-up, shutdown)."""
        while self.ops or self.acks:
            self._commit_batch(self._commit)

    def close(self):
        """Commit the rest and close the file (graceful stop)."""
        self._closing = True
        if self._greenlet is not None:
            self._wake.set()
            self._greenlet.join(30)
            self._jobs.put(None)
            self._thread.join(30)
            self._done.close()
        self.commit_now()
        self.db.close()

    # -- sessions ---------------------------------------------------------------

    def new_session(self, broker, client_id):
        return DurableSession(broker, client_id)

    def attached(self, session, client):
        """A client took the session (CONNECT): kept, with the client's will, while its expiry is not 0."""
        if session.expiry_interval == 0 and not session.saved:
            return
        will = None if client.will is None else pack_will(*client.will)
        self.write(_SESSION_SET, (session.client_id, session.expiry_interval, will))
        if not session.saved:
            session.saved = True
            self.sessions += 1

    def left(self, session):
        """The client went away: the session's deadline and pending will, in wall-clock time."""
        if not session.saved:
            return
        will = None if session.pending_will is None else pack_will(session.pending_will, 0)
        self.write(
            _SESSION_LEFT,
            (
                session.expiry_interval,
                to_wall(session.expires_at),
                will,
                to_wall(session.will_at),
                session.client_id,
            ),
        )

    def will_sent(self, session):
        if session.saved:
            self.write(_WILL_SENT, (session.client_id,))

    def forget_session(self, client_id, messages):
        for sql in _FORGET:
            self.write(sql, (client_id,))
        self.messages -= messages
        self.sessions -= 1

    # -- named queues -----------------------------------------------------------

    def queue(self, name):
        """The durable FIFO queue `name` (made on first use; one object per name)."""
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = DurableQueue(self, name, self._queue_counts.get(name, 0))
        return queue

    # -- reading ---------------------------------------------------------------

    def load_counts(self):
        reader = self.db.reader
        self._seq = max(
            reader.execute("SELECT coalesce(max(seq), 0) FROM msgs").fetchone()[0],
            reader.execute("SELECT coalesce(max(seq), 0) FROM queue").fetchone()[0],
        )
        self._queue_counts = dict(reader.execute("SELECT name, count(*) FROM queue GROUP BY name"))
        self.db_bytes = self.db.size()

    def counters(self):
        return {
            "db_bytes": self.db_bytes,
            "messages": self.messages,
            "sessions": self.sessions,
            "retained": len(self.broker.retained),
            "queued": sum(len(q) for q in self._queues.values()),
            "queue_dropped": self.queue_dropped,
            "commits": self.commits,
            "rows_skipped": self.rows_skipped,
            "write_errors": self.write_errors,
            "pending": len(self.ops),
            "commit_ms_max": round(self.commit_ms_max, 3),
            "batch_max": self.batch_max,
            "load_seconds": round(self.load_seconds, 3),
        }


def _row(params):
    """The msgs columns of a row queued by add_message."""
    seq, client_id, pid, comp, qos, retain, sub_ids, msg = params
    return (seq, client_id, pid, comp, qos, int(retain), pack(sub_ids), *message_columns(msg))


def _nothing():
    return None


def open_store(settings, broker):
    """Open the store of `settings` (SqliteSettings), load it into the broker, log the time taken."""
    from .load import load

    started = monotonic()
    store = Store(settings, broker)
    broker.store = broker.queue_store = store
    load(store, broker)
    store.commit_now()
    store.load_seconds = monotonic() - started
    log.info(
        "store %s loaded in %.3f s: %d retained, %d sessions, %d queued messages (%d bytes)",
        store.db.path,
        store.load_seconds,
        len(broker.retained),
        store.sessions,
        store.messages,
        store.db_bytes,
    )
    return store


def open_queue_store(cache, broker):
    """A `bridges.mqtt.cache { }` block without `sqlite { }`: the same file, but only for
    the bridges' queues. Nothing is loaded into the broker and `broker.store` stays None,
    so sessions and retained messages are not kept; `broker.queue_store` is set, so a
    QoS 1/2 PUBLISH that a bridge cached is acknowledged once its append is committed."""
    from nanomq_py.settings import SqliteSettings

    settings = SqliteSettings(
        mounted_file_path=cache.mounted_file_path,
        disk_cache_size=cache.disk_cache_size,
        flush_mem_threshold=cache.flush_mem_threshold,
        resend_interval=cache.resend_interval,
        webhook_spool=False,
    )
    started = monotonic()
    store = Store(settings, broker)
    store.load_counts()
    broker.queue_store = store
    store.load_seconds = monotonic() - started
    log.info(
        "bridge cache %s opened in %.3f s: %d cached messages (%d bytes)",
        store.db.path,
        store.load_seconds,
        sum(store._queue_counts.values()),
        store.db_bytes,
    )
    return store
