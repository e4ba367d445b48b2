"""The `listeners { tcp, ssl, ws, wss }` section -> a list of `ListenerSettings`.

A kind's block is its default listener; objects inside it (`listeners.tcp.lan { }`)
are more listeners of that kind, as in NanoMQ.
"""

from __future__ import annotations

from nanomq_py.settings import ListenerSettings, TlsSettings

from .context import Section
from .values import bind, boolean, existing_file, string

_LISTENER_DEFAULTS = {  # kind -> (host, port, path) when a block has no bind
    "tcp": ("0.0.0.0", 1883, ""),
    "ssl": ("0.0.0.0", 8883, ""),
    "ws": ("0.0.0.0", 8083, "/mqtt"),
    "wss": ("0.0.0.0", 8086, "/mqtt"),
}
_TLS_KEYS = ("keyfile", "certfile", "cacertfile", "key_password", "verify_peer", "fail_if_no_peer_cert")


def read_listeners(section):
    """Without a `listeners` section, or without a tcp block, there is one tcp listener on 1883."""
    if section is None:
        return [ListenerSettings()]
    listeners = []
    ssl_block = section.data.get("ssl") if isinstance(section.data.get("ssl"), dict) else {}
    for kind in ("tcp", "ssl", "ws", "wss"):
        block = section.section(kind)
        if block is None:
            if kind == "tcp":
                listeners.append(ListenerSettings())
            continue
        leaves = {k for k, v in block.data.items() if not isinstance(v, dict)}
        named = [k for k, v in block.data.items() if isinstance(v, dict)]
        if leaves or not named:
            listeners.extend(_listener(block, kind, "default", ssl_block))
        for name in named:
            listeners.extend(_listener(block.section(name), kind, name, ssl_block))
        block.finish()
    section.finish()
    return listeners


def _listener(block, kind, name, ssl_block):
    """One listener block -> [ListenerSettings], or [] when `enable = false`."""
    enabled = block.take("enable", boolean, True)
    default_host, default_port, default_path = _LISTENER_DEFAULTS[kind]
    host, port, url_path = block.take("bind", bind(kind), (default_host, default_port, default_path))
    tls = None
    if kind in ("ssl", "wss"):
        tls = _listener_tls(block, kind, ssl_block, enabled)
    if not enabled:
        return []
    return [ListenerSettings(kind=kind, name=name, host=host, port=port, path=url_path, tls=tls)]


def _listener_tls(block, kind, ssl_block, enabled):
    """TLS keys of an ssl/wss block; missing ones are taken from `listeners.ssl`, as NanoMQ does."""
    borrowed = {k: v for k, v in ssl_block.items() if k in _TLS_KEYS and not isinstance(v, dict)}
    data = {**borrowed, **{k: v for k, v in block.data.items() if k in _TLS_KEYS}}
    source = Section(block.ctx, block.path, data)
    block.seen.update(_TLS_KEYS)
    for key in ("keyfile", "certfile"):
        if enabled and not data.get(key):
            block.ctx.missing(
                block.path + (key,), f"{_article(kind)} {kind} listener needs keyfile and certfile"
            )
    if not enabled:
        return None
    return TlsSettings(
        keyfile=source.take("keyfile", existing_file),
        certfile=source.take("certfile", existing_file),
        cacertfile=source.take("cacertfile", existing_file, ""),
        key_password=source.take("key_password", string, ""),
        verify_peer=source.take("verify_peer", boolean, False),
        fail_if_no_peer_cert=source.take("fail_if_no_peer_cert", boolean, False),
    )


def _article(kind):
    return "an" if kind[0] in "aeiosx" else "a"
