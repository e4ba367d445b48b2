"""Raw-socket protocol tests: malformed and out-of-order packets, framing, and
max_packet_size. A bad packet closes only its own connection, and the broker
logs one line naming the client and the reason."""

from __future__ import annotations

import socket

import pytest
from broker_process import start_broker
from mqtt_client import unique_id
from raw_client import (
    RawClient,
    fast_client_factory,  # noqa: F401 (the client_factory fixture)
)

from nanomq_py.mqtt.codec import encode
from nanomq_py.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    SubOptions,
    Subscribe,
    Will,
)

MAX_PACKET_SIZE = 1024


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """This module's broker: a 1 KiB max_packet_size and 64 KiB of output per connection."""
    conf = f"mqtt {{ max_packet_size = {MAX_PACKET_SIZE}, max_outgoing_bytes = 64KB }}\n"
    proc = start_broker(tmp_path_factory.mktemp("raw"), conf)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def bystander(broker):
    """A connection that lives through every test of the module: it must never be disturbed."""
    client = RawClient(broker)
    client.connect(unique_id("bystander"))
    yield client
    client.ping()
    client.close()


def log_lines_naming(broker, client_id):
    return [line for line in broker.output().splitlines() if f"'{client_id}'" in line]


def assert_closed_and_logged(broker, client, client_id, reason):
    client.assert_closed()
    broker.wait_for_output(rf"closing client '{client_id}' from 127\.0\.0\.1:\d+: .*{reason}")
    assert len(log_lines_naming(broker, client_id)) == 1


MALFORMED = [
    ("length-5-bytes", b"\x30\xff\xff\xff\xff\x01", "remaining length longer than 4 bytes"),
    ("publish-qos3", b"\x36\x07\x00\x03a/b\x00\x01", "QoS 3"),
    ("publish-topic-overrun", b"\x30\x04\x00\x09ab", "truncated PUBLISH topic"),
    ("publish-no-topic-length", b"\x30\x01\x00", "truncated PUBLISH topic"),
    ("publish-pid0", b"\x32\x07\x00\x03a/b\x00\x00", "packet identifier 0"),
    ("publish-qos1-no-pid", b"\x32\x05\x00\x03a/b", "truncated PUBLISH"),
    ("publish-bad-utf8", b"\x30\x05\x00\x03a/\xff", "not valid UTF-8"),
    ("publish-nul", b"\x30\x05\x00\x03a\x00b", "U\\+0000"),
    ("publish-dup-qos0", b"\x38\x05\x00\x03a/b", "DUP set on a QoS 0"),
    ("publish-wildcard", b"\x30\x05\x00\x03a/#", "wildcard"),
    ("pubrel-flags", b"\x60\x02\x00\x01", "invalid fixed header flags"),
    ("puback-extra", b"\x40\x03\x00\x01\x00", "unexpected bytes"),
    ("puback-short", b"\x40\x01\x00", "truncated packet identifier"),
    ("pingreq-body", b"\xc0\x01\x00", "unexpected bytes"),
    ("disconnect-body", b"\xe0\x01\x00", "unexpected bytes"),
    ("type-0", b"\x00\x00", "reserved packet type 0"),
    ("auth-in-v3", b"\xf0\x00", "AUTH exists only in MQTT 5"),
    ("connack-from-client", b"\x20\x02\x00\x00", "unexpected Connack"),
    ("suback-from-client", b"\x90\x03\x00\x01\x00", "unexpected Suback"),
    ("pingresp-from-client", b"\xd0\x00", "unexpected Pingresp"),
    ("unsuback-from-client", b"\xb0\x02\x00\x01", "unexpected Unsuback"),
]


