"""NanoMQ's classic key=value file (nanomq_old.conf, `--old_conf`) -> the HOCON key space,
so that one validation serves both forms. Its values are shown in messages as written."""

from __future__ import annotations

import json
import re

from .context import ConfigError
from .tree import get, put, read_text
from .values import param_pairs, truthy


def read_old_conf(ctx, path):
    return _OldConfReader(ctx, path).read()


class _OldConfReader:
    """Line by line, not HOCON: everything right of '=' is the value, `//` in URLs is not a comment."""

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
        "http_server.enable": "http_server.enable",
        "http_server.port": "http_server.port",
        "http_server.username": "http_server.username",
        "http_server.password": "http_server.password",
        "http_server.auth_type": "http_server.auth_type",
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
        "http_server.parallel",
        "http_server.jwt.",
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
        for number, line in enumerate(read_text(self.path).splitlines(), 1):
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
        put(self.tree, path, value)
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
        node = get(self.tree, tuple(dotted.split(".")), {})
        node = dict(node) if isinstance(node, dict) else {}
        node[name] = value
        return node

    def _http_req(self, key, req, field, header, value):
        base = f"auth.http_auth.{req}"
        if header is not None:
            self._set(key, f"{base}.headers", self._headers(f"{base}.headers", header, value))
        elif field == "params":  # "clientid=%c,username=%u"
            params = {name.strip(): text.strip() for name, _, text in param_pairs(value)}
            self._set(key, f"{base}.params", params)
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
        """Keys that only make sense together (numbered rules, login/password pairs) are joined last."""
        if self.unused:
            names = ", ".join(self.unused)
            self.ctx.warn(f"{self.path}: NanoMQ settings that nanomq_py does not use are ignored: {names}")
        if self.websocket:
            self._join_websocket()
        if self.acl_rules and truthy(self.acl_enable):
            self._join_acl_rules()
        if self.users:
            self._join_users()
        if self.hook_rules:
            self._join_webhook_events()
        for block in ("webhook", "http_server"):  # off unless web.hook.enable / http_server.enable = true
            if block in self.tree and "enable" not in self.tree[block]:
                self.tree[block]["enable"] = False

    def _join_websocket(self):
        ws_on = self.websocket.get("websocket.enable", "false")
        self._set("websocket.enable", "listeners.ws.enable", ws_on)
        if "websocket.url" in self.websocket:
            self._set("websocket.url", "listeners.ws.bind", self.websocket["websocket.url"])
        tls_on = get(self.tree, ("listeners", "ssl", "enable"), "false")
        if "websocket.tls_url" in self.websocket and truthy(ws_on) and truthy(tls_on):
            self._set("websocket.tls_url", "listeners.wss.bind", self.websocket["websocket.tls_url"])

    def _join_acl_rules(self):
        rules = []
        for _, _, key, value in sorted(self.acl_rules):
            rules.append(self._json_object(key, value, '{"permit": "allow", "username": "#"}'))
            self.ctx.origins[("auth", "acl", "rules", len(rules) - 1)] = (self.path, key)
        put(self.tree, ("auth", "acl", "rules"), rules)

    def _join_users(self):
        users = {}
        for _, entry in sorted(self.users.items()):
            if "login" not in entry or "password" not in entry:
                key = next(iter(entry.values()))[0]
                raise ConfigError(
                    f"{self.path}: {key} is invalid: auth.N.login and auth.N.password go in pairs"
                )
            users[entry["login"][1]] = entry["password"][1]
        put(self.tree, ("auth", "password"), users)

    def _join_webhook_events(self):
        events = []
        for _, _, key, value in sorted(self.hook_rules):
            rule = self._json_object(key, value, '{"action": "on_message_publish", "topic": "a/#"}')
            event = {"event": rule.get("action", "")}
            if "topic" in rule:
                event["topic"] = rule["topic"]
            events.append(event)
            for field in ("event", "topic"):
                self.ctx.origins[("webhook", "events", len(events) - 1, field)] = (self.path, key)
        put(self.tree, ("webhook", "events"), events)
