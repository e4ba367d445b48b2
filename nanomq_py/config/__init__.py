"""Configuration: nanomq.conf (HOCON) or NanoMQ's old key=value file, then
NANOMQ_* environment variables, then command-line flags -> `Settings`.

Plan: each source is turned into one nested dict in the HOCON key space
(`mqtt.max_packet_size`, `listeners.tcp.bind`, ...), later sources written on
top of earlier ones, and the merged dict is validated once into the typed
dataclasses of `nanomq_py.settings`. Every value remembers where it came from
(file, environment variable, flag, old-file key), so a bad value stops the
start with one `ConfigError` line naming that place, the key, the value and
what is allowed. Keys nobody reads become warnings.

Nothing here imports gevent: the CLI loads the config before it daemonizes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import re
import warnings
from datetime import timedelta
from urllib.parse import urlsplit

from nanomq_py.mqtt.topics import validate_topic_filter
from nanomq_py.settings import (
    AclRule,
    AuthSettings,
    HttpAuthRequest,
    HttpAuthSettings,
    ListenerSettings,
    LogSettings,
    MqttSettings,
    Settings,
    TlsSettings,
    WebhookRule,
    WebhookSettings,
    WebhookTls,
)

DEFAULT_PID_FILE = "/tmp/nanomq/nanomq.pid"

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
LOG_TARGETS = ("console", "file", "syslog")
PAYLOAD_ENCODINGS = ("plain", "base64", "base62")
WEBHOOK_EVENTS = (
    "on_client_connect",
    "on_client_connack",
    "on_client_connected",
    "on_client_disconnected",
    "on_client_subscribe",
    "on_client_unsubscribe",
    "on_session_subscribed",
    "on_session_unsubscribed",
    "on_session_terminated",
    "on_message_publish",
    "on_message_delivered",
    "on_message_acked",
    "on_message_dropped",
)
_MESSAGE_EVENTS = ("on_message_publish", "on_message_delivered", "on_message_acked", "on_message_dropped")

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
}
# NanoMQ variables with no meaning here (threads, its HTTP server): a warning, not an error.
_ENV_UNUSED = (
    "NANOMQ_NUM_TASKQ_THREAD",
    "NANOMQ_MAX_TASKQ_THREAD",
    "NANOMQ_PARALLEL",
    "NANOMQ_CLIENT_MAX_PACKET_SIZE",
    "NANOMQ_HTTP_SERVER_ENABLE",
    "NANOMQ_HTTP_SERVER_URL",
    "NANOMQ_HTTP_SERVER_PORT",
    "NANOMQ_HTTP_SERVER_PARALLEL",
    "NANOMQ_HTTP_SERVER_USERNAME",
    "NANOMQ_HTTP_SERVER_PASSWORD",
    "NANOMQ_HTTP_SERVER_AUTH_TYPE",
)

# NanoMQ keys that have no equivalent here; reading a NanoMQ file with them only warns.
_NANOMQ_UNUSED = (
    ("system", "num_taskq_thread"),
    ("system", "max_taskq_thread"),
    ("system", "parallel"),
    ("system", "hook_ipc_url"),
    ("system", "cmd_ipc_url"),
    ("mqtt", "client_max_packet_size"),
    ("auth", "cache"),
    ("log", "uds_addr"),
    ("http_server",),
    ("sqlite",),
    ("bridges",),
    ("preset",),
    ("rules",),
    ("exchange_client",),
    ("parquet",),
    ("plugin",),
    ("vsomeip_gateway",),
    ("dds_gateway",),
    ("zmq_gateway",),
)

_LISTENER_DEFAULTS = {  # kind -> (host, port, path) when a block has no bind
    "tcp": ("0.0.0.0", 1883, ""),
    "ssl": ("0.0.0.0", 8883, ""),
    "ws": ("0.0.0.0", 8083, "/mqtt"),
    "wss": ("0.0.0.0", 8086, "/mqtt"),
}
_URL_SCHEMES = {  # scheme prefix of a listener URL -> kind
    "nmq-tcp://": "tcp",
    "mqtt-tcp://": "tcp",
    "tcp://": "tcp",
    "tls+nmq-tcp://": "ssl",
    "tls+mqtt-tcp://": "ssl",
    "nmq-tls://": "ssl",
    "ssl://": "ssl",
    "tls://": "ssl",
    "nmq-ws://": "ws",
    "ws://": "ws",
    "nmq-wss://": "wss",
    "wss://": "wss",
}
_TLS_KEYS = ("keyfile", "certfile", "cacertfile", "key_password", "verify_peer", "fail_if_no_peer_cert")

_MISSING = object()


class ConfigError(Exception):
    """A configuration problem; str() is one line naming file, key, value and what is allowed."""


# --------------------------------------------------------------------------- public entry point


def load_settings(conf_path=None, old_conf_path=None, env=os.environ, overrides=None):
    """Build `Settings` from a HOCON file or an old-style file, the environment and overrides.

    `overrides` is a list of (label, key, value) triples from the command line, e.g.
    ("--log_level", "log.level", "debug"); besides dotted HOCON keys, key "url" adds a
    listener from an nmq-tcp:// / tls+nmq-tcp:// / nmq-ws:// / nmq-wss:// URL, and
    "log.to+" / "log.to-" add or remove one log target. Returns (settings, warnings).
    """
    if conf_path is None and old_conf_path is None:
        conf_path = env.get("NANOMQ_CONF_PATH") or None
    if conf_path is not None and old_conf_path is not None:
        raise ConfigError(f"{old_conf_path}: give either --conf or --old_conf, not both (also {conf_path})")
    source = conf_path or old_conf_path or "<built-in defaults>"
    ctx = _Context(source)
    if conf_path is not None:
        tree = _read_hocon(conf_path)
    elif old_conf_path is not None:
        tree = _OldConfReader(ctx, old_conf_path).read()
    else:
        tree = {}
    _apply_environment(ctx, tree, env)
    for label, key, value in overrides or ():
        _apply_override(ctx, tree, label, key, value, "command line")
    settings = _build_settings(ctx, tree)
    settings.pid_file = env.get("NANOMQ_PID_FILE") or DEFAULT_PID_FILE
    settings.source = source
    return settings, ctx.warnings


# --------------------------------------------------------------------------- reading files


class _IncludeWatcher(logging.Handler):
    """Collects the paths pyhocon could not include (it only logs them)."""

    def __init__(self):
        super().__init__()
        self.missing = []

    def emit(self, record):
        if record.getMessage().startswith("Cannot include"):
            self.missing.append(str(record.args[0]) if record.args else record.getMessage())


def _read_hocon(path):
    from pyhocon import ConfigFactory
    from pyhocon.exceptions import ConfigException
    from pyparsing import ParseBaseException

    try:
        with open(path, encoding="utf-8") as fd:
            text = fd.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    pyhocon_log = logging.getLogger("pyhocon.config_parser")
    watcher = _IncludeWatcher()
    saved_propagate = pyhocon_log.propagate
    pyhocon_log.addHandler(watcher)
    pyhocon_log.propagate = False
    try:
        with warnings.catch_warnings():  # pyhocon reports missing includes with the deprecated logger.warn
            warnings.simplefilter("ignore", DeprecationWarning)
            parsed = ConfigFactory.parse_string(text, basedir=os.path.dirname(path) or ".")
    except ParseBaseException as exc:
        where = f"line {exc.lineno}, column {exc.col}"
        raise ConfigError(
            f"{path}: HOCON syntax error at {where} ({exc.line.strip()!r}): {exc.msg}"
        ) from None
    except ConfigException as exc:
        raise ConfigError(f"{path}: {' '.join(str(exc).split())}") from None
    finally:
        pyhocon_log.removeHandler(watcher)
        pyhocon_log.propagate = saved_propagate
    if watcher.missing:
        _fail_missing_include(path, text, watcher.missing[0])
    return _plain(parsed)


def _fail_missing_include(path, text, missing):
    for match in re.finditer(
        r'([\w.-]+)\s*[=:]?\s*\{\s*include\s+(?:required\(\s*)?(?:file\(\s*)?"([^"]+)"', text
    ):
        key, included = match.groups()
        if missing.endswith(included):
            key = f"auth.{key}" if key in ("password", "acl") else key
            raise ConfigError(
                f'{path}: {key} = {{include "{included}"}} is invalid: {missing} does not exist or cannot be read'
            )
    raise ConfigError(
        f"{path}: include {json.dumps(missing)} is invalid: the file does not exist or cannot be read"
    )


def _plain(value):
    """pyhocon's ConfigTree/ConfigList -> plain dicts and lists (order kept)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _OldConfReader:
    """NanoMQ's classic key=value file (nanomq_old.conf) -> the HOCON key space.

    Not HOCON: everything right of '=' is the value, `//` in URLs is not a comment.
    """

    _SIMPLE = {
        "daemon": "system.daemon",
        "property_size": "mqtt.property_size",
        "msq_len": "mqtt.max_mqueue_len",
        "qos_duration": "mqtt.retry_interval",
        "allow_anonymous": "auth.allow_anonymous",
        "acl_nomatch": "auth.no_match",
        "acl_deny_action": "auth.deny_action",
        "tls.enable": "listeners.ssl.enable",
        "tls.url": "listeners.ssl.bind",
        "tls.keyfile": "listeners.ssl.keyfile",
        "tls.certfile": "listeners.ssl.certfile",
        "tls.cacertfile": "listeners.ssl.cacertfile",
        "tls.key_password": "listeners.ssl.key_password",
        "tls.verify_peer": "listeners.ssl.verify_peer",
        "tls.fail_if_no_peer_cert": "listeners.ssl.fail_if_no_peer_cert",
        "log.to": "log.to",
        "log.level": "log.level",
        "log.dir": "log.dir",
        "log.file": "log.file",
        "log.rotation.size": "log.rotation.size",
        "log.rotation.count": "log.rotation.count",
        "auth.http.enable": "auth.http_auth.enable",
        "auth.http.timeout": "auth.http_auth.timeout",
        "auth.http.connect_timeout": "auth.http_auth.connect_timeout",
        "auth.http.pool_size": "auth.http_auth.pool_size",
        "auth.http.cache_ttl": "auth.http_auth.cache_ttl",
        "web.hook.enable": "webhook.enable",
        "web.hook.url": "webhook.url",
        "web.hook.body.encoding_of_payload_field": "webhook.body.encoding",
        "web.hook.pool_size": "webhook.pool_size",
        "web.hook.cancel_timeout": "webhook.cancel_timeout",
        "web.hook.queue_size": "webhook.queue_size",
        "web.hook.max_retries": "webhook.max_retries",
        "web.hook.retry_backoff": "webhook.retry_backoff",
        "web.hook.drain_timeout": "webhook.drain_timeout",
        "web.hook.ssl.cacertfile": "webhook.ssl.cacertfile",
        "web.hook.ssl.certfile": "webhook.ssl.certfile",
        "web.hook.ssl.keyfile": "webhook.ssl.keyfile",
        "web.hook.ssl.verify": "webhook.ssl.verify",
    }
    _UNUSED = (
        "num_taskq_thread",
        "max_taskq_thread",
        "parallel",
        "client_max_packet_size",
        "enable_ipc_internal",
        "enable_acl_cache",
        "acl_cache_max_size",
        "acl_cache_ttl",
        "sqlite.",
        "http_server.",
        "bridge.",
        "aws.",
        "rule.",
        "rule_option",
        "web.hook.ssl.server_name_indication",
    )

    def __init__(self, ctx, path):
        self.ctx = ctx
        self.path = path
        ctx.verbatim.add(path)
        self.tree = {}
        self.acl_rules = []  # (N, order, origin key, raw JSON)
        self.hook_rules = []
        self.users = {}  # N -> {"login": .., "password": ..}
        self.websocket = {}
        self.acl_enable = "true"
        self.unused = []  # NanoMQ keys (or key groups such as "bridge.*") with no meaning here

    def read(self):
        try:
            with open(self.path, encoding="utf-8") as fd:
                lines = fd.read().splitlines()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the file: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{self.path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"
            ) from None
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            key, sep, value = text.partition("=")
            if not sep or not key.strip():
                raise ConfigError(
                    f"{self.path}: line {number} is invalid: expected key=value, found {text!r}"
                )
            self._one(key.strip(), value.strip())
        self._finish()
        return self.tree

    def _set(self, old_key, new_key, value):
        path = tuple(new_key.split("."))
        _put(self.tree, path, value)
        self.ctx.origins[path] = (self.path, old_key)

    def _one(self, key, value):
        if key in self._SIMPLE:
            self._set(key, self._SIMPLE[key], value)
        elif key == "url":
            self._set(key, "listeners.tcp.bind", value)
        elif key == "max_packet_size":  # KB in the old file
            self._set(key, "mqtt.max_packet_size", f"{value}KB" if value.isdigit() else value)
        elif key == "keepalive_backoff":  # thousandths in the old file: 1250 means 1.25
            self._set(key, "mqtt.keepalive_multiplier", str(int(value) / 1000) if value.isdigit() else value)
        elif key in ("websocket.enable", "websocket.url", "websocket.tls_url"):
            self.websocket[key] = value
        elif key == "acl_enable":
            self.acl_enable = value
        elif m := re.fullmatch(r"acl\.rule\.(\d+)", key):
            self.acl_rules.append((int(m.group(1)), len(self.acl_rules), key, value))
        elif m := re.fullmatch(r"web\.hook\.rule\.[\w.]+\.(\d+)", key):
            self.hook_rules.append((int(m.group(1)), len(self.hook_rules), key, value))
        elif m := re.fullmatch(r"web\.hook\.headers\.(.+)", key):
            self._set(key, "webhook.headers", self._headers("webhook.headers", m.group(1), value))
        elif m := re.fullmatch(r"auth\.(\d+)\.(login|password)", key):
            self.users.setdefault(int(m.group(1)), {})[m.group(2)] = (key, value)
        elif m := re.fullmatch(
            r"auth\.http\.(auth_req|super_req|acl_req)\.(url|method|params|headers\.(.+))", key
        ):
            self._http_req(key, m.group(1), m.group(2), m.group(3), value)
        elif key.startswith(self._UNUSED):
            prefix = next(p for p in self._UNUSED if key.startswith(p))
            group = f"{prefix}*" if prefix.endswith(".") else key
            if group not in self.unused:
                self.unused.append(group)
        else:
            self.ctx.warn(f"{self.path}: unknown key {key} (ignored)")

    def _headers(self, dotted, name, value):
        node = _get(self.tree, tuple(dotted.split(".")), {})
        node = dict(node) if isinstance(node, dict) else {}
        node[name] = value
        return node

    def _http_req(self, key, req, field, header, value):
        base = f"auth.http_auth.{req}"
        if header is not None:
            self._set(key, f"{base}.headers", self._headers(f"{base}.headers", header, value))
        elif field == "params":  # "clientid=%c,username=%u"
            params = dict(item.partition("=")[::2] for item in value.split(",") if item.strip())
            self._set(key, f"{base}.params", {k.strip(): v.strip() for k, v in params.items()})
        else:
            self._set(key, f"{base}.{field}", value)

    def _json_object(self, key, value, example):
        try:
            obj = json.loads(value)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise ConfigError(
                f"{self.path}: {key} = {value} is invalid: expected a JSON object like {example}"
            )
        return obj

    def _finish(self):
        if self.unused:
            names = ", ".join(self.unused)
            self.ctx.warn(f"{self.path}: NanoMQ settings that nanomq_py does not use are ignored: {names}")
        if self.websocket:
            ws_on = self.websocket.get("websocket.enable", "false")
            self._set("websocket.enable", "listeners.ws.enable", ws_on)
            if "websocket.url" in self.websocket:
                self._set("websocket.url", "listeners.ws.bind", self.websocket["websocket.url"])
            tls_on = _get(self.tree, ("listeners", "ssl", "enable"), "false")
            if "websocket.tls_url" in self.websocket and _truthy(ws_on) and _truthy(tls_on):
                self._set("websocket.tls_url", "listeners.wss.bind", self.websocket["websocket.tls_url"])
        if self.acl_rules and _truthy(self.acl_enable):
            rules = []
            for _, _, key, value in sorted(self.acl_rules):
                rules.append(self._json_object(key, value, '{"permit": "allow", "username": "#"}'))
                self.ctx.origins[("auth", "acl", "rules", len(rules) - 1)] = (self.path, key)
            _put(self.tree, ("auth", "acl", "rules"), rules)
        if self.users:
            users = {}
            for _, entry in sorted(self.users.items()):
                if "login" not in entry or "password" not in entry:
                    key = next(iter(entry.values()))[0]
                    raise ConfigError(
                        f"{self.path}: {key} is invalid: auth.N.login and auth.N.password go in pairs"
                    )
                users[entry["login"][1]] = entry["password"][1]
            _put(self.tree, ("auth", "password"), users)
        if self.hook_rules:
            events = []
            for _, _, key, value in sorted(self.hook_rules):
                rule = self._json_object(key, value, '{"action": "on_message_publish", "topic": "a/#"}')
                event = {"event": rule.get("action", "")}
                if "topic" in rule:
                    event["topic"] = rule["topic"]
                events.append(event)
                for field in ("event", "topic"):
                    self.ctx.origins[("webhook", "events", len(events) - 1, field)] = (self.path, key)
            _put(self.tree, ("webhook", "events"), events)
        if "webhook" in self.tree and "enable" not in self.tree["webhook"]:
            self.tree["webhook"]["enable"] = False  # the old form is off unless web.hook.enable=true


