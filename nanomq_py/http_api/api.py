"""The API itself: basic authentication, routing under /api/v4, and
NanoMQ's JSON answers (`{"code": 0, "data": ...}`; a failure is an HTTP status
with NanoMQ's result code, and, ours, a `message` saying what was wrong).

Paths, field names and result codes are NanoMQ's (docs/en_US/api/v4.md and its
rest_api.c). Each request costs one pass over the clients or subscriptions it
lists; a body is read only after authentication and only up to `max_body` (a
base64 payload of mqtt.max_packet_size and some JSON around it).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
from _operator import _compare_digest  # hmac's, without hmac's OpenSSL (3.6 MB of RSS)
from time import monotonic
from urllib.parse import parse_qsl, unquote

from nanomq_py import __version__

from ..broker.message import Message
from ..mqtt import properties as p
from ..mqtt.topics import validate_topic_name
from . import prometheus, status_page
from .document import Document

log = logging.getLogger("nanomq.http_api")

# NanoMQ's result codes
SUCCEED = 0
UNKNOWN_MISTAKE = 102
WRONG_USERNAME_OR_PASSWORD = 103
EMPTY_USERNAME_OR_PASSWORD = 104
MISSING_KEY_REQUEST_PARAMS = 107
REQ_PARAM_ERROR = 108
REQ_PARAMS_JSON_FORMAT_ILLEGAL = 109
CLIENT_IS_OFFLINE = 112
ILLEGAL_TOPIC = 115

HTTP_CLIENT_ID = "NanoMQ-HTTP-Client"  # NanoMQ's publisher id when a request names none
STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
_ENDPOINTS = (
    ("/brokers/", "list_brokers", "GET", "A list of brokers in the cluster"),
    ("/nodes/", "list_nodes", "GET", "A list of nodes in the cluster"),
    ("/clients/", "list_clients", "GET", "A list of clients on current node"),
    ("/clients/:clientid", "lookup_client", "GET", "Lookup a client in the cluster"),
    (
        "/clients/username/:username",
        "lookup_client_via_username",
        "GET",
        "Lookup a client via username in the cluster",
    ),
    ("/subscriptions/", "list_subscriptions", "GET", "A list of subscriptions in the cluster"),
    ("/subscriptions/:clientid", "lookup_client_subscriptions", "GET", "A list of subscriptions of a client"),
    ("/metrics", "metrics", "GET", "Returns all statistical metrics"),
    ("/mqtt/publish", "mqtt_publish", "POST", "Publish a MQTT message"),
    ("/mqtt/publish_batch", "mqtt_publish_batch", "POST", "Batch publish MQTT messages"),
    ("/prometheus", "prometheus", "GET", "Metrics in Prometheus' text format"),
    ("/status", "status", "GET", "Everything the status page at / shows, in one answer"),
)
_STAT_NAMES = {"received": "messages_received", "routed": "messages_routed", "dropped": "messages_dropped"}
_CONN_STATES = ("connected", "disconnected")
_BOOLEANS = {"true": True, "false": False}
_PROPERTY_NAMES = (
    "payload_format_indicator",
    "message_expiry_interval",
    "content_type",
    "response_topic",
    "correlation_data",
    "user_properties",
)


class Refused(Exception):
    """Ends a request with an HTTP status and a NanoMQ result code."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def json(self):
        return {"code": self.code, "message": self.message}


