"""One network connection: reading frames from an event-loop callback (or a
greenlet of its own when the broker may wait), and a buffered, never-blocking
write path.

Reads take up to 16 KiB per wake-up and hand every complete packet to the
broker. Writes only append to the connection's buffer and mark it dirty; the
buffers are flushed with one non-blocking send each at the end of the batch
(ConnectionSet.flush), so a publisher's batch costs one syscall per subscriber. A
subscriber whose socket is full gets a writer greenlet that waits for it; the
publisher never waits. Output is bounded by the broker (QoS 0 dropped past
max_outgoing_bytes, QoS 1/2 held in the session's bounded queue until the
buffer is back under it).
"""

from __future__ import annotations

import errno
import logging
import socket
from functools import partial
from time import monotonic

import gevent
from gevent import get_hub
from gevent.event import Event
from gevent.hub import Waiter

from ..broker.client import CONNECTED
from ..mqtt.codec import FrameReader
from ..mqtt.errors import MQTTError

log = logging.getLogger("nanomq.transport")

_READ_SIZE = 16384  # ~200 small PUBLISHes per wake-up; bounds what flow control must absorb
# No CONNECT needs more (its client id, will, username and password are at most
# 64 KiB each): until a client is connected, this bounds what a socket nobody has
# authenticated can make the broker buffer; then max_packet_size applies.
_PRE_CONNECT_MAX_PACKET = 512 * 1024
_SEND_CHUNK = 256 * 1024  # bytes joined for one send() to a peer with a backlog
_LINGER = 2.0  # seconds a closed connection may take to drain before it is cut


class ConnectionSet:
    """Every open connection of the server, those with unsent output (flushed
    once per processed batch), and those that became readable, served in the
    order the kernel reported them.

    Why the last: libev runs the watchers one poll made pending last-in
    first-out, so two sockets that became readable in one loop iteration would
    be served in the reverse of their arrival (a SUBSCRIBE read after another
    client's PUBLISH that arrived later). A read watcher's callback only queues
    the connection's reader here; the batch runs once the loop has run every
    watcher of that poll (a gevent callback, before the next poll), in the
    order epoll returned them (arrival order for sockets that were idle; a
    socket still readable at the previous poll keeps its place in epoll's ready
    list). The cost is one list append per wake-up and one callback per loop
    iteration with reads."""

    __slots__ = ("members", "dirty", "readable", "_loop")

    def __init__(self):
        self.members = set()
        self.dirty = []
        self.readable = []  # readers queued by this poll's watchers, last reported first
        self._loop = get_hub().loop

    def became_readable(self, reader):
        """A read watcher's callback: serve `reader()` with the rest of this poll, in its order."""
        readable = self.readable
        readable.append(reader)
        if len(readable) == 1:
            self._loop.run_callback(self._serve_readable)

    def _serve_readable(self):
        readable = self.readable
        self.readable = []
        for reader in reversed(readable):
            reader()

    def expire_lingering(self, now):
        for conn in [c for c in self.members if c.linger_until is not None and now >= c.linger_until]:
            conn.abort()

    def flush(self):
        dirty = self.dirty
        while dirty:
            self.dirty = []
            for conn in dirty:
                conn.dirty = False
                conn.send_buffered()
            dirty = self.dirty