def _truthy(text):
    return str(text).strip().lower() in ("true", "yes", "on", "1")


# --------------------------------------------------------------------------- environment and flags


def _apply_environment(ctx, tree, env):
    for name, key in ENV_KEYS.items():
        if name in env:
            _apply_override(ctx, tree, name, key, env[name], "environment")
    for name in _ENV_UNUSED:
        if name in env:
            ctx.warn(f"environment: {name} is a NanoMQ setting that nanomq_py does not use (ignored)")


def _apply_override(ctx, tree, label, key, value, where):
    if key == "url":
        _apply_url(ctx, tree, label, value, where)
    elif key in ("log.to+", "log.to-"):
        targets = _split_targets(_get(tree, ("log", "to"), list(LogSettings().to)))
        if key == "log.to+" and value not in targets:
            targets.append(value)
        elif key == "log.to-" and value in targets:
            targets.remove(value)
        _put(tree, ("log", "to"), targets)
        ctx.origins[("log", "to")] = (where, label)
    else:
        path = tuple(key.split("."))
        _put(tree, path, value)
        ctx.origins[path] = (where, label)


def _apply_url(ctx, tree, label, urls, where):
    """Listener URLs replace every listener of their kind that the file defined."""
    if isinstance(urls, str):
        urls = [urls]
    by_kind = {}
    for url in urls:
        kind = _url_kind(url)
        if kind is None:
            allowed = "expected nmq-tcp://host:port, tls+nmq-tcp://host:port, nmq-ws://host:port/path or nmq-wss://..."
            raise ConfigError(f"{where}: {label} = {_show(url)} is invalid: {allowed}")
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