class Api:
    def __init__(self, broker, settings):
        self.broker = broker
        self.credentials = f"{settings.username}:{settings.password}".encode()
        self.started_at = monotonic()
        self.cpu_mark = (monotonic(), _cpu_seconds())  # for cpuinfo: usage since the last /metrics
        # A publish body holds the payload as JSON text (base64: 4/3 of it) and a little more.
        self.max_body = broker.settings.mqtt.max_packet_size * 4 // 3 + 65536
        self.prometheus = prometheus.Exposition(broker, self.started_at)
        self.routes = {
            ("GET", ()): self.endpoints,
            ("GET", ("brokers",)): self.brokers,
            ("GET", ("nodes",)): self.nodes,
            ("GET", ("metrics",)): self.metrics,
            ("GET", ("clients",)): self.clients,
            ("GET", ("clients", None)): self.client,
            ("GET", ("clients", "username", None)): self.clients_of_user,
            ("GET", ("subscriptions",)): self.subscriptions,
            ("GET", ("subscriptions", None)): self.client_subscriptions,
            ("POST", ("mqtt", "publish")): self.publish,
            ("POST", ("mqtt", "publish_batch")): self.publish_batch,
            ("GET", ("prometheus",)): self.prometheus.answer,
            ("GET", ("status",)): lambda query: status_page.status(broker, self.started_at),
        }
        from .bridges import bridge_routes  # here: it imports this module

        self.routes.update(bridge_routes(self))

    # -- requests -----------------------------------------------------------

    def answer(self, method, target, body):
        """(HTTP status, JSON text) for an authenticated request; `target` is the
        request-target as sent, `body` the request's bytes."""
        try:
            status, answer = 200, self.respond(method, target, body)
            if isinstance(answer, Document):
                return status, answer
        except Refused as refusal:
            status, answer = refusal.status, refusal.json()
        except Exception:
            log.exception("HTTP API: %s %s failed", method, target)
            status, answer = (
                500,
                {"code": UNKNOWN_MISTAKE, "message": "internal error (see the broker's log)"},
            )
        return status, json.dumps(answer, ensure_ascii=False, separators=(",", ":"))

    def respond(self, method, target, body):
        path, _, query = target.partition("?")
        if path == "/" and method == "GET":
            return status_page.page()
        segments = _api_segments(path)
        if segments is None:
            raise Refused(404, UNKNOWN_MISTAKE, "no such path: the API is under /api/v4")
        handler, args = self.find(method, segments)
        if method == "POST":
            return handler(_json_body(body), *args)
        return handler(dict(parse_qsl(query)), *args)

    def find(self, method, segments):
        """(handler, path arguments); a `None` in a route's pattern takes any one segment."""
        for (route_method, pattern), handler in self.routes.items():
            if route_method == method and _matches(pattern, segments):
                return handler, tuple(
                    got for want, got in zip(pattern, segments, strict=True) if want is None
                )
        if any(_matches(pattern, segments) for _, pattern in self.routes):
            raise Refused(405, UNKNOWN_MISTAKE, f"{method} is not allowed here")
        raise Refused(404, UNKNOWN_MISTAKE, "no such path")

    def authenticate(self, header):
        """Basic authentication, checked before a body is read: only the administrator
        can make the broker buffer one."""
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            raise Refused(401, EMPTY_USERNAME_OR_PASSWORD, "basic authentication is required")
        try:
            given = binascii.a2b_base64(token.strip())
        except binascii.Error:
            given = b""
        if not _compare_digest(given, self.credentials):
            raise Refused(401, WRONG_USERNAME_OR_PASSWORD, "wrong username or password")

    def body_length(self, headers):
        """The declared body length, refused past `max_body` or when chunked."""
        if "transfer-encoding" in headers:
            raise Refused(411, REQ_PARAM_ERROR, "send the body with a Content-Length, not chunked")
        text = headers.get("content-length", "0").strip()
        if not (text.isascii() and text.isdigit()):
            raise Refused(400, REQ_PARAM_ERROR, "bad Content-Length")
        length = int(text)
        if length > self.max_body:
            raise Refused(413, REQ_PARAM_ERROR, f"the body is larger than {self.max_body} bytes")
        return length

    # -- broker and node ----------------------------------------------------

    def endpoints(self, query):
        data = [
            {"path": path, "name": name, "method": method, "descr": descr}
            for path, name, method, descr in _ENDPOINTS
        ]
        return {"code": SUCCEED, "data": data}

    def brokers(self, query):
        item = {
            "datetime": time.strftime("%Y-%m-%d %H:%M:%S"),
            "node_status": "Running",
            "sysdescr": "NanoMQ Broker (nanomq_py)",
            "uptime": self.uptime(),
            "version": __version__,
        }
        return {"code": SUCCEED, "data": [item]}

    def nodes(self, query):
        item = {
            "connections": len(self.broker.clients),
            "node_status": "Running",
            "uptime": self.uptime(),
            "version": __version__,
        }
        return {"code": SUCCEED, "data": [item]}

    def uptime(self):
        seconds = int(monotonic() - self.started_at)
        return f"{seconds // 3600} Hours, {seconds // 60 % 60} minutes, {seconds % 60} seconds"

    def metrics(self, query):
        """NanoMQ's fields (`metrics` lists bridges: none here), and ours in `stats`."""
        now, cpu = monotonic(), _cpu_seconds()
        then, cpu_then = self.cpu_mark
        self.cpu_mark = (now, cpu)
        percent = 100.0 * (cpu - cpu_then) / (now - then) if now > then else 0.0
        broker = self.broker
        stats = {
            "connections": len(broker.clients),
            "sessions": len(broker.sessions),
            "subscriptions": sum(len(s.subscriptions) for s in broker.sessions.values()),
            "retained": len(broker.retained),
            **{_STAT_NAMES.get(name, name): value for name, value in broker.stats.as_dict().items()},
        }
        answer = {
            "code": SUCCEED,
            "metrics": [],
            "cpuinfo": f"{percent:.2f}%",
            "memory": str(_rss_bytes()),
            "stats": stats,
        }
        if broker.store is not None:  # the durable store's counters, and the webhook's (with its spool)
            answer["store"] = broker.store.counters()
        if broker.hooks is not None and hasattr(broker.hooks, "counters"):
            answer["webhook"] = broker.hooks.counters()
        return answer

    # -- clients ------------------------------------------------------------

    def _client_entries(self):
        """(ClientInfo, connected) of every session: connected clients and kept sessions."""
        clients = self.broker.clients
        for client_id, session in self.broker.sessions.items():
            client = clients.get(client_id)
            info = client.info if client is not None else session.info
            if info is not None:
                yield info, client is not None

    def clients(self, query):
        wanted = _client_filter(query)
        data = [_client_json(info, on) for info, on in self._client_entries() if wanted(info, on)]
        return {"code": SUCCEED, "data": data}

    def client(self, query, client_id):
        client = self.broker.clients.get(client_id)
        if client is not None:
            return {"code": SUCCEED, "data": [_client_json(client.info, True)]}
        session = self.broker.sessions.get(client_id)
        if session is None or session.info is None:
            raise Refused(404, CLIENT_IS_OFFLINE, f"no client {client_id!r}")
        return {"code": SUCCEED, "data": [_client_json(session.info, False)]}

    def clients_of_user(self, query, username):
        data = [_client_json(info, on) for info, on in self._client_entries() if info.username == username]
        return {"code": SUCCEED, "data": data}

    # -- subscriptions ------------------------------------------------------

    def subscriptions(self, query):
        wanted = _subscription_filter(query)
        data = [
            {"clientid": client_id, "topic": flt, "qos": sub.opts.qos}
            for client_id, session in self.broker.sessions.items()
            for flt, sub in session.subscriptions.items()
            if wanted(client_id, sub)
        ]
        return {"code": SUCCEED, "data": data}

    def client_subscriptions(self, query, client_id):
        session = self.broker.sessions.get(client_id)
        if session is None:
            raise Refused(404, CLIENT_IS_OFFLINE, f"no client {client_id!r}")
        data = [
            {"clientid": client_id, "topic": flt, "qos": sub.opts.qos}
            for flt, sub in session.subscriptions.items()
        ]
        return {"code": SUCCEED, "data": data}

    # -- publish ------------------------------------------------------------

    def publish(self, body):
        if not isinstance(body, dict):
            raise Refused(400, REQ_PARAMS_JSON_FORMAT_ILLEGAL, "expected a JSON object")
        for msg in self.messages(body):
            self.route_message(msg)
        return {"code": SUCCEED}

    def publish_batch(self, body):
        """Each item is published or refused on its own, as in NanoMQ: the answer has one code per item."""
        if not isinstance(body, list):
            raise Refused(400, REQ_PARAMS_JSON_FORMAT_ILLEGAL, "expected a JSON array")
        data = []
        for item in body:
            topic = item.get("topic", item.get("topics")) if isinstance(item, dict) else None
            entry = {"topic": topic if isinstance(topic, str) else None, "code": SUCCEED}
            try:
                if not isinstance(item, dict):
                    raise Refused(400, REQ_PARAMS_JSON_FORMAT_ILLEGAL, "expected a JSON object")
                for msg in self.messages(item):
                    self.route_message(msg)
            except Refused as refusal:
                entry["code"] = refusal.code
                entry["message"] = refusal.message
            data.append(entry)
        return {"code": SUCCEED, "data": data}

    def route_message(self, msg):
        broker = self.broker
        broker.flow.current = None  # no MQTT connection is publishing: nobody to hold back
        broker.route(msg, msg.from_client_id)

    def messages(self, req):
        """The request's messages (one per topic), every field checked before any is routed."""
        mqtt = self.broker.settings.mqtt
        if req.get("topic") is not None:
            topics = [req["topic"]]
        elif req.get("topics") is not None:
            if not isinstance(req["topics"], str):
                raise Refused(400, REQ_PARAM_ERROR, "topics must be a string of topics separated by ','")
            topics = req["topics"].split(",")
        else:
            raise Refused(400, MISSING_KEY_REQUEST_PARAMS, "topic or topics is required")
        for topic in topics:
            if not isinstance(topic, str):
                raise Refused(400, ILLEGAL_TOPIC, "topic must be a string")
            try:
                validate_topic_name(topic, mqtt.max_topic_levels)
            except ValueError as exc:
                raise Refused(400, ILLEGAL_TOPIC, f"bad topic {topic!r}: {exc}") from None
        payload = _payload(req)
        if len(payload) > mqtt.max_packet_size:
            raise Refused(400, REQ_PARAM_ERROR, f"the payload is larger than {mqtt.max_packet_size} bytes")
        qos = req.get("qos", 0)
        if type(qos) is not int or not 0 <= qos <= mqtt.max_qos:
            raise Refused(400, REQ_PARAM_ERROR, f"qos must be an integer from 0 to {mqtt.max_qos}")
        retain = req.get("retain", False)
        if type(retain) is not bool:
            raise Refused(400, REQ_PARAM_ERROR, "retain must be true or false")
        if retain and not mqtt.retain_available:
            raise Refused(400, REQ_PARAM_ERROR, "retained messages are disabled (mqtt.retain_available)")
        client_id = req.get("clientid", HTTP_CLIENT_ID)
        if not isinstance(client_id, str):
            raise Refused(400, REQ_PARAM_ERROR, "clientid must be a string")
        props = _properties(req.get("properties"), mqtt.max_topic_levels)
        expiry = props.get(p.MESSAGE_EXPIRY_INTERVAL)
        return [
            Message(
                topic,
                payload,
                qos,
                retain,
                props,
                client_id,
                None,
                None if expiry is None else monotonic() + expiry,
            )
            for topic in topics
        ]


