"""JSON bodies of the webhook POSTs, built in a worker greenlet, never on the broker's path.

The three events NanoMQ fires keep NanoMQ's bodies byte for byte: compact JSON
with the keys in NanoMQ's order (see docs/nanomq-reference.md), e.g.
{"proto_ver":4,"keepalive":60,"conn_ack":"success","username":"wbhk_test","clientid":"wbhk_clientid","action":"client_connack"}.
The events NanoMQ never fired use EMQX's emqx_web_hook field names, `action` first.

A missing username is the string "undefined"; `ts` is Unix epoch milliseconds,
taken when the body is built. Text is written as UTF-8, not \\u-escaped, as
NanoMQ does.
"""

from __future__ import annotations

import json
import time

_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _name(username):
    return "undefined" if username is None else username


def _sub_opts(opts) -> dict:
    return {
        "qos": opts.qos,
        "nl": int(opts.no_local),
        "rap": int(opts.retain_as_published),
        "rh": opts.retain_handling,
    }


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class BodyBuilder:
    """One method per event; each takes what the hook captured and returns the body as bytes.

    `message` arguments are the tuple (topic, payload, qos, retain, from_client_id, from_username).
    """

    __slots__ = ("_encode_payload",)

    def __init__(self, encode_payload):
        self._encode_payload = encode_payload  # bytes -> str, see encoding.py

    # The three events of the tutorial, in NanoMQ's key order.

    def client_connack(self, client, conn_ack) -> bytes:
        return _dump(
            {
                "proto_ver": client.proto_ver,
                "keepalive": client.keepalive,
                "conn_ack": conn_ack,
                "username": _name(client.username),
                "clientid": client.client_id,
                "action": "client_connack",
            }
        )

    def client_disconnected(self, client, reason) -> bytes:
        return _dump(
            {
                "reason": reason,
                "username": _name(client.username),
                "clientid": client.client_id,
                "action": "client_disconnected",
            }
        )

    def message_publish(self, message) -> bytes:
        topic, payload, qos, retain, from_client_id, from_username = message
        return _dump(
            {
                "ts": _now_ms(),
                "topic": topic,
                "retain": bool(retain),
                "qos": qos,
                "action": "message_publish",
                "from_username": _name(from_username),
                "from_client_id": from_client_id,
                "payload": self._encode_payload(payload),
            }
        )

    # The events NanoMQ parses but never fires, with EMQX's fields.

    def client_connect(self, client) -> bytes:
        return _dump(
            {
                "action": "client_connect",
                "clientid": client.client_id,
                "username": _name(client.username),
                "ipaddress": client.peer_host,
                "keepalive": client.keepalive,
                "proto_ver": client.proto_ver,
            }
        )

    def client_connected(self, client) -> bytes:
        return _dump(
            {
                "action": "client_connected",
                "clientid": client.client_id,
                "username": _name(client.username),
                "ipaddress": client.peer_host,
                "keepalive": client.keepalive,
                "proto_ver": client.proto_ver,
                "connected_at": client.connected_at,
            }
        )

    def client_subscribe(self, client, topic, opts) -> bytes:
        return self._subscription("client_subscribe", client, topic, opts)

    def session_subscribed(self, client, topic, opts) -> bytes:
        return self._subscription("session_subscribed", client, topic, opts)

    def client_unsubscribe(self, client, topic) -> bytes:
        return self._unsubscription("client_unsubscribe", client, topic)

    def session_unsubscribed(self, client, topic) -> bytes:
        return self._unsubscription("session_unsubscribed", client, topic)

    def session_terminated(self, client, reason) -> bytes:
        return _dump(
            {
                "action": "session_terminated",
                "clientid": client.client_id,
                "username": _name(client.username),
                "reason": reason,
            }
        )

    def message_delivered(self, client, message) -> bytes:
        return _dump(self._client_message("message_delivered", client, message))

    def message_acked(self, client, message) -> bytes:
        return _dump(self._client_message("message_acked", client, message))

    def message_dropped(self, client, message, reason) -> bytes:
        """`client` is None when the drop is not tied to one subscriber: clientid is then null."""
        body = self._client_message("message_dropped", client, message)
        body["reason"] = reason
        return _dump(body)

    @staticmethod
    def _subscription(action, client, topic, opts) -> bytes:
        return _dump(
            {
                "action": action,
                "clientid": client.client_id,
                "username": _name(client.username),
                "topic": topic,
                "opts": _sub_opts(opts),
            }
        )

    @staticmethod
    def _unsubscription(action, client, topic) -> bytes:
        return _dump(
            {
                "action": action,
                "clientid": client.client_id,
                "username": _name(client.username),
                "topic": topic,
            }
        )

    def _client_message(self, action, client, message) -> dict:
        topic, payload, qos, retain, from_client_id, from_username = message
        return {
            "action": action,
            "clientid": None if client is None else client.client_id,
            "username": None if client is None else _name(client.username),
            "from_client_id": from_client_id,
            "from_username": _name(from_username),
            "topic": topic,
            "qos": qos,
            "retain": bool(retain),
            "payload": self._encode_payload(payload),
            "ts": _now_ms(),
        }


def _dump(body: dict) -> bytes:
    return _encode_json(body).encode("utf-8", "backslashreplace")