def _url_kind(url):
    for scheme, kind in sorted(_URL_SCHEMES.items(), key=lambda item: -len(item[0])):
        if str(url).lower().startswith(scheme):
            return kind
    return None


def _split_targets(value):
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,|]", value) if part.strip()]
    if isinstance(value, list):
        return list(value)
    return [value]


def _get(tree, path, default=None):
    node = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _put(tree, path, value):
    node = tree
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


# --------------------------------------------------------------------------- validation helpers


class _Context:
    """Where each value came from, and the warnings gathered on the way."""

    def __init__(self, source):
        self.source = source
        self.origins = {}  # path tuple -> (where, key label)
        self.verbatim = set()  # sources whose values are shown as written (the old key=value file)
        self.warnings = []

    def locate(self, path):
        for end in range(len(path), 0, -1):
            if path[:end] in self.origins:
                return self.origins[path[:end]]
        return self.source, _dotted(path)

    def fail(self, path, value, allowed):
        where, key = self.locate(path)
        shown = value if where in self.verbatim and isinstance(value, str) else _show(value)
        raise ConfigError(f"{where}: {key} = {shown} is invalid: {allowed}")

    def missing(self, path, needed):
        where, key = self.locate(path)
        raise ConfigError(f"{where}: {key} is missing: {needed}")

    def warn(self, message):
        self.warnings.append(message)

    def unknown(self, path):
        where, key = self.locate(path)
        for prefix in _NANOMQ_UNUSED:
            if path[: len(prefix)] == prefix:
                self.warn(f"{where}: {key} is a NanoMQ setting that nanomq_py does not use (ignored)")
                return
        if path[0] == "web":
            self.warn(
                f"{where}: {key} is NanoMQ's old format: use the webhook {{ }} block or --old_conf (ignored)"
            )
            return
        self.warn(f"{where}: unknown key {key} (ignored)")


