"""Listening sockets: accept in batches and start one greenlet per connection.

The sockets are the standard library's, non-blocking, waited on with the
gevent hub directly (no monkey-patching needed, and no per-call watcher).
Running out of file descriptors pauses accepting briefly instead of spinning.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys

import gevent
from gevent import get_hub

from .connection import Connection

log = logging.getLogger("nanomq.transport")


def _original_socket_class():
    """The standard library's socket class, even if gevent has patched the socket module;
    gevent.monkey is imported only if something imported it to patch."""
    monkey = sys.modules.get("gevent.monkey")
    return socket.socket if monkey is None else monkey.get_original("socket", "socket")


_socket_class = _original_socket_class()
_BACKLOG = 1024


def open_listener(host, port):
    """A bound, listening, non-blocking socket; OSError names the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = _socket_class(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def accept_forever(sock, broker, conns, make_filter=None):
    """Accept loop of one listener; make_filter(peer) gives the TLS/WebSocket layer."""
    hub = get_hub()
    watcher = hub.loop.io(sock.fileno(), 1)
    try:
        while True:
            try:
                conn_sock, addr = sock.accept()
            except BlockingIOError:
                hub.wait(watcher)
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("cannot accept connections: %s; pausing 100 ms", exc.strerror)
                    gevent.sleep(0.1)
                    continue
                if exc.errno == errno.EBADF:
                    return  # the listener was closed
                raise
            conn_sock.setblocking(False)
            if conn_sock.family != socket.AF_UNIX:
                conn_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = (addr[0], addr[1])
            stream_filter = make_filter(peer) if make_filter is not None else None
            conn = Connection(conn_sock, peer, broker, conns, stream_filter)
            conn.start()
    finally:
        watcher.close()
