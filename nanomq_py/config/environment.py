"""NANOMQ_* environment variables and command-line flags, written over the file's keys.

Each value remembers its variable or flag, so a bad one is reported by that name
rather than by a key the user never wrote.
"""

from __future__ import annotations

from nanomq_py.settings import LogSettings

from .context import ConfigError, show
from .log import split_targets
from .tree import get, put
from .values import url_kind

# Environment variables NanoMQ reads, mapped to the HOCON key they set ("url" adds listeners).
ENV_KEYS = {
    "NANOMQ_BROKER_URL": "url",
    "NANOMQ_TCP_ENABLE": "listeners.tcp.enable",
    "NANOMQ_DAEMON": "system.daemon",
    "NANOMQ_PROPERTY_SIZE": "mqtt.property_size",
    "NANOMQ_MAX_PACKET_SIZE": "mqtt.max_packet_size",
    "NANOMQ_MSQ_LEN": "mqtt.max_mqueue_len",
    "NANOMQ_QOS_DURATION": "mqtt.retry_interval",
    "NANOMQ_ALLOW_ANONYMOUS": "auth.allow_anonymous",
    "NANOMQ_WEBSOCKET_ENABLE": "listeners.ws.enable",
    "NANOMQ_WEBSOCKET_URL": "listeners.ws.bind",
    "NANOMQ_WEBSOCKET_TLS_ENABLE": "listeners.wss.enable",
    "NANOMQ_WEBSOCKET_TLS_URL": "listeners.wss.bind",
    "NANOMQ_TLS_ENABLE": "listeners.ssl.enable",
    "NANOMQ_TLS_URL": "listeners.ssl.bind",
    "NANOMQ_TLS_CA_CERT_PATH": "listeners.ssl.cacertfile",
    "NANOMQ_TLS_CERT_PATH": "listeners.ssl.certfile",
    "NANOMQ_TLS_KEY_PATH": "listeners.ssl.keyfile",
    "NANOMQ_TLS_KEY_PASSWORD": "listeners.ssl.key_password",
    "NANOMQ_TLS_VERIFY_PEER": "listeners.ssl.verify_peer",
    "NANOMQ_TLS_FAIL_IF_NO_PEER_CERT": "listeners.ssl.fail_if_no_peer_cert",
    "NANOMQ_LOG_TO": "log.to",
    "NANOMQ_LOG_LEVEL": "log.level",
    "NANOMQ_LOG_DIR": "log.dir",
    "NANOMQ_LOG_FILE": "log.file",
    "NANOMQ_LOG_ROTATION_SIZE": "log.rotation.size",
    "NANOMQ_LOG_ROTATION_COUNT": "log.rotation.count",
    "NANOMQ_HTTP_SERVER_ENABLE": "http_server.enable",
    "NANOMQ_HTTP_SERVER_PORT": "http_server.port",
    "NANOMQ_HTTP_SERVER_USERNAME": "http_server.username",
    "NANOMQ_HTTP_SERVER_PASSWORD": "http_server.password",
    "NANOMQ_HTTP_SERVER_AUTH_TYPE": "http_server.auth_type",
}
# NanoMQ variables with no meaning here (threads, HTTP server URL and threads): a warning, not an error.
_ENV_UNUSED = (
    "NANOMQ_NUM_TASKQ_THREAD",
    "NANOMQ_MAX_TASKQ_THREAD",
    "NANOMQ_PARALLEL",
    "NANOMQ_CLIENT_MAX_PACKET_SIZE",
    "NANOMQ_HTTP_SERVER_URL",
    "NANOMQ_HTTP_SERVER_PARALLEL",
)
_URL_TEXT = "expected nmq-tcp://host:port, tls+nmq-tcp://host:port, nmq-ws://host:port/path or nmq-wss://..."


def apply_environment(ctx, tree, env):
    had_http_server = "http_server" in tree
    for name, key in ENV_KEYS.items():
        if name in env:
            apply_override(ctx, tree, name, key, env[name], "environment")
    if not had_http_server and "http_server" in tree:  # as in NanoMQ: on only with NANOMQ_HTTP_SERVER_ENABLE
        tree["http_server"].setdefault("enable", False)
    for name in _ENV_UNUSED:
        if name in env:
            ctx.warn(f"environment: {name} is a NanoMQ setting that nanomq_py does not use (ignored)")


def apply_override(ctx, tree, label, key, value, where):
    """Sets `key` (dotted, or "url", "log.to+", "log.to-") in `tree`, remembering `label` as its origin."""
    if key == "url":
        _apply_url(ctx, tree, label, value, where)
    elif key in ("log.to+", "log.to-"):
        targets = split_targets(get(tree, ("log", "to"), list(LogSettings().to)))
        if key == "log.to+" and value not in targets:
            targets.append(value)
        elif key == "log.to-" and value in targets:
            targets.remove(value)
        put(tree, ("log", "to"), targets)
        ctx.origins[("log", "to")] = (where, label)
    else:
        path = tuple(key.split("."))
        put(tree, path, value)
        ctx.origins[path] = (where, label)


def _apply_url(ctx, tree, label, urls, where):
    """Listener URLs replace every listener of their kind that the file defined."""
    if isinstance(urls, str):
        urls = [urls]
    by_kind = {}
    for url in urls:
        kind = url_kind(url)
        if kind is None:
            raise ConfigError(f"{where}: {label} = {show(url)} is invalid: {_URL_TEXT}")
        by_kind.setdefault(kind, []).append(url)
    listeners = tree.setdefault("listeners", {})
    if not isinstance(listeners, dict):
        listeners = tree["listeners"] = {}
    for kind, kind_urls in by_kind.items():
        old = listeners.get(kind)
        block = {k: v for k, v in old.items() if not isinstance(v, dict)} if isinstance(old, dict) else {}
        block["bind"] = kind_urls[0]
        block.pop("enable", None)
        ctx.origins[("listeners", kind, "bind")] = (where, label)
        for number, url in enumerate(kind_urls[1:], 2):
            block[f"url_{number}"] = {"bind": url}
            ctx.origins[("listeners", kind, f"url_{number}", "bind")] = (where, label)
        listeners[kind] = block