def _dotted(path):
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")


def _show(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if _is_relativedelta(value):
        parts = [f"{getattr(value, unit)} {unit}" for unit in _RD_UNITS if getattr(value, unit, 0)]
        return " ".join(parts) or "0s"
    return json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))


_RD_UNITS = ("years", "months", "days", "hours", "minutes", "seconds", "microseconds")


def _is_relativedelta(value):
    return type(value).__name__ == "relativedelta"


class _Section:
    """One object of the config: reads keys through parsers and reports the keys nobody read."""

    def __init__(self, ctx, path, data):
        self.ctx = ctx
        self.path = path
        self.data = data
        self.seen = set()

    def has(self, key):
        return key in self.data

    def take(self, key, parse, default=_MISSING, needed=""):
        """The parsed value of `key`; `default` when absent, or a ConfigError saying `needed` when required."""
        self.seen.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                self.ctx.missing(self.path + (key,), needed)
            return default
        return parse(self.ctx, self.path + (key,), self.data[key])

    def section(self, key):
        """The object under `key`, or None when absent."""
        self.seen.add(key)
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, dict):
            self.ctx.fail(self.path + (key,), value, "expected an object { ... }")
        return _Section(self.ctx, self.path + (key,), value)

    def finish(self):
        for key in self.data:
            if key not in self.seen:
                self.ctx.unknown(self.path + (key,))


