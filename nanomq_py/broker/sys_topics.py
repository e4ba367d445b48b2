"""NanoMQ's client presence messages on `$SYS/brokers/client_status/<clientid>`.

One JSON message (QoS 0, not retained) when a client is connected and one when
its connection ends, with NanoMQ's fields: `status` ("online"/"offline"),
`username` (null when absent), `ts` (epoch ms), `proto_name`, `keepalive`,
`return_code` (hex text), `proto_ver`, `client_id`, `clean_start` (0/1), `IPv4`
(the peer address) when online; `status`, `username`, `ts`, `reason_code` (hex
text of the MQTT 5 reason code closest to the reason; 80 when none is), `reason`
(the webhook's reason name), `client_id`, `IPv4` when offline.

Routed like any message, so `$SYS/brokers/client_status/#` subscribers (and the
ACL and webhook rules naming such topics) see them; `#` does not match `$`
topics. A client id holding `+` or `#` cannot be a topic level: no message.
"""

from __future__ import annotations

from time import time

from ..mqtt import reason_codes as rc
from ..mqtt.packets import DISCONNECT
from .message import Message

PREFIX = "$SYS/brokers/client_status/"
_PROTOCOL_NAMES = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}
_REASON_CODES = {rc.reason_name(code, DISCONNECT): code for code in rc.VALID_REASON_CODES[DISCONNECT]}
_REASON_CODES.update(normal=rc.NORMAL_DISCONNECTION, takenover=rc.SESSION_TAKEN_OVER)


def client_online(broker, info):
    """The client was accepted (CONNACK 0) and its session attached."""
    if not _wanted(broker, info):
        return
    _publish(
        broker,
        info,
        {
            "status": "online",
            "username": info.username,
            "ts": int(time() * 1000),
            "proto_name": _PROTOCOL_NAMES.get(info.proto_ver, "MQTT"),
            "keepalive": info.keepalive,
            "return_code": "0",
            "proto_ver": info.proto_ver,
            "client_id": info.client_id,
            "clean_start": int(info.clean_start),
            "IPv4": info.peer_host,
        },
    )


def client_offline(broker, info, reason):
    """The connection of a connected client ended, for `reason`."""
    if not _wanted(broker, info):
        return
    _publish(
        broker,
        info,
        {
            "status": "offline",
            "username": info.username,
            "ts": int(time() * 1000),
            "reason_code": f"{_REASON_CODES.get(reason, rc.UNSPECIFIED_ERROR):x}",
            "reason": reason,
            "client_id": info.client_id,
            "IPv4": info.peer_host,
        },
    )


def _wanted(broker, info):
    """Whether anyone can receive the message: a `$SYS` subscription or a webhook
    (in the usual case, neither: a dict lookup per connect, no JSON), and the
    client id can be a topic level (no `+` or `#`)."""
    if broker.hooks is None and not broker.trie.has_subscriptions_under("$SYS"):
        return False
    client_id = info.client_id
    return "+" not in client_id and "#" not in client_id


def _publish(broker, info, body):
    import json  # once a client connects; an idle broker does without it

    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    broker.route(Message(PREFIX + info.client_id, payload), cache=False)  # one topic per client id