# --------------------------------------------------------------------------- helpers


def _json_body(body):
    try:
        return json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        raise Refused(400, REQ_PARAMS_JSON_FORMAT_ILLEGAL, "the body is not valid JSON") from None


def _api_segments(raw_path):
    """ "/api/v4/clients/a%2Fb/" -> ("clients", "a/b"); None when not under /api/v4."""
    parts = raw_path.split("/")
    if parts[:3] != ["", "api", "v4"]:
        return None
    parts = parts[3:]
    if parts and parts[-1] == "":
        parts.pop()  # NanoMQ lists its paths with a trailing slash: both forms work
    return tuple(unquote(part, errors="replace") for part in parts)


def _matches(pattern, segments):
    return len(pattern) == len(segments) and all(
        want is None or want == got for want, got in zip(pattern, segments, strict=True)
    )


def _client_json(info, connected):
    """NanoMQ's fields, in its order; `port` and `connected_at` (epoch ms) are ours."""
    return {
        "client_id": info.client_id,
        "username": info.username or "",
        "keepalive": info.keepalive,
        "ipv4": info.peer_host,
        "port": info.peer_port,
        "conn_state": "connected" if connected else "disconnected",
        "clean_start": info.clean_start,
        "proto_name": _proto_name(info),
        "proto_ver": info.proto_ver,
        "connected_at": info.connected_at,
    }


