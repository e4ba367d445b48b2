"""Stream layers between the socket and the MQTT frame reader.

Plain TCP has none. TLS (`ssl`), WebSocket (`ws`) and both (`wss`) wrap each
connection in a layer object with:

    incoming(conn, data) -> bytes   wire bytes in, the MQTT bytes they complete out;
                                    handshake/control replies go to conn.write_raw
    outgoing(data) -> bytes         MQTT bytes -> wire bytes
    goodbye() -> bytes              wire bytes to send before the FIN when the broker closes
    closing                         True once the layer wants the connection ended

The TLS and WebSocket modules (and ssl, wsproto, h11) are imported only when
such a listener is configured: they cost memory a tcp-only broker should not pay.
"""

from __future__ import annotations

from functools import partial


def filter_factory(listener, settings):
    """A callable peer -> layer for this listener, or None for plain TCP.

    Certificates are loaded here, once per listener; an OSError names the
    listener and the file when they cannot be."""
    kind = listener.kind
    if kind == "tcp":
        return None
    if kind == "ssl":
        from .tls import TlsLayer, server_context

        return partial(TlsLayer, server_context(listener))
    if kind == "ws":
        from .websocket import WebSocketLayer

        path = listener.path or "/mqtt"
        return lambda peer: WebSocketLayer(path, peer)
    if kind == "wss":
        from .tls import TlsLayer, server_context
        from .websocket import WebSocketLayer

        context = server_context(listener)
        path = listener.path or "/mqtt"
        return lambda peer: WebSocketLayer(path, peer, TlsLayer(context, peer))
    raise ValueError(f"listener kind {kind!r} is not supported (tcp, ssl, ws or wss)")
