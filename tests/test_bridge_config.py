"""bridges.mqtt configuration: NanoMQ's documented block is read as written; a bad value stops
the start (exit 2) with one line naming the key; NanoMQ-only keys warn."""

from __future__ import annotations

import pytest
from helpers_cli import run_nanomq, write_conf

from nanomq_py.config import load_settings
from nanomq_py.mqtt import properties as p

NANOMQ_EXAMPLE = """
bridges.mqtt.emqx1 = {
  server = "mqtt-tcp://127.0.0.1:1883"
  proto_ver = 4
  clientid = "bridge_client"
  keepalive = "60s"
  clean_start = false
  username = "username"
  password = "passwd"
  will = {
    topic = "will_topic"
    qos = 1
    retain = false
    payload = "will_message"
    properties = {
      payload_format_indicator = 0
      message_expiry_interval = 0
      content_type = ""
      response_topic = ""
      correlation_data = ""
      will_delay_interval = 0
      user_property = { key1 = "value1", key2 = "value2" }
    }
  }
  ssl = { key_password = "yourpass", keyfile = "%(key)s", certfile = "%(cert)s", cacertfile = "%(cert)s" }
  forwards = [
    { remote_topic = "fwd/topic1", local_topic = "topic1", suffix = "/emqx" },
    { remote_topic = "fwd/topic2", local_topic = "topic2", prefix = "emqx/" }
  ]
  subscription = [
    { remote_topic = "cmd/topic1", local_topic = "topic3", qos = 1, retain = 2 },
    { remote_topic = "cmd/topic2", local_topic = "topic4", qos = 2, retain = 1 }
  ]
  conn_properties = {
    maximum_packet_size = 1024
    receive_maximum = 65535
    topic_alias_maximum = 0
    request_problem_infomation = 1
    request_response_infomation = 0
    session_expiry_interval = 0
    user_property = { key1 = "value1" }
  }
  sub_properties = { identifier = 1, user_property = { key1 = "value1" } }
  max_parallel_processes = 2
  max_send_queue_len = 32
  max_recv_queue_len = 128
  hybrid_bridging = false
  hybrid_servers = ["mqtt-tcp://127.0.0.1:1884"]
  resend_interval = 5000
  resend_wait = 3000
  cancel_timeout = 8000
  retry_qos_0 = true
}
bridges.mqtt.cache {
  disk_cache_size = 102400
  mounted_file_path = "/tmp/"
  flush_mem_threshold = 100
  resend_interval = 5000
}
"""


def test_nanomq_documented_block_is_read_as_written(tmp_path):
    for name in ("key.pem", "cert.pem"):
        (tmp_path / name).write_text("x")
    conf = write_conf(tmp_path, NANOMQ_EXAMPLE % {"key": tmp_path / "key.pem", "cert": tmp_path / "cert.pem"})
    settings, warnings = load_settings(str(conf))
    [bridge] = settings.bridges.mqtt
    assert bridge.name == "emqx1" and bridge.clientid == "bridge_client" and not bridge.clean_start
    assert bridge.servers == [("mqtt-tcp", "127.0.0.1", 1883), ("mqtt-tcp", "127.0.0.1", 1884)]
    assert (bridge.keepalive, bridge.resend_interval, bridge.cancel_timeout) == (60.0, 5.0, 8.0)
    assert bridge.will.topic == "will_topic" and bridge.will.payload == b"will_message"
    assert bridge.will.properties == {p.USER_PROPERTY: [("key1", "value1"), ("key2", "value2")]}
    assert bridge.conn_properties[p.MAXIMUM_PACKET_SIZE] == 1024
    assert bridge.sub_properties[p.SUBSCRIPTION_IDENTIFIER] == 1
    assert [(r.local_topic, r.remote_topic, r.prefix, r.suffix) for r in bridge.forwards] == [
        ("topic1", "fwd/topic1", "", "/emqx"),
        ("topic2", "fwd/topic2", "emqx/", ""),
    ]
    assert [(r.remote_topic, r.local_topic, r.qos, r.retain) for r in bridge.subscription] == [
        ("cmd/topic1", "topic3", 1, None),
        ("cmd/topic2", "topic4", 2, True),
    ]
    assert bridge.tls.key_password == "yourpass" and bridge.retry_qos_0
    assert settings.bridges.cache.disk_cache_size == 102400
    ignored = sorted(w.split(": ")[1].split(" ")[0] for w in warnings)
    assert ignored == [
        "bridges.mqtt.emqx1.hybrid_bridging",
        "bridges.mqtt.emqx1.max_parallel_processes",
        "bridges.mqtt.emqx1.max_recv_queue_len",
        "bridges.mqtt.emqx1.resend_wait",
    ]


def test_a_disabled_bridge_is_not_read(tmp_path):
    conf = write_conf(tmp_path, 'bridges.mqtt.off { enable = false, server = "nonsense" }\n')
    settings, warnings = load_settings(str(conf))
    assert settings.bridges is None and warnings == []


@pytest.mark.parametrize(
    "body, line",
    [
        (
            'server = "mqtt-quic://127.0.0.1:14567"',
            'bridges.mqtt.b.server = "mqtt-quic://127.0.0.1:14567" is invalid',
        ),
        (
            'server = "mqtt-tcp://127.0.0.1:port"',
            'bridges.mqtt.b.server = "mqtt-tcp://127.0.0.1:port" is invalid',
        ),
        (
            'server = "mqtt-tcp://127.0.0.1:1883"\n forwards = [{ remote_topic = "x" }]',
            "bridges.mqtt.b.forwards[0].local_topic is missing",
        ),
        (
            'server = "mqtt-tcp://127.0.0.1:1883"\n forwards = [{ local_topic = "a/#/b" }]',
            'bridges.mqtt.b.forwards[0].local_topic = "a/#/b" is invalid: expected an MQTT topic filter',
        ),
        (
            'server = "mqtt-tcp://127.0.0.1:1883"\n subscription = [{ remote_topic = "a+" }]',
            'bridges.mqtt.b.subscription[0].remote_topic = "a+" is invalid',
        ),
        ('server = "mqtt-tcp://127.0.0.1:1883"\n proto_ver = 6', "bridges.mqtt.b.proto_ver = 6 is invalid"),
        (
            'server = "mqtt-tcp://127.0.0.1:1883"\n hybrid_servers = ["tcp://x:1"]',
            'bridges.mqtt.b.hybrid_servers[0] = "tcp://x:1" is invalid',
        ),
        ("proto_ver = 4", "bridges.mqtt.b.server is missing"),
    ],
)
def test_a_bad_bridge_value_stops_the_start(tmp_path, body, line):
    conf = write_conf(tmp_path, f'listeners.tcp.bind = "127.0.0.1:0"\nbridges.mqtt.b {{\n {body}\n}}\n')
    result = run_nanomq(tmp_path, "start", "--conf", str(conf))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{conf}: {line}"), result.stderr
    assert result.stdout == ""