def _proto_name(info):
    return "MQIsdp" if info.proto_ver == 3 else "MQTT"


def _client_filter(query):
    """The documented query filters of GET /clients, checked; other parameters are ignored."""
    checks = []
    if "clientid" in query:
        checks.append(lambda info, on, v=query["clientid"]: info.client_id == v)
    if "username" in query:
        checks.append(lambda info, on, v=query["username"]: (info.username or "") == v)
    if "conn_state" in query:
        state = query["conn_state"]
        if state not in _CONN_STATES:
            raise Refused(400, REQ_PARAM_ERROR, "conn_state must be connected or disconnected")
        checks.append(lambda info, on, v=state == "connected": on == v)
    if "clean_start" in query:
        clean = _BOOLEANS.get(query["clean_start"].lower())
        if clean is None:
            raise Refused(400, REQ_PARAM_ERROR, "clean_start must be true or false")
        checks.append(lambda info, on, v=clean: info.clean_start == v)
    if "proto_name" in query:
        checks.append(lambda info, on, v=query["proto_name"]: _proto_name(info) == v)
    if "proto_ver" in query:
        version = _query_int(query, "proto_ver")
        checks.append(lambda info, on, v=version: info.proto_ver == v)
    return lambda info, on: all(check(info, on) for check in checks)


