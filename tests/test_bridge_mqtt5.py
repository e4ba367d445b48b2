"""An MQTT 5 bridge to a second nanomq_py: v5 properties arrive intact both ways, No Local keeps
overlapping forwards/subscription loop-free, the will reaches the upstream, and the bridge
client shows up in the webhook and $SYS presence as NanoMQ reports it."""

from __future__ import annotations

import json

import pytest
from bridge_support import API_CONF, bridge_conf
from mqtt_client import v5_properties
from webhook_sink import WebhookSink

TIMEOUT = 20


@pytest.fixture
def clients(clients):
    """Connected MQTT 5 paho clients on either broker."""

    def make(target, **kwargs):
        return clients(target, protocol="5", **kwargs)

    return make


RULES = """
  conn_properties { session_expiry_interval = 0, user_property { site = "edge-1" } }
  will { topic = "edge/status", payload = "lost", qos = 1, properties { content_type = "text/plain" } }
  forwards = [ { local_topic = "v5/up/#", remote_topic = "cloud/#" },
               { local_topic = "both/#", remote_topic = "both/#", qos = 1 } ]
  subscription = [ { remote_topic = "v5/down/#", local_topic = "", qos = 1 },
                   { remote_topic = "both/#", local_topic = "both/#", qos = 1 } ]
"""


def start_pair(broker_factory, extra=""):
    upstream = broker_factory("")
    edge = broker_factory(API_CONF + extra + bridge_conf("up", upstream.port, RULES, proto_ver=5))
    edge.wait_for_output(r"bridge up: subscribed upstream to 2 filters", timeout=TIMEOUT)
    return upstream, edge


def props_of(message):
    p = message.properties
    return {
        "user": sorted(getattr(p, "UserProperty", [])),
        "content_type": getattr(p, "ContentType", None),
        "response_topic": getattr(p, "ResponseTopic", None),
        "correlation": getattr(p, "CorrelationData", None),
        "format": getattr(p, "PayloadFormatIndicator", None),
        "expiry": getattr(p, "MessageExpiryInterval", None),
    }


def sent_properties(tag):
    return v5_properties(
        UserProperty=[("k", tag), ("k", "again"), ("other", "2")],
        ContentType="application/json",
        ResponseTopic=f"reply/{tag}",
        CorrelationData=tag.encode(),
        PayloadFormatIndicator=1,
        MessageExpiryInterval=3600,
    )


def test_v5_properties_arrive_intact_both_ways(broker_factory, clients):
    upstream, edge = start_pair(broker_factory)
    remote = clients(upstream)
    remote.subscribe("cloud/#", 1)
    local = clients(edge)
    local.subscribe("v5/down/#", 1)

    local.publish("v5/up/a", b'{"t": 1}', qos=1, properties=sent_properties("up"))
    [message] = remote.expect(1, timeout=TIMEOUT)
    assert (message.topic, message.payload) == ("cloud/a", b'{"t": 1}')
    got = props_of(message)
    assert got["user"] == [("k", "again"), ("k", "up"), ("other", "2")]
    assert (got["content_type"], got["response_topic"], got["correlation"], got["format"]) == (
        "application/json",
        "reply/up",
        b"up",
        1,
    )
    assert 3590 <= got["expiry"] <= 3600

    remote.publish("v5/down/b", b"cmd", qos=1, properties=sent_properties("down"))
    [message] = local.expect(1, timeout=TIMEOUT)
    assert (message.topic, message.payload) == ("v5/down/b", b"cmd")
    got = props_of(message)
    assert got["user"] == [("k", "again"), ("k", "down"), ("other", "2")]
    assert (got["content_type"], got["response_topic"], got["correlation"]) == (
        "application/json",
        "reply/down",
        b"down",
    )


def test_no_local_keeps_overlapping_rules_loop_free(broker_factory, clients):
    upstream, edge = start_pair(broker_factory)
    local_sub = clients(edge)
    local_sub.subscribe("both/#", 1)
    remote_sub = clients(upstream)
    remote_sub.subscribe("both/#", 1)
    local_pub = clients(edge)
    remote_pub = clients(upstream)
    local_pub.publish("both/edge", b"1", qos=1)
    remote_pub.publish("both/cloud", b"2", qos=1)
    for sub in (local_sub, remote_sub):
        got = sorted((m.topic, m.payload) for m in sub.expect(2, timeout=TIMEOUT))
        assert got == [("both/cloud", b"2"), ("both/edge", b"1")]
    # A marker down the bridge, after anything a loop would have sent the same way.
    remote_pub.publish("both/marker", b"m", qos=1)
    assert [(m.topic, m.payload) for m in local_sub.expect(1, timeout=TIMEOUT)] == [("both/marker", b"m")]
    local_pub.publish("both/marker2", b"m2", qos=1)
    assert [(m.topic, m.payload) for m in remote_sub.expect(2, timeout=TIMEOUT)] == [
        ("both/marker", b"m"),
        ("both/marker2", b"m2"),
    ]


