"""MQTT over WebSocket (RFC 6455; MQTT 5.0 section 6) as a stream layer.

wsproto (sans-IO) parses the HTTP upgrade and every incoming frame: the
payloads of binary frames are simply concatenated into the MQTT byte stream,
so a packet split across frames and several packets in one frame both work.
Ping gets pong, a close frame gets its echo and ends the connection, a text
frame is refused (MQTT requires binary frames) and a wrong path, a wrong
subprotocol or a request that is not an upgrade gets an HTTP error response.

Outgoing MQTT bytes are framed here, not by wsproto: a server's binary frame
is a 2-10 byte header in front of the payload (RFC 6455 section 5.2, never
masked, no extensions negotiated), and wsproto's `send` copies the payload
four times — measured 14x slower for a 20-byte PUBLISH and 29x for 64 KiB.
This is the path every message to every WebSocket subscriber takes.

Hostile input is bounded: h11 refuses an upgrade request larger than 16 KiB,
wsproto hands frame payloads over as they arrive (a frame announcing 2**62
bytes holds no memory), and pongs are only sent while the peer is reading.
"""

from __future__ import annotations

import logging
import struct
from http import HTTPStatus

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import RemoteProtocolError

log = logging.getLogger("nanomq.transport")

# Accepted subprotocols: "mqtt" (MQTT 3.1.1 and 5.0) and "mqttv3.1" (MQTT 3.1), as Mosquitto does.
SUBPROTOCOLS = ("mqtt", "mqttv3.1")

_BINARY_FIN = 0x82
_SMALL_HEADERS = [bytes((_BINARY_FIN, n)) for n in range(126)]
_pack_header_16 = struct.Struct("!BBH").pack
_pack_header_64 = struct.Struct("!BBQ").pack


def binary_frame(data):
    """One unmasked, final binary frame carrying `data` (server to client)."""
    size = len(data)
    if size < 126:
        return _SMALL_HEADERS[size] + data
    if size < 65536:
        return _pack_header_16(_BINARY_FIN, 126, size) + data
    return _pack_header_64(_BINARY_FIN, 127, size) + data


def http_error(status, why, headers=()):
    """A complete HTTP/1.1 error response with a one-line text body (wsproto's has no reason phrase)."""
    body = why.encode() + b"\n"
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
    head += [name + b": " + value for name, value in headers]
    head += [
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Length: " + str(len(body)).encode(),
        b"Connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def choose_subprotocol(offered):
    """The first offered subprotocol we speak, as the client spelled it; None if none fits."""
    for name in offered:
        if name.lower() in SUBPROTOCOLS:
            return name
    return None


class WebSocketLayer:
    """One connection's WebSocket session, optionally over a TLS layer (wss)."""

    __slots__ = ("ws", "path", "peer", "lower", "open", "closing")

    def __init__(self, path, peer, lower=None):
        self.ws = WSConnection(ConnectionType.SERVER)
        self.path = path
        self.peer = peer
        self.lower = lower  # a TlsLayer for wss, else None
        self.open = False  # upgraded and not closed: MQTT bytes may be sent
        self.closing = False  # set when the connection must end

    def incoming(self, conn, data):
        """Wire bytes -> the MQTT bytes carried by the binary frames they complete."""
        lower = self.lower
        if lower is not None:
            data = lower.incoming(conn, data)
            if lower.closing:
                self.closing = True
            if not data:
                return b""
        ws = self.ws
        try:
            ws.receive_data(data)
        except RemoteProtocolError as exc:
            hint = exc.event_hint  # a RejectConnection: 400, or 426 for a wrong Sec-WebSocket-Version
            if hint is None:
                self._refuse(conn, 400, str(exc))
            else:
                self._refuse(conn, hint.status_code, str(exc), hint.headers)
            return b""
        chunks = []
        for event in ws.events():
            if isinstance(event, BytesMessage):
                chunks.append(event.data)
            elif isinstance(event, Ping):
                if conn.pending < conn.broker.max_outgoing_bytes:
                    self._send(conn, ws.send(event.response()))
            elif isinstance(event, Request):
                self._upgrade(conn, event)
            elif isinstance(event, CloseConnection):
                if ws.state is ConnectionState.OPEN:  # wsproto found a protocol error, the peer did not close
                    log.warning("WebSocket from %s:%s broke the protocol: %s", *self.peer, event.reason)
                    conn.broker.stats.protocol_errors += 1
                self._close(conn, event.response())
                break
            elif isinstance(event, TextMessage):
                log.warning("WebSocket from %s:%s sent a text frame; MQTT needs binary frames", *self.peer)
                conn.broker.stats.protocol_errors += 1
                self._close(conn, CloseConnection(CloseReason.UNSUPPORTED_DATA, "MQTT needs binary frames"))
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def outgoing(self, data):
        """MQTT bytes -> one binary frame (encrypted for wss); nothing once closing."""
        if not self.open:
            return b""
        frame = binary_frame(data)
        return frame if self.lower is None else self.lower.outgoing(frame)

    def goodbye(self):
        """Bytes to send before the FIN when the broker closes: a close frame, then TLS close_notify."""
        data = b""
        if self.ws.state is ConnectionState.OPEN:
            data = self.ws.send(CloseConnection(CloseReason.NORMAL_CLOSURE))
            self.open = False
        if self.lower is None:
            return data
        return (self.lower.outgoing(data) if data else b"") + self.lower.goodbye()

    # -- helpers ------------------------------------------------------------

    def _send(self, conn, data):
        """Handshake and control bytes, bypassing the MQTT framing of `outgoing`."""
        if self.lower is not None:
            data = self.lower.outgoing(data)
        conn.write_raw(data)

    def _upgrade(self, conn, request):
        path = request.target.partition("?")[0]
        if path != self.path:
            self._refuse(conn, 404, f"no WebSocket endpoint at {path}")
            return
        subprotocol = choose_subprotocol(request.subprotocols)
        if request.subprotocols and subprotocol is None:
            offered = ", ".join(request.subprotocols)
            self._refuse(conn, 400, f"unsupported subprotocol {offered}: use {' or '.join(SUBPROTOCOLS)}")
            return
        self._send(conn, self.ws.send(AcceptConnection(subprotocol=subprotocol)))
        self.open = True

    def _refuse(self, conn, status, why, headers=()):
        """An HTTP error response for a failed upgrade, then the end of the connection."""
        log.warning("WebSocket upgrade from %s:%s refused with %d: %s", *self.peer, status, why)
        conn.broker.stats.protocol_errors += 1
        self._send(conn, http_error(status, why, headers))
        self.closing = True

    def _close(self, conn, close_event):
        """Answer or send a close frame and end the connection."""
        self.open = False
        self.closing = True
        if self.ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._send(conn, self.ws.send(close_event))