@pytest.mark.parametrize(
    ("data", "reason"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_packet_closes_only_that_connection_and_logs_one_line(broker, bystander, data, reason):
    client_id = unique_id("bad")
    with RawClient(broker) as client:
        client.connect(client_id)
        client.send_bytes(data)
        assert_closed_and_logged(broker, client, client_id, reason)
    bystander.ping()


def test_garbage_before_connect_is_logged_with_the_peer(broker, bystander):
    with RawClient(broker) as client:
        port = client.sock.getsockname()[1]
        client.send_bytes(b"\x10\xff\xff\xff\xff")
        client.assert_closed()
        broker.wait_for_output(rf"closing client '' from 127\.0\.0\.1:{port}: remaining length")
    bystander.ping()


def test_publish_at_max_packet_size_passes_one_byte_more_closes(broker, bystander, client_factory):
    topic = "raw/size"
    overhead = 1 + 2 + 2 + len(topic)  # fixed header with a 2-byte length, topic length, topic
    subscriber = client_factory(broker)
    subscriber.connect()
    subscriber.subscribe(topic, 0)
    client_id = unique_id("big")
    with RawClient(broker) as client:
        client.connect(client_id)
        fits = b"x" * (MAX_PACKET_SIZE - overhead)
        assert len(encode(Publish(topic, fits), 4)) == MAX_PACKET_SIZE
        client.publish(topic, fits)
        client.ping()
        client.publish(topic, fits + b"x")
        assert_closed_and_logged(broker, client, client_id, "exceeds the maximum of 1024")
    assert [m.payload for m in subscriber.expect()] == [fits]
    # The rest of the broker is unaffected: another client publishes and receives.
    publisher = client_factory(broker)
    publisher.connect()
    publisher.publish(topic, b"still fine", qos=1)
    assert [m.payload for m in subscriber.expect()] == [b"still fine"]
    bystander.ping()


def test_oversize_length_is_refused_before_the_body_arrives(broker, bystander):
    client_id = unique_id("huge")
    with RawClient(broker) as client:
        client.connect(client_id)
        client.send_bytes(b"\x30\xff\xff\xff\x7f")  # announces 256 MiB, sends nothing more
        assert_closed_and_logged(broker, client, client_id, "exceeds the maximum")
    bystander.ping()


def test_oversize_connect_is_refused(broker, bystander):
    with RawClient(broker) as client:
        client.send(Connect("MQTT", 4, True, 60, "c" * MAX_PACKET_SIZE))
        client.assert_closed()
    bystander.ping()


def test_packets_split_into_single_bytes_are_reassembled(broker):
    topic = f"raw/split/{unique_id()}"
    data = encode(Connect("MQTT", 4, True, 60, unique_id("split")), 4)
    data += encode(Subscribe(1, [(topic, SubOptions(1))]), 4)
    data += encode(Publish(topic, b"p" * 300, qos=1, packet_id=2), 4)  # two-byte remaining length
    with RawClient(broker) as client:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(len(data)):
            client.send_bytes(data[index : index + 1])
        assert client.expect(Connack).reason_code == 0
        assert client.expect(Suback) == Suback(1, [1])
        message = client.expect(Publish)
        assert message.payload == b"p" * 300
        assert client.take(Puback, 2) == Puback(2)


def test_many_packets_in_one_write(broker):
    topic = f"raw/batch/{unique_id()}"
    packets = [Connect("MQTT", 4, True, 60, unique_id("batch")), Subscribe(1, [(topic, SubOptions(0))])]
    packets += [Publish(topic, b"%d" % n) for n in range(50)]
    packets.append(Pingreq())
    with RawClient(broker) as client:
        client.send_bytes(b"".join(encode(packet, 4) for packet in packets))
        assert client.expect(Connack).reason_code == 0
        assert client.expect(Suback) == Suback(1, [0])
        assert [client.expect(Publish).payload for _ in range(50)] == [b"%d" % n for n in range(50)]
        client.expect(Pingresp)


def test_nothing_after_disconnect_is_processed(broker, client_factory):
    topic = f"raw/after-disconnect/{unique_id()}"
    subscriber = client_factory(broker)
    subscriber.connect()
    subscriber.subscribe(topic, 0)
    with RawClient(broker) as client:
        client.connect(unique_id("bye"))
        client.send_bytes(encode(Disconnect(), 4) + encode(Publish(topic, b"too late"), 4))
        client.assert_closed()
    publisher = client_factory(broker)
    publisher.connect()
    assert subscriber.received_before_sync(publisher) == []


def test_packets_before_a_malformed_one_in_the_same_read_are_processed(broker, client_factory):
    topic = f"raw/before-error/{unique_id()}"
    subscriber = client_factory(broker)
    subscriber.connect()
    subscriber.subscribe(topic, 0)
    with RawClient(broker) as client:
        client.connect(unique_id("then-garbage"))
        client.send_bytes(encode(Publish(topic, b"valid"), 4) + b"\x00\x00")
        client.assert_closed()
    publisher = client_factory(broker)
    publisher.connect()
    assert [m.payload for m in subscriber.received_before_sync(publisher)] == [b"valid"]


def test_disconnect_then_garbage_in_the_same_read_sends_no_will(broker, client_factory):
    topic = f"raw/disconnect-then-garbage/{unique_id()}"
    watcher = client_factory(broker)
    watcher.connect()
    watcher.subscribe(topic, 0)
    with RawClient(broker) as client:
        client.connect(unique_id("bye"), will=Will(topic, b"must not appear"))
        client.send_bytes(encode(Disconnect(), 4) + b"\x00\x00")
        client.assert_closed()
    publisher = client_factory(broker)
    publisher.connect()
    assert watcher.received_before_sync(publisher) == []


def test_connection_closed_mid_packet_is_harmless(broker, bystander):
    with RawClient(broker) as client:
        client.connect(unique_id("half"))
        client.send_bytes(encode(Publish("raw/half", b"x" * 100), 4)[:50])
    bystander.ping()


def test_mqtt31_accepts_any_fixed_header_flags_like_mosquitto(broker):
    """MQTT 3.1 predates the strict flag rule (3.1.1's MQTT-2.2.2-2)."""
    with RawClient(broker, version=3) as client:
        client.connect(unique_id("v31"))
        client.send_bytes(b"\xc1\x00")  # PINGREQ with a flag bit
        client.expect(Pingresp)


def test_a_subscriber_that_stops_reading_stalls_nobody(broker, bystander, client_factory):
    """QoS 0 to a subscriber that never reads is dropped once its output passes
    max_outgoing_bytes; the publisher and another subscriber carry on."""
    topic = f"raw/stuck/{unique_id()}"
    marker = f"raw/stuck-marker/{unique_id()}"
    reader = client_factory(broker)
    reader.connect()
    reader.subscribe([(topic, 0), (marker, 1)])
    with RawClient(broker, receive_buffer=4096) as stuck, RawClient(broker) as publisher:
        stuck.connect(unique_id("stuck"))
        stuck.subscribe(topic, qos=0)
        publisher.connect(unique_id("flood"))
        publisher.send_bytes(encode(Publish(topic, b"s" * 900), 4) * 5000)
        publisher.ping()  # every PUBLISH was read and routed: the publisher never waited
        broker.wait_for_output(rf"dropped message on '{topic}' for '.*': queue_full")  # logged 1 in 1024
        publisher.publish_acked(marker, b"after the flood", qos=1)
        # The reader gets the flood (QoS 0: as much as it keeps up with) and then the marker.
        while (message := reader.expect()[0]).topic != marker:
            assert message.payload == b"s" * 900
        assert message.payload == b"after the flood"
    bystander.ping()
