"""NanoMQ's client presence messages on $SYS/brokers/client_status/<clientid>,
received by real subscribers of the broker process."""

from __future__ import annotations

import json

from mqtt_client import TestClient, unique_id
from raw_client import RawClient

ONLINE_KEYS = [
    "status",
    "username",
    "ts",
    "proto_name",
    "keepalive",
    "return_code",
    "proto_ver",
    "client_id",
    "clean_start",
    "IPv4",
]
OFFLINE_KEYS = ["status", "username", "ts", "reason_code", "reason", "client_id", "IPv4"]


def presence(watcher, client_id):
    (message,) = watcher.expect(1)
    assert message.topic == f"$SYS/brokers/client_status/{client_id}"
    assert (message.qos, message.retain) == (0, False)
    return json.loads(message.payload)


def test_a_client_coming_and_going_is_announced(broker, client_factory):
    watcher = client_factory()
    watcher.connect()
    watcher.subscribe("$SYS/brokers/client_status/#", 0)
    client_id = unique_id("presence")
    with RawClient(broker) as client:
        client.connect(client_id, keepalive=30, username="alice", password=b"x")
        online = presence(watcher, client_id)
        client.disconnect()
    offline = presence(watcher, client_id)
    assert list(online) == ONLINE_KEYS
    assert {key: online[key] for key in ONLINE_KEYS if key != "ts"} == {
        "status": "online",
        "username": "alice",
        "proto_name": "MQTT",
        "keepalive": 30,
        "return_code": "0",
        "proto_ver": 4,
        "client_id": client_id,
        "clean_start": 1,
        "IPv4": "127.0.0.1",
    }
    assert list(offline) == OFFLINE_KEYS
    assert {key: offline[key] for key in OFFLINE_KEYS if key != "ts"} == {
        "status": "offline",
        "username": "alice",
        "reason_code": "0",
        "reason": "normal",
        "client_id": client_id,
        "IPv4": "127.0.0.1",
    }
    assert 0 <= offline["ts"] - online["ts"] < 60_000


def test_a_dropped_connection_and_an_mqtt31_client_without_username(broker, client_factory):
    watcher = client_factory()
    watcher.connect()
    watcher.subscribe("$SYS/brokers/client_status/#", 0)
    client_id = unique_id("old")
    client = RawClient(broker, version=3)
    client.connect(client_id)
    online = presence(watcher, client_id)
    assert (online["proto_name"], online["proto_ver"], online["username"]) == ("MQIsdp", 3, None)
    client.close()
    offline = presence(watcher, client_id)
    assert (offline["reason"], offline["reason_code"]) == ("tcp_closed", "80")


def test_a_hash_subscriber_does_not_get_them(broker, client_factory):
    everything = client_factory()
    everything.connect()
    everything.subscribe("#", 0)
    publisher = client_factory()
    publisher.connect()
    newcomer = TestClient(broker)
    newcomer.connect()
    newcomer.disconnect()
    seen = everything.received_before_sync(publisher)  # the newcomer came and went before the marker
    assert [m.topic for m in seen if m.topic.startswith("$")] == []