class Connection:
    __slots__ = (
        "sock",
        "broker",
        "conns",
        "client",
        "reader",
        "peer",
        "out",
        "pending",
        "dirty",
        "closed",
        "writer",
        "linger_until",
        "filter",
        "watcher",
        "paused",
        "backlog",
    )

    def __init__(self, sock, peer, broker, conns, stream_filter=None):
        self.sock = sock
        self.peer = peer  # (host, port)
        self.broker = broker
        self.conns = conns
        conns.members.add(self)
        self.out = []
        self.pending = 0  # bytes buffered and not yet accepted by the kernel
        self.dirty = False
        self.closed = False
        self.writer = None  # greenlet waiting for the socket to drain
        self.linger_until = None
        self.filter = stream_filter  # TLS / WebSocket layer: bytes in/out transformed, or None
        self.watcher = None  # read watcher in callback mode
        self.paused = None  # while flow control holds reading back: True, or the Event a greenlet waits on
        self.backlog = None  # packets read before a pause, handled on resume
        self.reader = FrameReader(min(broker.settings.mqtt.max_packet_size, _PRE_CONNECT_MAX_PACKET))
        self.client = broker.connection_made(self)

    # -- reading ------------------------------------------------------------

    def start(self):
        """Serve the connection. Usually from a watcher callback in the event
        loop: no greenlet per connection, which keeps an idle client near
        2.5 KB instead of 11. When handling a packet may wait (HTTP auth, a
        password hash in the thread pool), in a greenlet of its own instead."""
        if self.broker.auth.may_block:
            gevent.spawn(self.run)
        else:
            self.watcher = get_hub().loop.io(self.sock.fileno(), 1)
            self.watcher.start(self.conns.became_readable, self._on_readable)

    def _on_readable(self):
        """Event-loop callback (through ConnectionSet.became_readable): one read
        and its packets per wake-up, so every connection gets its turn; nothing
        here may wait."""
        if self.paused is not None or self.watcher is None:
            return  # paused or ended by a connection served earlier in the same batch
        try:
            data = self.sock.recv(_READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        reason = "tcp_closed"
        if data:
            try:
                self._received(data)
                return
            except Exception:
                log.exception("connection from %s:%s failed", *self.peer)
                reason = "internal_error"
        self.watcher.close()
        self.watcher = None
        self._ended(reason)

    def pause_reading(self):
        """Flow control: read nothing more from this peer until resume_reading()."""
        if self.paused is not None or self.closed:
            return
        if self.watcher is not None:
            self.watcher.stop()
            self.paused = True
        else:
            self.paused = Event()

    def resume_reading(self):
        paused = self.paused
        if paused is None:
            return
        self.paused = None
        self.client.last_seen = monotonic()  # it was held back, not silent
        if paused is not True:
            paused.set()  # the connection's greenlet goes on, backlog first
        elif self.backlog is not None:
            get_hub().loop.run_callback(self._continue_backlog)  # not inside another client's handler
        elif self.watcher is not None:
            self.watcher.start(self.conns.became_readable, self._on_readable)

    def run(self):
        """The connection's greenlet (when the broker may wait): read and
        handle until EOF."""
        sock = self.sock
        hub = get_hub()
        watcher = hub.loop.io(sock.fileno(), 1)
        reason = "tcp_closed"
        try:
            while True:
                if self.paused is not None:
                    self.paused.wait()
                if self.backlog is not None:
                    backlog = self.backlog
                    self.backlog = None
                    if not self.closed:
                        self._dispatch(backlog)
                        self.conns.flush()
                    continue
                try:
                    data = sock.recv(_READ_SIZE)
                except BlockingIOError:
                    self._wait_readable(watcher)
                    continue
                except OSError:
                    break
                if not data:
                    break
                self._received(data)
        except Exception:
            log.exception("connection from %s:%s failed", *self.peer)
            reason = "internal_error"
        finally:
            watcher.close()
            self._ended(reason)

    def _wait_readable(self, watcher):
        """Greenlet mode: wait for the socket, woken in the order of arrival (see ConnectionSet)."""
        waiter = Waiter()
        watcher.start(self.conns.became_readable, partial(waiter.switch, None))
        try:
            waiter.get()
        finally:
            watcher.stop()

    def _received(self, data):
        """Decode and dispatch bytes from the peer, then flush every buffer they filled."""
        if self.closed:
            return  # draining a connection we closed: ignore what it still sends
        broker = self.broker
        client = self.client
        flusher = self.conns
        client.last_seen = monotonic()
        stream_filter = self.filter
        if stream_filter is not None:
            data = stream_filter.incoming(self, data)
            if not data:
                if stream_filter.closing:
                    self.close()
                flusher.flush()
                return
        broker.stats.bytes_received += len(data)
        reader = self.reader
        try:
            packets = reader.feed(data)
        except MQTTError as exc:
            for packet in exc.packets:
                broker.packet_received(client, packet)
                if self.closed:
                    break
            else:
                broker.decode_failed(client, exc, data)
            flusher.flush()
            return
        self._dispatch(packets)
        if client.state == CONNECTED and reader.max_packet_size != broker.settings.mqtt.max_packet_size:
            reader.max_packet_size = broker.settings.mqtt.max_packet_size
        if stream_filter is not None and stream_filter.closing:
            self.close()  # e.g. a WebSocket close frame after the DISCONNECT it carried
        flusher.flush()

    def _dispatch(self, packets):
        """Hand packets to the broker in order. If flow control pauses this
        connection midway, the rest waits in `backlog` for resume_reading():
        a held publisher adds nothing more, not even what it already sent."""
        broker = self.broker
        client = self.client
        for index, packet in enumerate(packets):
            broker.packet_received(client, packet)
            if self.closed:
                return
            if self.paused is not None and index + 1 < len(packets):
                self.backlog = packets[index + 1 :]
                return

    def _continue_backlog(self):
        """Callback mode, once resumed: the packets held back, then reading again."""
        backlog = self.backlog
        self.backlog = None
        if not self.closed:
            try:
                self._dispatch(backlog)
                self.conns.flush()
            except Exception:
                log.exception("connection from %s:%s failed", *self.peer)
                self.abort()
        if self.paused is None and self.watcher is not None:
            self.watcher.start(self.conns.became_readable, self._on_readable)

    def _ended(self, reason):
        """The peer's side is gone (EOF, reset, failure): settle and free everything."""
        if not self.closed:
            self.closed = True
            self.broker.connection_lost(self.client, reason)
            self.conns.flush()
        self._release()

    # -- writing ------------------------------------------------------------

    def write(self, data):
        """Buffer MQTT bytes (through the TLS/WebSocket layer, if any) for the next flush."""
        if self.closed:
            return
        if self.filter is not None:
            data = self.filter.outgoing(data)
        self.out.append(data)
        self.pending += len(data)
        if not self.dirty:
            self.dirty = True
            self.conns.dirty.append(self)

    def write_raw(self, data):
        """Buffer wire bytes as they are: a stream layer's handshake and control records."""
        if self.closed or not data:
            return
        self.out.append(data)
        self.pending += len(data)
        if not self.dirty:
            self.dirty = True
            self.conns.dirty.append(self)

    def send_buffered(self):
        """Flush without waiting; a slow peer's rest goes to a writer greenlet."""
        if self.writer is None and self.out:
            if self._send_once():
                self._output_room()
            else:
                self.writer = gevent.spawn(self._drain)

    def _output_room(self):
        """The buffer is under max_outgoing_bytes again: QoS 1/2 messages that
        waited in the session's queue for room go out now."""
        session = self.client.session
        if session is not None and session.queue and not self.closed:
            session.fill_window()

    def _send_once(self):
        """One non-blocking send of what is buffered (at most about _SEND_CHUNK
        of it, so a slow peer's full buffer is not copied on every wake-up);
        True once nothing is left. An unsent rest is kept as a memoryview: no copy."""
        out = self.out
        if len(out) == 1:
            data = out.pop()
        elif self.pending <= _SEND_CHUNK:
            data = b"".join(out)
            out.clear()
        else:
            taken = count = 0
            while taken < _SEND_CHUNK:
                taken += len(out[count])
                count += 1
            data = b"".join(out[:count])
            del out[:count]
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            out.clear()
            self.pending = 0
            self.abort()
            return True
        if sent < len(data):
            out.insert(0, memoryview(data)[sent:])
        self.pending -= sent
        return not out

    def _drain(self):
        """Wait for the slow peer's socket to accept the rest of the buffer."""
        hub = get_hub()
        watcher = hub.loop.io(self.sock.fileno(), 2)
        try:
            limit = self.broker.max_outgoing_bytes
            while self.out:
                hub.wait(watcher)
                self._send_once()
                if self.pending <= limit:
                    self._output_room()
                    self.conns.flush()
        finally:
            watcher.close()
            self.writer = None
            if self.closed:
                self._half_close()

    # -- closing ------------------------------------------------------------

    def close(self):
        """Close on the broker's behalf: send what is buffered, then FIN.
        The broker is told at once; the socket lingers briefly for the peer."""
        if self.closed:
            return
        self.resume_reading()  # the peer's EOF must be seen to free the socket
        if self.filter is not None:
            self.write_raw(self.filter.goodbye())  # WebSocket close frame, TLS close_notify
        self.closed = True
        if self.dirty:
            self.dirty = False
            self.send_buffered()
        if self.writer is None:
            self._half_close()
        self.linger_until = monotonic() + _LINGER
        self.broker.connection_lost(self.client)

    def _half_close(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.abort()

    def abort(self):
        """Cut the connection both ways; the reading greenlet then ends it."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            if exc.errno not in (errno.ENOTCONN, errno.EBADF):
                log.debug("shutdown failed for %s:%s: %s", *self.peer, exc)

    def _release(self):
        self.conns.members.discard(self)
        self.reader = None  # a partial packet's buffer goes now, not when a GC cycle finds us
        self.out.clear()
        self.pending = 0
        if self.writer is not None:
            self.writer.kill(block=False)
        try:
            self.sock.close()
        except OSError:
            pass
