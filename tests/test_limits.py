"""The limits that protect the broker, each enforced through a real broker
process and seen on the wire: max_connections, connect_timeout,
max_packet_size, max_topic_levels, max_subscriptions, the inflight window
and the per-session queue."""

from __future__ import annotations

import pytest
from broker_process import start_broker
from mqtt_client import unique_id
from raw_client import RawClient

from nanomq_py.mqtt import properties as p
from nanomq_py.mqtt.packets import Connack, Connect, Disconnect, Pingreq, Pingresp, Puback, Publish

INFLIGHT = 4
QUEUE = 6


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    conf = f"""
mqtt {{
  connect_timeout = 1s
  max_packet_size = 1KB
  max_topic_levels = 4
  max_subscriptions = 2
  max_inflight_window = {INFLIGHT}
  max_mqueue_len = {QUEUE}
}}
"""
    proc = start_broker(tmp_path_factory.mktemp("limited"), conf)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output()


def connect(broker, version=4, client_id=None, properties=None):
    client = RawClient(broker, version=version)
    client.send(
        Connect("MQTT", version, True, 60, client_id or unique_id("lim"), properties=properties or {})
    )
    ack = client.expect(Connack)
    assert ack.reason_code == 0
    client.connack = ack
    return client


def received_before_ping(client):
    """Every packet the broker sent before answering a PINGREQ sent now."""
    client.send(Pingreq())
    packets = []
    while not isinstance(packet := client.recv(), Pingresp):
        packets.append(packet)
    return packets


def test_max_connections_refuses_with_server_unavailable_and_logs_the_peer(tmp_path):
    proc = start_broker(tmp_path, "mqtt.max_connections = 3")
    try:
        clients = [connect(proc, client_id=f"full-{i}") for i in range(3)]
        for version, code in ((4, 3), (5, 0x89)):
            with RawClient(proc, version=version) as refused:
                assert refused.connect(unique_id("over")).reason_code == code
                assert refused.wait_closed() == []
        proc.wait_for_output(r"closing client '\S+' from 127\.0\.0\.1:\d+: max_connections \(3\) reached")
        connect(proc, client_id="full-0")  # a takeover of a connected client id is not a new connection
        clients[1].send(Disconnect())
        clients[1].wait_closed()
        connect(proc, client_id="after-one-left")
    finally:
        proc.stop()


def test_a_socket_that_never_sends_connect_is_closed(limited):
    with RawClient(limited, timeout=5) as silent:
        assert silent.wait_closed() == []
    limited.wait_for_output(r"closing client '' from 127\.0\.0\.1:\d+: no CONNECT within connect_timeout")


def test_max_packet_size_is_announced_and_enforced(limited):
    v5 = connect(limited, version=5)
    assert v5.connack.properties[p.MAXIMUM_PACKET_SIZE] == 1024
    assert v5.subscribe("size/#") == [0]
    v5.publish("size/ok", b"x" * 900)
    assert v5.expect(Publish).topic == "size/ok"
    v5.publish("size/big", b"x" * 1100)
    [goodbye] = v5.wait_closed()
    assert isinstance(goodbye, Disconnect) and goodbye.reason_code == 0x95
    v3 = connect(limited)
    v3.send_bytes(b"\x30\x80\x80\x80\x01")  # a PUBLISH header claiming 2 MiB, and nothing after it
    assert v3.wait_closed() == []


def test_max_topic_levels(limited):
    v3 = connect(limited)
    assert v3.subscribe("a/b/c/d", "a/b/c/d/e") == [0, 0x80]
    v3.publish_acked("a/b/c/d", b"ok")
    assert v3.expect(Publish).topic == "a/b/c/d"
    v3.publish("a/b/c/d/e", b"deep")
    assert v3.wait_closed() == []
    v5 = connect(limited, version=5)
    assert v5.subscribe("a/b/c/d/e") == [0x8F]
    v5.publish("a/b/c/d/e", b"deep")
    [goodbye] = v5.wait_closed()
    assert goodbye.reason_code == 0x90


def test_max_subscriptions_per_client(limited):
    v3 = connect(limited)
    assert v3.subscribe("s/1", "s/2", "s/3") == [0, 0, 0x80]
    assert v3.subscribe("s/1") == [0]  # re-subscribing replaces, it does not add
    v3.unsubscribe("s/2")
    assert v3.subscribe("s/3") == [0]
    v5 = connect(limited, version=5, client_id="five-subs")
    assert v5.subscribe("s/1", "s/2", "s/3", "s/4") == [0, 0, 0x97, 0x97]
    limited.wait_for_output(
        r"refused subscriptions of client 'five-subs' from 127\.0\.0\.1:\d+: s/3: quota_exceeded; s/4: quota_exceeded"
    )


def test_inflight_window_and_queue_bound_a_subscriber_that_never_acks(limited):
    topic = unique_id("q/")
    subscriber = connect(limited)
    assert subscriber.subscribe((topic, 1)) == [1]
    publisher = connect(limited)
    for index in range(20):
        publisher.publish_acked(topic, str(index).encode(), qos=1)
    inflight = received_before_ping(subscriber)
    assert [m.payload for m in inflight] == [str(i).encode() for i in range(INFLIGHT)]
    got = list(inflight)
    while inflight:
        for message in inflight:
            subscriber.send(Puback(message.packet_id))
        inflight = received_before_ping(subscriber)
        got.extend(inflight)
    assert [m.payload for m in got] == [str(i).encode() for i in range(INFLIGHT + QUEUE)]  # the rest dropped
    limited.wait_for_output(rf"dropped message on '{topic}' for '\S+': queue_full")


def test_a_v5_receive_maximum_narrows_the_window(limited):
    topic = unique_id("rm/")
    subscriber = connect(limited, version=5, properties={p.RECEIVE_MAXIMUM: 2})
    assert subscriber.subscribe((topic, 1)) == [1]
    publisher = connect(limited)
    for index in range(5):
        publisher.publish_acked(topic, str(index).encode(), qos=1)
    assert [m.payload for m in received_before_ping(subscriber)] == [b"0", b"1"]