def _subscription_filter(query):
    """clientid, topic (the filter as subscribed), qos, share (the shared group's name)."""
    checks = []
    if "clientid" in query:
        checks.append(lambda cid, sub, v=query["clientid"]: cid == v)
    if "topic" in query:
        checks.append(lambda cid, sub, v=query["topic"]: sub.filter == v)
    if "qos" in query:
        qos = _query_int(query, "qos")
        checks.append(lambda cid, sub, v=qos: sub.opts.qos == v)
    if "share" in query:
        checks.append(lambda cid, sub, v=query["share"]: sub.group is not None and sub.group.name == v)
    return lambda cid, sub: all(check(cid, sub) for check in checks)


def _query_int(query, name):
    text = query[name]
    if not (text.isascii() and text.isdigit()):
        raise Refused(400, REQ_PARAM_ERROR, f"{name} must be an integer")
    return int(text)


def _payload(req):
    """The payload's bytes: `encoding` plain (UTF-8 text) or base64 (decoded)."""
    payload = req.get("payload")
    if payload is None:
        raise Refused(400, MISSING_KEY_REQUEST_PARAMS, "payload is required")
    if not isinstance(payload, str):
        raise Refused(400, REQ_PARAM_ERROR, "payload must be a string")
    encoding = req.get("encoding", "plain")
    if encoding == "plain":
        return payload.encode()
    if encoding == "base64":
        try:
            return base64.b64decode(payload.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise Refused(400, REQ_PARAM_ERROR, "payload is not valid base64") from None
    raise Refused(400, REQ_PARAM_ERROR, "encoding must be plain or base64")


def _properties(given, max_topic_levels):
    """The documented PUBLISH properties -> the broker's properties dict (v5 subscribers see them)."""
    if given is None:
        return p.NO_PROPERTIES
    if not isinstance(given, dict):
        raise Refused(400, REQ_PARAM_ERROR, "properties must be an object")
    unknown = [name for name in given if name not in _PROPERTY_NAMES]
    if unknown:
        raise Refused(
            400, REQ_PARAM_ERROR, f"unknown property {unknown[0]!r}: expected {', '.join(_PROPERTY_NAMES)}"
        )
    props = {}
    if "payload_format_indicator" in given:
        props[p.PAYLOAD_FORMAT_INDICATOR] = _property_int(given, "payload_format_indicator", 1)
    if "message_expiry_interval" in given:
        props[p.MESSAGE_EXPIRY_INTERVAL] = _property_int(given, "message_expiry_interval", 0xFFFFFFFF)
    for name, prop in (("content_type", p.CONTENT_TYPE), ("response_topic", p.RESPONSE_TOPIC)):
        if name in given:
            if not isinstance(given[name], str):
                raise Refused(400, REQ_PARAM_ERROR, f"{name} must be a string")
            props[prop] = given[name]
    if p.RESPONSE_TOPIC in props:
        try:
            validate_topic_name(props[p.RESPONSE_TOPIC], max_topic_levels)
        except ValueError as exc:
            raise Refused(400, ILLEGAL_TOPIC, f"bad response_topic: {exc}") from None
    if "correlation_data" in given:
        if not isinstance(given["correlation_data"], str):
            raise Refused(400, REQ_PARAM_ERROR, "correlation_data must be a string")
        props[p.CORRELATION_DATA] = given["correlation_data"].encode()
    if "user_properties" in given:
        pairs = given["user_properties"]
        if not isinstance(pairs, dict) or any(
            isinstance(v, (dict, list)) or v is None for v in pairs.values()
        ):
            raise Refused(
                400, REQ_PARAM_ERROR, "user_properties must be an object of names to strings or numbers"
            )
        props[p.USER_PROPERTY] = [(name, _property_text(value)) for name, value in pairs.items()]
    return props


def _property_int(given, name, high):
    value = given[name]
    if type(value) is not int or not 0 <= value <= high:
        raise Refused(400, REQ_PARAM_ERROR, f"{name} must be an integer from 0 to {high}")
    return value


def _property_text(value):
    """A user property value as NanoMQ writes JSON numbers and booleans: 10010, true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cpu_seconds():
    times = os.times()
    return times.user + times.system


def _rss_bytes():
    """Resident memory of this process (Linux); 0 where /proc is not there."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
