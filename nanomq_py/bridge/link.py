"""One network connection of a bridge to its upstream broker, on gevent and the project's codec.

`open_link` dials (TCP, or TLS with gevent's cooperative ssl), sends CONNECT and waits for the
CONNACK within cancel_timeout. A `Link` then has two greenlets: the reader (decodes packets
and hands them to the bridge) and the writer (the bridge's `run_writer`, the only one that
calls `sendall`). Everything else only appends bytes to `out` and calls `wake()`, so neither
the broker's path nor the reader ever waits for the network. The writer sends a PINGREQ when
nothing was written for `keepalive` seconds; the reader gives up when nothing at all was
read for 1.5 x keepalive.
"""

from __future__ import annotations

import logging
import socket as _stdlib_socket

import gevent
from gevent import socket
from gevent.event import Event

from ..mqtt.codec import FrameReader, encode
from ..mqtt.errors import MQTTError
from ..mqtt.packets import CONNACK, Connect, Will

log = logging.getLogger("nanomq.bridge")

_READ_SIZE = 65536
_CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


class LinkError(Exception):
    """Why a connection attempt or a connection failed, as one log-friendly line."""


def tls_context(tls):
    """A client SSLContext for tls+mqtt-tcp:// (gevent's ssl: cooperative, no monkey-patching)."""
    from gevent import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.verify_peer:
        if tls.cacertfile:
            context.load_verify_locations(cafile=tls.cacertfile)
        else:
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.certfile:
        context.load_cert_chain(tls.certfile, tls.keyfile or None, password=lambda: tls.key_password)
    return context


def connect_packet(settings):
    will = None
    if settings.will is not None:
        w = settings.will
        will = Will(w.topic, w.payload, w.qos, w.retain, w.properties if settings.proto_ver == 5 else {})
    password = settings.password.encode() if settings.password is not None else None
    username = settings.username
    if password is not None and username is None and settings.proto_ver != 5:
        username = ""  # MQTT 3.1.1 allows no password without a user name
    return Connect(
        proto_name="MQIsdp" if settings.proto_ver == 3 else "MQTT",
        proto_ver=settings.proto_ver,
        clean_start=settings.clean_start,
        keepalive=int(settings.keepalive),
        client_id=settings.clientid,
        username=username,
        password=password,
        will=will,
        properties=settings.conn_properties if settings.proto_ver == 5 else {},
    )


def open_link(settings, server, context):
    """(sock, connack, reader, leftover packets): a connected, accepted link, or LinkError."""
    scheme, host, port = server
    timeout = settings.cancel_timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise LinkError(f"cannot connect to {scheme}://{host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(_stdlib_socket.IPPROTO_TCP, _stdlib_socket.TCP_NODELAY, 1)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=host)
        sock.sendall(encode(connect_packet(settings), settings.proto_ver))
        reader = FrameReader(version=settings.proto_ver)
        packets = []
        while not packets:
            data = sock.recv(_READ_SIZE)
            if not data:
                raise LinkError(f"{scheme}://{host}:{port} closed the connection before CONNACK")
            packets = reader.feed(data)
    except LinkError:
        sock.close()
        raise
    except (OSError, MQTTError) as exc:
        sock.close()
        raise LinkError(f"{scheme}://{host}:{port}: {exc}") from None
    connack = packets.pop(0)
    if connack.TYPE != CONNACK:
        sock.close()
        raise LinkError(f"{scheme}://{host}:{port} answered CONNECT with {type(connack).__name__}")
    if connack.reason_code:
        sock.close()
        code = connack.reason_code
        why = _CONNACK_CODES.get(code, "refused") if settings.proto_ver != 5 else "refused"
        raise LinkError(f"{scheme}://{host}:{port} refused the connection: {why} (0x{code:02X})")
    sock.settimeout(None)
    return sock, connack, reader, packets


class Link:
    """An accepted connection: a write buffer, its wake-up event, and the reader greenlet."""

    __slots__ = ("sock", "reader", "out", "out_bytes", "wake_event", "closed", "error", "reader_greenlet")

    def __init__(self, sock, reader):
        self.sock = sock
        self.reader = reader
        self.out = []  # encoded packets waiting for the writer
        self.out_bytes = 0
        self.wake_event = Event()
        self.closed = False
        self.error = None
        self.reader_greenlet = None

    def send(self, data):
        self.out.append(data)
        self.out_bytes += len(data)
        self.wake()

    def wake(self):
        if not self.wake_event.is_set():
            self.wake_event.set()

    def flush(self):
        """Write what is buffered (the writer greenlet only)."""
        if self.out:
            data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
            self.out.clear()
            self.out_bytes = 0
            self.sock.sendall(data)

    def start_reader(self, handle, timeout):
        self.reader_greenlet = gevent.spawn(self._read_forever, handle, timeout)

    def _read_forever(self, handle, timeout):
        sock = self.sock
        sock.settimeout(timeout or None)
        reader = self.reader
        try:
            while not self.closed:
                data = sock.recv(_READ_SIZE)
                if not data:
                    raise LinkError("the upstream closed the connection")
                for packet in reader.feed(data):
                    handle(packet)
        except TimeoutError:
            self.fail("keepalive timeout: nothing received from the upstream")
        except LinkError as exc:
            self.fail(str(exc))
        except MQTTError as exc:
            self.fail(f"malformed packet from the upstream: {exc}")
        except OSError as exc:
            self.fail(f"connection lost: {exc.strerror or exc}")
        except Exception:  # a bug in handling one packet ends this link, not the bridge
            log.exception("bridge: handling a packet from the upstream failed")
            self.fail("internal error (see the log)")

    def fail(self, why):
        if self.error is None:
            self.error = why
        self.closed = True
        self.wake()

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        if self.reader_greenlet is not None and self.reader_greenlet is not gevent.getcurrent():
            self.reader_greenlet.kill(block=False)
