"""Webhook bodies byte for byte: NanoMQ's three, EMQX's field names for the rest."""

import json
import time

import pytest

from nanomq_py.broker.events import ClientInfo
from nanomq_py.mqtt.packets import SubOptions
from nanomq_py.webhook.bodies import BodyBuilder
from nanomq_py.webhook.encoding import payload_encoder

CLIENT = ClientInfo("wbhk_clientid", "wbhk_test", 4, 60, "127.0.0.1", 50000, 1706703724000, True)
ANONYMOUS = ClientInfo("anon", None, 5, 30, "10.0.0.7", 50001, 1706703725000, False)
HELLO = ("nmq/pub", b"Hello World!", 1, True, "wbhk_clientid", "wbhk_test")

plain = BodyBuilder(payload_encoder("plain"))


def without_ts(body: bytes):
    """(body with ts removed, ts), checking ts is the current time in epoch milliseconds."""
    decoded = json.loads(body)
    ts = decoded.pop("ts")
    assert abs(ts - time.time() * 1000) < 5000
    return json.dumps(decoded, separators=(",", ":")).encode(), ts


def test_connack_body_is_nanomqs():
    assert plain.client_connack(CLIENT, "success") == (
        b'{"proto_ver":4,"keepalive":60,"conn_ack":"success","username":"wbhk_test",'
        b'"clientid":"wbhk_clientid","action":"client_connack"}'
    )


def test_connack_body_of_a_refused_anonymous_client():
    assert plain.client_connack(ANONYMOUS, "bad_username_or_password") == (
        b'{"proto_ver":5,"keepalive":30,"conn_ack":"bad_username_or_password","username":"undefined",'
        b'"clientid":"anon","action":"client_connack"}'
    )


def test_disconnected_body_is_nanomqs():
    assert plain.client_disconnected(CLIENT, "normal") == (
        b'{"reason":"normal","username":"wbhk_test","clientid":"wbhk_clientid","action":"client_disconnected"}'
    )


def test_publish_body_is_nanomqs_with_ts_in_milliseconds():
    body = plain.message_publish(HELLO)
    assert body.startswith(b'{"ts":')
    assert without_ts(body)[0] == (
        b'{"topic":"nmq/pub","retain":true,"qos":1,"action":"message_publish",'
        b'"from_username":"wbhk_test","from_client_id":"wbhk_clientid","payload":"Hello World!"}'
    )


@pytest.mark.parametrize(
    ("encoding", "payload", "expected"),
    [
        ("plain", b"", ""),
        ("base64", b"", ""),
        ("base62", b"", ""),
        ("base64", b"messagei+/", "bWVzc2FnZWkrLw=="),
        ("base62", b"messagei+/", "2a7oZkl5ty6sG7"),
        ("plain", b"\xff\x00\x80", "\ufffd\x00\ufffd"),
    ],
)
def test_publish_payload_encodings_give_valid_json(encoding, payload, expected):
    builder = BodyBuilder(payload_encoder(encoding))
    body = builder.message_publish(("t", payload, 0, False, "c", None))
    decoded = json.loads(body)
    assert decoded["payload"] == expected
    assert decoded["from_username"] == "undefined"
    assert decoded["retain"] is False


def test_non_ascii_text_is_sent_as_utf8():
    body = plain.message_publish(("capteurs/température", "21 °C".encode(), 0, False, "c", "émile"))
    assert "capteurs/température".encode() in body
    assert json.loads(body)["payload"] == "21 °C"


def test_client_connect_and_connected_bodies():
    assert plain.client_connect(CLIENT) == (
        b'{"action":"client_connect","clientid":"wbhk_clientid","username":"wbhk_test",'
        b'"ipaddress":"127.0.0.1","keepalive":60,"proto_ver":4}'
    )
    assert plain.client_connected(ANONYMOUS) == (
        b'{"action":"client_connected","clientid":"anon","username":"undefined",'
        b'"ipaddress":"10.0.0.7","keepalive":30,"proto_ver":5,"connected_at":1706703725000}'
    )


def test_subscription_bodies():
    opts = SubOptions(qos=2, no_local=True, retain_as_published=False, retain_handling=1)
    expected_tail = b'"topic":"nmq/#","opts":{"qos":2,"nl":1,"rap":0,"rh":1}}'
    assert plain.client_subscribe(CLIENT, "nmq/#", opts) == (
        b'{"action":"client_subscribe","clientid":"wbhk_clientid","username":"wbhk_test",' + expected_tail
    )
    assert plain.session_subscribed(CLIENT, "nmq/#", opts) == (
        b'{"action":"session_subscribed","clientid":"wbhk_clientid","username":"wbhk_test",' + expected_tail
    )
    assert plain.client_unsubscribe(CLIENT, "nmq/#") == (
        b'{"action":"client_unsubscribe","clientid":"wbhk_clientid","username":"wbhk_test","topic":"nmq/#"}'
    )
    assert plain.session_unsubscribed(ANONYMOUS, "a") == (
        b'{"action":"session_unsubscribed","clientid":"anon","username":"undefined","topic":"a"}'
    )


def test_session_terminated_body():
    assert plain.session_terminated(CLIENT, "takenover") == (
        b'{"action":"session_terminated","clientid":"wbhk_clientid","username":"wbhk_test","reason":"takenover"}'
    )


@pytest.mark.parametrize("action", ["message_delivered", "message_acked"])
def test_delivered_and_acked_bodies(action):
    body = getattr(plain, action)(ANONYMOUS, HELLO)
    assert without_ts(body)[0] == (
        b'{"action":"' + action.encode() + b'","clientid":"anon","username":"undefined",'
        b'"from_client_id":"wbhk_clientid","from_username":"wbhk_test","topic":"nmq/pub","qos":1,'
        b'"retain":true,"payload":"Hello World!"}'
    )
    assert list(json.loads(body))[-1] == "ts"


def test_dropped_body_with_and_without_a_subscriber():
    body = plain.message_dropped(CLIENT, HELLO, "queue_full")
    decoded = json.loads(body)
    assert list(decoded) == [
        "action",
        "clientid",
        "username",
        "from_client_id",
        "from_username",
        "topic",
        "qos",
        "retain",
        "payload",
        "ts",
        "reason",
    ]
    assert decoded["action"] == "message_dropped"
    assert decoded["reason"] == "queue_full"
    orphan = json.loads(plain.message_dropped(None, HELLO, "expired"))
    assert orphan["clientid"] is None
    assert orphan["username"] is None
