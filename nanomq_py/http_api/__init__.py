"""NanoMQ's HTTP API (v4), the read-mostly subset: imported only when `http_server`
is configured.

A small HTTP/1.1 server on gevent's StreamServer (gevent.pywsgi would pull in
http.client, email and ssl: 8 MB of RSS for an API this size). Each connection
is handled in one greenlet of a pool of `limit_conn`; when the pool is full the
server stops accepting until a greenlet ends, so further connections wait in the
listen backlog instead of costing memory. A request reads broker state or routes
a message synchronously on the hub, so it never blocks MQTT clients for longer
than building its answer.

Bounds: a request's line and headers at most MAX_HEAD bytes and MAX_HEADERS
lines (each received chunk is searched once for the blank line that ends them); a body only with Content-Length, read after authentication and
at most `Api.max_body` bytes; a connection that sends nothing for IDLE_TIMEOUT
seconds is closed. Keep-alive as HTTP/1.1 says; `Expect: 100-continue` (curl
sends it for bodies over 1 KiB) is answered.
"""

from __future__ import annotations

import json
import logging

from gevent.pool import Pool
from gevent.server import StreamServer

from ..transport.listener import open_listener
from .api import STATUS_TEXT, Api, Refused
from .document import Document

log = logging.getLogger("nanomq.http_api")

IDLE_TIMEOUT = 30.0  # seconds a connection may wait for the client's next bytes
STOP_TIMEOUT = 1.0  # seconds requests in progress get to finish at stop
MAX_HEAD = 16384
MAX_HEADERS = 100


class _BadRequest(Exception):
    """The request cannot be parsed: answered, then the connection is closed."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class HttpApi:
    """The API's server: `bind` (may raise OSError), then `start`; `stop` at shutdown."""

    def __init__(self, settings, broker):
        self.settings = settings  # HttpServerSettings
        self.api = Api(broker, settings)
        self.address = None  # (host, port) once bound
        self._sock = None
        self._server = None

    def bind(self):
        self._sock = open_listener(self.settings.host, self.settings.port)
        self.address = self._sock.getsockname()[:2]

    def start(self):
        self._server = StreamServer(self._sock, self._serve, spawn=Pool(self.settings.limit_conn))
        self._server.start()

    def stop(self):
        if self._server is not None:
            self._server.stop(timeout=STOP_TIMEOUT)
        elif self._sock is not None:
            self._sock.close()

    # -- one connection -------------------------------------------------------

    def _serve(self, sock, address):
        sock.settimeout(IDLE_TIMEOUT)
        conn = _Connection(sock)
        try:
            while self._serve_one(conn):
                pass
        except OSError:  # reset, or silent past IDLE_TIMEOUT (socket.timeout is an OSError)
            pass
        except Exception:
            log.exception("HTTP API: the connection from %s:%s failed", *address[:2])
        finally:
            sock.close()

    def _serve_one(self, conn):
        """Answer one request; whether the connection stays open for another."""
        try:
            head = conn.head()
            if head is None:
                return False
            method, target, version, headers = _parse_head(head)
        except _BadRequest as bad:
            conn.send(bad.status, {"code": 108, "message": str(bad)}, keep_alive=False)
            return False
        keep_alive = _keep_alive(version, headers)
        try:
            self.api.authenticate(headers.get("authorization", ""))
            length = self.api.body_length(headers)
        except Refused as refusal:
            extra = (("WWW-Authenticate", 'Basic realm="nanomq"'),) if refusal.status == 401 else ()
            # A body, if one was sent, is not read: the connection cannot be used again.
            body_sent = "transfer-encoding" in headers or headers.get("content-length", "0").strip() != "0"
            keep_alive = keep_alive and not body_sent
            conn.send(refusal.status, refusal.json(), keep_alive, extra)
            return keep_alive
        if length and headers.get("expect", "").lower() == "100-continue":
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = conn.body(length)
        status, text = self.api.answer(method, target, body)
        conn.send(status, text, keep_alive)
        return keep_alive


class _Connection:
    """The socket with what was received and not yet used."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()

    def head(self):
        """The request line and headers (bytes, without the blank line), or None if the
        client closed the connection between requests."""
        searched = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n", max(0, searched - 3))
            if end >= 0:
                head = bytes(self.buffer[:end])
                del self.buffer[: end + 4]
                return head
            if len(self.buffer) > MAX_HEAD:
                raise _BadRequest(431, f"the request line and headers exceed {MAX_HEAD} bytes")
            searched = len(self.buffer)
            chunk = self.sock.recv(8192)
            if not chunk:
                if self.buffer.strip():
                    raise OSError("the client closed the connection inside a request")
                return None
            self.buffer += chunk

    def body(self, length):
        while len(self.buffer) < length:
            chunk = self.sock.recv(min(65536, length - len(self.buffer)))
            if not chunk:
                raise OSError("the client closed the connection inside a request body")
            self.buffer += chunk
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return body

    def send(self, status, answer, keep_alive, extra=()):
        """`answer` is JSON text, a dict made into it, or a Document."""
        content_type = "application/json"
        if isinstance(answer, Document):
            content_type, data = answer.content_type, answer.body
        else:
            if not isinstance(answer, str):
                answer = json.dumps(answer, separators=(",", ":"))
            data = answer.encode()
        lines = [
            f"HTTP/1.1 {status} {STATUS_TEXT[status]}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(data)}",
            "Connection: keep-alive" if keep_alive else "Connection: close",
            *(f"{name}: {value}" for name, value in extra),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)


def _parse_head(head):
    """-> (method, request-target, HTTP version, {lower-case name: value})."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise _BadRequest(400, "expected a request line: METHOD /path HTTP/1.1")
    if len(lines) - 1 > MAX_HEADERS:
        raise _BadRequest(431, f"more than {MAX_HEADERS} headers")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _BadRequest(400, f"bad header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return parts[0].upper(), parts[1], parts[2], headers


def _keep_alive(version, headers):
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"