# Parsers: (ctx, path, value) -> typed value, or ctx.fail(...).


def _integer(low=None, high=None):
    def parse(ctx, path, value):
        number = _as_int(value)
        if number is None or (low is not None and number < low) or (high is not None and number > high):
            ctx.fail(path, value, _range_text("an integer", low, high))
        return number

    return parse


def _as_int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _range_text(what, low, high, low_open=False):
    if low is not None and high is not None:
        return f"expected {what} from {low} to {high}"
    if low is not None:
        return f"expected {what} {'>' if low_open else '>='} {low}"
    return f"expected {what}"


def _number(low=None, low_open=False):
    def parse(ctx, path, value):
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if (
            number is None
            or number != number
            or (low is not None and (number <= low if low_open else number < low))
        ):
            ctx.fail(path, value, _range_text("a number", low, None, low_open))
        return number

    return parse


def _boolean(ctx, path, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
    ctx.fail(path, value, "expected true or false")


def _enum(choices):
    def parse(ctx, path, value):
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        ctx.fail(path, value, f"expected one of {', '.join(choices)}")

    return parse


def _string(ctx, path, value):
    if isinstance(value, (bool, list, dict)) or value is None:
        ctx.fail(path, value, "expected a string")
    return str(value)


def _nonempty_string(ctx, path, value):
    text = _string(ctx, path, value)
    if not text.strip():
        ctx.fail(path, value, "expected a non-empty string")
    return text


def _existing_file(ctx, path, value):
    name = _nonempty_string(ctx, path, value)
    if not os.path.isfile(name):
        ctx.fail(path, value, "expected the path of an existing file")
    return name


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}


def _size(low=0, high=None):
    allowed = "expected a size in bytes or with a unit (KB, MB, GB; 1024-based)"
    if high is not None:
        allowed += f" from {low} to {_human_size(high)}"
    elif low:
        allowed += f" >= {low}"

    def parse(ctx, path, value):
        number = _as_int(value)
        if number is None and isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
            if match and match.group(2).lower() in _SIZE_UNITS:
                number = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
        if number is None and _is_relativedelta(value) and _only_units(value, ("minutes",)):
            number = value.minutes * 1024**2  # pyhocon reads an unquoted `10m` as minutes; NanoMQ means MB
        if number is None or number < low or (high is not None and number > high):
            ctx.fail(path, value, allowed)
        return number

    return parse


def _human_size(number):
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if number % factor == 0:
            return f"{number // factor}{unit}"
    return str(number)