def test_the_bridge_will_reaches_the_upstream_when_the_edge_dies(broker_factory, clients):
    upstream, edge = start_pair(broker_factory)
    remote = clients(upstream)
    remote.subscribe("edge/status", 1)
    edge.proc.kill()
    [message] = remote.expect(1, timeout=TIMEOUT)
    assert (message.topic, message.payload) == ("edge/status", b"lost")
    assert props_of(message)["content_type"] == "text/plain"


def test_the_bridge_client_in_webhook_and_presence(broker_factory, clients):
    with WebhookSink() as sink:
        hook = (
            f'webhook {{ url = "{sink.url}", events = [ {{ event = "on_client_connack" }},'
            ' { event = "on_client_disconnected" } ] }\n'
        )
        upstream = broker_factory("")
        edge = broker_factory(API_CONF + hook + bridge_conf("up", upstream.port, RULES, proto_ver=5))
        edge.wait_for_output(r"bridge up: connected to", timeout=TIMEOUT)
        [connack] = sink.wait_for(1, timeout=TIMEOUT)
        body = connack.json()
        assert (body["action"], body["clientid"], body["conn_ack"]) == (
            "client_connack",
            "edge-up",
            "success",
        )
        watcher = clients(edge)
        watcher.subscribe("$SYS/brokers/client_status/edge-up", 0)
        upstream.stop()
        count = 2
        while not any(
            (r.json()["action"], r.json()["clientid"]) == ("client_disconnected", "edge-up")
            for r in sink.wait_for(count, timeout=TIMEOUT)
        ):
            count += 1  # the watcher's own connack comes in between
        assert count <= 3
        status = json.loads(watcher.expect(1, timeout=TIMEOUT)[0].payload)
        assert (status["status"], status["client_id"]) == ("offline", "edge-up")


def test_the_upstream_limits_are_kept(broker_factory, clients):
    """An MQTT 5 upstream's CONNACK says Maximum QoS 1, no retain, Maximum Packet Size 1 KB: a
    QoS 2 retained message goes up as QoS 1 not retained, one too large is dropped and counted
    instead of ending the link again and again."""
    from bridge_support import BridgeApi

    upstream = broker_factory("mqtt { max_qos = 1, retain_available = false, max_packet_size = 1KB }\n")
    edge = broker_factory(API_CONF + bridge_conf("up", upstream.port, RULES, proto_ver=5))
    edge.wait_for_output(r"bridge up: connected to", timeout=TIMEOUT)
    remote = clients(upstream)
    remote.subscribe("cloud/#", 1)
    local = clients(edge)
    local.publish("v5/up/big", b"x" * 2048, qos=1)
    local.publish("v5/up/small", b"fits", qos=2, retain=True)
    [message] = remote.expect(1, timeout=TIMEOUT)
    assert (message.topic, message.payload, message.qos, message.retain) == ("cloud/small", b"fits", 1, False)
    status = BridgeApi(edge).wait_for("up", lambda s: s["cached"] == 0)
    assert (status["dropped"], status["forwarded"], status["connects"]) == (1, 1, 1)


def test_the_http_api_shows_the_v5_node_as_nanomq(broker_factory, tmp_path):
    """NanoMQ's node fields for MQTT 5 (conn_properties, will_properties, sub_properties, in
    its JSON names), and `bridge.sqlite` saying where the bridges.mqtt.cache block keeps the cache."""
    from bridge_support import BridgeApi

    cache = f'bridges.mqtt.cache {{ mounted_file_path = "{tmp_path / "cache"}", disk_cache_size = 500 }}\n'
    _, edge = start_pair(broker_factory, cache)
    code, body = BridgeApi(edge).get("/bridges/up")
    assert code == 200 and body["code"] == 0
    [node] = body["data"]["bridge"]["nodes"]
    connector = node["connector"]
    assert connector["proto_ver"] == 5 and connector["password"] is None
    assert connector["conn_properties"] == {"user_properties": [{"key": "site", "value": "edge-1"}]}
    assert connector["will_properties"] == {"content_type": "text/plain"}
    assert node["sub_properties"] == {"identifier": 0}
    assert node["forwards"] == [
        {"remote_topic": "cloud/#", "local_topic": "v5/up/#"},
        {"remote_topic": "both/#", "local_topic": "both/#", "qos": 1},
    ]
    assert node["subscription"] == [
        {"remote_topic": "v5/down/#", "local_topic": "", "qos": 1},
        {"remote_topic": "both/#", "local_topic": "both/#", "qos": 1},
    ]
    assert body["data"]["bridge"]["sqlite"] == {
        "enable": True,
        "disk_cache_size": 500,
        "flush_mem_threshold": 100,
        "resend_interval": 5000,
        "mounted_file_path": str(tmp_path / "cache"),
    }
