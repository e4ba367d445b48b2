"""Stream layers between the socket and the MQTT frame reader: plain TCP has
none; TLS and WebSocket listeners wrap each connection in a filter with
`incoming(conn, data) -> bytes` and `outgoing(data) -> bytes`."""

from __future__ import annotations


def filter_factory(listener, settings):
    """A callable peer -> filter for this listener, or None for plain TCP."""
    if listener.kind == "tcp":
        return None
    raise ValueError(f"listener kind {listener.kind!r} is not supported")