def _only_units(delta, units):
    return all(getattr(delta, unit, 0) == 0 for unit in _RD_UNITS if unit not in units)


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(low=0.0, low_open=False, plain_unit="s"):
    """Durations: "500ms", "10s", "5m", "1h", "1d", or a plain number in `plain_unit`."""
    allowed = "expected a duration such as 500ms, 10s, 5m, 1h, 1d"
    allowed += (
        " (a plain number means milliseconds)" if plain_unit == "ms" else " (a plain number means seconds)"
    )
    allowed += f", {'>' if low_open else '>='} {low:g}s" if low or low_open else ""

    def parse(ctx, path, value):
        seconds = _as_seconds(value, _DURATION_UNITS[plain_unit])
        if seconds is None or (seconds <= low if low_open else seconds < low):
            ctx.fail(path, value, allowed)
        return seconds

    return parse


def _as_seconds(value, plain_factor):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value * plain_factor
    if isinstance(value, timedelta):
        return value.total_seconds()
    if _is_relativedelta(value):
        if value.years or value.months:
            return None
        return (
            value.days * 86400
            + value.hours * 3600
            + value.minutes * 60
            + value.seconds
            + value.microseconds / 1e6
        )
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", value.lower())
        if match:
            factor = _DURATION_UNITS[match.group(2)] if match.group(2) else plain_factor
            return float(match.group(1)) * factor
    return None


def _string_map(ctx, path, value):
    if not isinstance(value, dict):
        ctx.fail(path, value, "expected an object of name = value strings")
    result = {}
    for name, item in value.items():
        if isinstance(item, (dict, list)) or item is None:
            ctx.fail(path + (name,), item, "expected a string")
        result[str(name)] = _show(item) if isinstance(item, bool) else str(item)
    return result


_HTTP_URL_TEXT = "expected http://host[:port][/path] or https://host[:port][/path]"


def _http_url(ctx, path, value):
    url = _nonempty_string(ctx, path, value)
    allowed = _HTTP_URL_TEXT
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        ctx.fail(path, value, allowed)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == 0
        or any(c.isspace() for c in url)
    ):
        ctx.fail(path, value, allowed)
    return url


_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


def _bind(kind):
    """Parses "host:port" (tcp, ssl) or "host:port/path" (ws, wss); an nmq-*:// scheme prefix is accepted."""
    websocket = kind in ("ws", "wss")
    allowed = f"expected host:port{'/path' if websocket else ''} with a port from 0 to 65535"

    def parse(ctx, path, value):
        text = _string(ctx, path, value).strip()
        scheme_kind = _url_kind(text)
        if scheme_kind is not None:
            if scheme_kind != kind:
                ctx.fail(path, value, f"{allowed} (a {kind} listener, not {scheme_kind})")
            text = text.split("://", 1)[1]
        address, slash, rest = text.partition("/")
        url_path = slash + rest if websocket and slash else ("/mqtt" if websocket else "")
        if slash and not websocket:
            ctx.fail(path, value, allowed)
        host, colon, port_text = address.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not colon or not port_text.isdigit() or int(port_text) > 65535 or not _valid_host(host):
            ctx.fail(path, value, allowed)
        return host, int(port_text), url_path

    return parse


def _article(word):
    return "an" if word[0] in "aeiosx" else "a"


def _valid_host(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host)) and ":" not in host


# --------------------------------------------------------------------------- sections -> settings


def _build_settings(ctx, tree):
    root = _Section(ctx, (), tree)
    settings = Settings()
    settings.listeners = _listeners(root.section("listeners"))
    mqtt = root.section("mqtt")
    if mqtt is not None:
        settings.mqtt = _mqtt(mqtt)
    auth = root.section("auth")
    if auth is not None:
        settings.auth = _auth(auth)
    log = root.section("log")
    if log is not None:
        settings.log = _log(log)
    system = root.section("system")
    if system is not None:
        settings.daemon = system.take("daemon", _boolean, False)
        system.finish()
    webhook = root.section("webhook")
    if webhook is not None:
        settings.webhook = _webhook(webhook)
    root.finish()
    return settings


def _listeners(section):
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
    enabled = block.take("enable", _boolean, True)
    default_host, default_port, default_path = _LISTENER_DEFAULTS[kind]
    host, port, url_path = block.take("bind", _bind(kind), (default_host, default_port, default_path))
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
    source = _Section(block.ctx, block.path, data)
    block.seen.update(_TLS_KEYS)
    for key in ("keyfile", "certfile"):
        if enabled and not data.get(key):
            block.ctx.missing(
                block.path + (key,), f"{_article(kind)} {kind} listener needs keyfile and certfile"
            )
    if not enabled:
        return None
    return TlsSettings(
        keyfile=source.take("keyfile", _existing_file),
        certfile=source.take("certfile", _existing_file),
        cacertfile=source.take("cacertfile", _existing_file, ""),
        key_password=source.take("key_password", _string, ""),
        verify_peer=source.take("verify_peer", _boolean, False),
        fail_if_no_peer_cert=source.take("fail_if_no_peer_cert", _boolean, False),
    )


def _max_awaiting_rel(ctx, path, value):
    """A count; NanoMQ's own default file writes `10s` here (unused there), so a duration only warns."""
    if _is_relativedelta(value) or isinstance(value, timedelta):
        where, key = ctx.locate(path)
        ctx.warn(f"{where}: {key} = {_show(value)} is a message count, not a duration: using the default")
        return MqttSettings().max_awaiting_rel
    return _integer(0)(ctx, path, value)


_MQTT_PARSERS = {
    "max_packet_size": _size(1, 260 * 1024**2),
    "max_mqueue_len": _integer(1),
    "retry_interval": _duration(0, low_open=True),
    "keepalive_multiplier": _number(0, low_open=True),
    "max_inflight_window": _integer(1, 65535),
    "max_awaiting_rel": _max_awaiting_rel,
    "await_rel_timeout": _duration(0, low_open=True),
    "max_topic_alias": _integer(0, 65535),
    "property_size": _integer(1),
    "max_qos": _integer(0, 2),
    "session_expiry_interval": _duration(0),
    "max_session_expiry_interval": _duration(0),
    "max_connections": _integer(0),
    "connect_timeout": _duration(0, low_open=True),
    "max_topic_levels": _integer(0),
    "max_subscriptions": _integer(0),
    "max_outgoing_bytes": _size(1),
}


def _mqtt(section):
    values = {}
    for field in dataclasses.fields(MqttSettings):
        parse = _MQTT_PARSERS.get(field.name) or _parser_for_default(getattr(MqttSettings(), field.name))
        value = section.take(field.name, parse, None)
        if value is not None:
            values[field.name] = value
    section.finish()
    return MqttSettings(**values)


def _parser_for_default(default):
    """For MqttSettings fields without an entry above: judged by the type of their default."""
    if isinstance(default, bool):
        return _boolean
    if isinstance(default, int):
        return _integer(0)
    if isinstance(default, float):
        return _duration(0)
    return _string


def _auth(section):
    auth = AuthSettings(
        allow_anonymous=section.take("allow_anonymous", _boolean, True),
        no_match=section.take("no_match", _enum(("allow", "deny")), "allow"),
        deny_action=section.take("deny_action", _enum(("ignore", "disconnect")), "ignore"),
        users=section.take("password", _string_map, {}),
    )
    acl = section.section("acl")
    if acl is not None:
        auth.acl = acl.take("rules", _acl_rules, [])
        acl.finish()
    http_auth = section.section("http_auth")
    if http_auth is not None:
        auth.http_auth = _http_auth(http_auth)
    section.finish()
    return auth


def _acl_rules(ctx, path, value):
    if not isinstance(value, list):
        ctx.fail(path, value, "expected a list of rules [ {permit = allow, ...}, ... ]")
    rules = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            ctx.fail(path + (index,), item, "expected a rule {permit = allow|deny, ...}")
        rules.append(_acl_rule(_Section(ctx, path + (index,), item)))
    return rules


_WHO_KEYS = ("ipaddr", "ipaddrs", "username", "clientid")


def _acl_rule(rule):
    permit = rule.take("permit", _enum(("allow", "deny")), needed="every rule needs permit = allow or deny")
    action = rule.take("action", _enum(("publish", "subscribe", "pubsub")), "pubsub")
    topics = rule.take("topics", _acl_topics, [])
    selectors = [
        _who(rule.ctx, rule.path + (key,), key, rule.take(key, _any)) for key in _WHO_KEYS if rule.has(key)
    ]
    for op in ("and", "or"):
        if rule.has(op):
            selectors.append((op, _who_list(rule.ctx, rule.path + (op,), rule.take(op, _any))))
    rule.finish()
    if not selectors:
        who = ("all",)
    elif len(selectors) == 1:
        who = selectors[0]
    else:
        who = ("and", selectors)
    return AclRule(permit=permit, who=who, action=action, topics=topics)


def _any(ctx, path, value):
    return value


def _who(ctx, path, key, value):
    if key == "ipaddrs":
        if not isinstance(value, list) or not value:
            ctx.fail(path, value, "expected a list of IP addresses or networks")
        return ("or", [_who(ctx, path + (i,), "ipaddr", item) for i, item in enumerate(value)])
    text = _nonempty_string(ctx, path, value)
    if text == "#":
        return ("all",)
    if key == "ipaddr":
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            ctx.fail(path, value, 'expected an IP address, a network such as 192.168.1.0/24, or "#"')
    return (key, text)


def _who_list(ctx, path, value):
    if not isinstance(value, list) or not value:
        ctx.fail(path, value, "expected a list of {username|clientid|ipaddr = ...} selectors")
    result = []
    for index, item in enumerate(value):
        keys = [k for k in _WHO_KEYS if isinstance(item, dict) and k in item]
        if len(keys) != 1 or len(item) != 1:
            ctx.fail(
                path + (index,), item, "expected one of {username = ...}, {clientid = ...}, {ipaddr = ...}"
            )
        result.append(_who(ctx, path + (index, keys[0]), keys[0], item[keys[0]]))
    return result


def _acl_topics(ctx, path, value):
    if not isinstance(value, list):
        ctx.fail(path, value, "expected a list of topic filters")
    topics = []
    for index, item in enumerate(value):
        topic = _nonempty_string(ctx, path + (index,), item)
        try:
            validate_topic_filter(topic[1:] if topic.startswith("@") else topic)
        except ValueError as exc:
            ctx.fail(path + (index,), item, f"expected an MQTT topic filter ({exc})")
        topics.append(topic)
    return topics


def _http_auth(section):
    enabled = section.take("enable", _boolean, True)
    settings = HttpAuthSettings(
        auth_req=_http_request(section.section("auth_req")),
        super_req=_http_request(section.section("super_req")),
        acl_req=_http_request(section.section("acl_req")),
        timeout=section.take("timeout", _duration(0, low_open=True), 5.0),
        connect_timeout=section.take("connect_timeout", _duration(0, low_open=True), 5.0),
        pool_size=section.take("pool_size", _integer(1), 32),
        cache_ttl=section.take("cache_ttl", _duration(0), 60.0),
    )
    section.finish()
    return settings if enabled else None


def _http_request(section):
    if section is None:
        return None
    request = HttpAuthRequest(
        url=section.take("url", _http_url, needed=_HTTP_URL_TEXT),
        method=section.take("method", _enum(("get", "post")), "post"),
        headers=section.take("headers", _string_map, {}),
        params=section.take("params", _http_params, {}),
    )
    section.finish()
    return request


def _http_params(ctx, path, value):
    if isinstance(value, str):  # the old form: "clientid=%c,username=%u"
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            ctx.fail(path, value, "expected {name = value, ...} or name=value,name=value")
        return {k.strip(): v.strip() for k, _, v in pairs}
    return _string_map(ctx, path, value)


def _log(section):
    defaults = LogSettings()
    log = LogSettings(
        to=section.take("to", _log_targets, defaults.to),
        level=section.take("level", _enum(LOG_LEVELS), defaults.level),
        dir=section.take("dir", _nonempty_string, defaults.dir),
        file=section.take("file", _nonempty_string, defaults.file),
    )
    rotation = section.section("rotation")
    if rotation is not None:
        log.rotation_size = rotation.take("size", _size(1), defaults.rotation_size)
        log.rotation_count = rotation.take("count", _integer(1), defaults.rotation_count)
        rotation.finish()
    section.finish()
    return log


def _log_targets(ctx, path, value):
    targets = []
    for item in _split_targets(value):
        if not isinstance(item, str) or item.strip().lower() not in LOG_TARGETS:
            ctx.fail(path, value, f"expected a list of {', '.join(LOG_TARGETS)}")
        if item.strip().lower() not in targets:
            targets.append(item.strip().lower())
    return targets


def _webhook(section):
    enabled = section.take("enable", _boolean, True)
    if not enabled:
        section.seen.update(section.data)  # a disabled block is not checked further
        return None
    webhook = WebhookSettings(
        url=section.take("url", _http_url, needed=_HTTP_URL_TEXT),
        headers=section.take("headers", _string_map, {}),
        pool_size=section.take("pool_size", _integer(1), 32),
        cancel_timeout=section.take("cancel_timeout", _duration(0, low_open=True, plain_unit="ms"), 5.0),
        events=section.take("events", _webhook_events, []),
        queue_size=section.take("queue_size", _integer(1), 10000),
        max_retries=section.take("max_retries", _integer(0), 3),
        retry_backoff=section.take("retry_backoff", _duration(0), 0.1),
        drain_timeout=section.take("drain_timeout", _duration(0), 5.0),
    )
    body = section.section("body")
    if body is not None:
        webhook.encoding = body.take("encoding", _enum(PAYLOAD_ENCODINGS), "plain")
        body.finish()
    ssl = section.section("ssl")
    if ssl is not None:
        webhook.tls = WebhookTls(
            cacertfile=ssl.take("cacertfile", _existing_file, ""),
            certfile=ssl.take("certfile", _existing_file, ""),
            keyfile=ssl.take("keyfile", _existing_file, ""),
            verify=ssl.take("verify", _boolean, True),
        )
        ssl.finish()
    section.finish()
    return webhook


def _webhook_events(ctx, path, value):
    if not isinstance(value, list):
        ctx.fail(path, value, "expected a list of {event = ..., topic = ...} rules")
    rules = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            ctx.fail(path + (index,), item, "expected a rule {event = ..., topic = ...}")
        rule = _Section(ctx, path + (index,), item)
        event = rule.take(
            "event", _enum(WEBHOOK_EVENTS), needed=f"expected one of {', '.join(WEBHOOK_EVENTS)}"
        )
        topic = rule.take("topic", _webhook_topic, None)
        rule.finish()
        if topic is not None and event not in _MESSAGE_EVENTS:
            where, key = ctx.locate(path + (index, "topic"))
            ctx.warn(f"{where}: {key} is ignored: a topic only applies to message events, not {event}")
            topic = None
        rules.append(WebhookRule(event=event, topic=topic))
    return rules


def _webhook_topic(ctx, path, value):
    topic = _string(ctx, path, value)
    try:
        validate_topic_filter(topic)
    except ValueError as exc:
        ctx.fail(path, value, f"expected an MQTT topic filter ({exc})")
    return topic
