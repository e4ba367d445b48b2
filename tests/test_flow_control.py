"""Flow control under overload: publishers that never wait for PUBACK flood a
subscriber that acknowledges as fast as it can. The broker holds the
publishers back instead of dropping what it already acknowledged: every QoS 1
message arrives, with a per-session queue far smaller than the flood."""

from __future__ import annotations

import threading

from mqtt_client import unique_id
from raw_client import RawClient

from nanomq_py.mqtt.codec import encode
from nanomq_py.mqtt.packets import Puback, Publish

PUBLISHERS = 4
PER_PUBLISHER = 3000
CONF = "mqtt { max_mqueue_len = 40, max_inflight_window = 10 }"


def _flood(broker, topic, index, acked):
    """Send every PUBLISH at once (open loop), then collect the PUBACKs."""
    with RawClient(broker, timeout=30) as publisher:
        publisher.connect(unique_id(f"flood{index}"))
        packets = [
            encode(Publish(topic, b"%d-%d" % (index, n), 1, packet_id=n + 1), 4) for n in range(PER_PUBLISHER)
        ]
        publisher.send_bytes(b"".join(packets))
        for _ in range(PER_PUBLISHER):
            publisher.expect(Puback)
        acked[index] = PER_PUBLISHER


def test_an_overloaded_subscriber_loses_no_acknowledged_qos1_message(broker_factory):
    broker = broker_factory(CONF)
    topic = unique_id("flow/t")
    with RawClient(broker, timeout=30) as subscriber:
        subscriber.connect(unique_id("drain"))
        assert subscriber.subscribe((topic, 1)) == [1]
        acked = [0] * PUBLISHERS
        floods = [threading.Thread(target=_flood, args=(broker, topic, i, acked)) for i in range(PUBLISHERS)]
        for flood in floods:
            flood.start()
        seen = set()
        while len(seen) < PUBLISHERS * PER_PUBLISHER:
            message = subscriber.expect(Publish)
            subscriber.send(Puback(message.packet_id))
            seen.add(message.payload)
        for flood in floods:
            flood.join(30)
        assert acked == [PER_PUBLISHER] * PUBLISHERS
    assert "dropped message" not in broker.output()


def test_a_subscriber_that_stops_reading_does_not_hold_publishers(broker_factory):
    broker = broker_factory(CONF)
    topic = unique_id("flow/stuck")
    stuck = RawClient(broker, timeout=30, receive_buffer=4096)
    stuck.connect(unique_id("stuck"))
    assert stuck.subscribe((topic, 1)) == [1]
    acked = [0]
    _flood(broker, topic, 0, acked)  # returns only once every PUBLISH was acknowledged
    assert acked == [PER_PUBLISHER]
    broker.wait_for_output(r"dropped message on .* queue_full")
    stuck.close()


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_stalled_qos1_subscriber_gets_its_output_buffer_then_its_queue_in_order(broker_factory):
    """QoS 1/2 output is bounded like QoS 0: past max_outgoing_bytes the
    messages wait in the session's queue (max_mqueue_len) and the rest is
    dropped, instead of the whole inflight window being copied into the
    connection's buffer. Once the subscriber reads, it gets a gap-free prefix."""
    broker = broker_factory("mqtt { max_mqueue_len = 100, max_outgoing_bytes = 64KB }")
    topic = unique_id("flow/stalled")
    stalled = RawClient(broker, timeout=30, receive_buffer=4096)
    stalled.connect(unique_id("stalled"))
    assert stalled.subscribe((topic, 1)) == [1]
    baseline = _rss_kb(broker.proc.pid)
    total = 2000  # 20 MB; the kernel's socket buffers hold at most ~4 MB of it
    filler = b"z" * 10_000
    with RawClient(broker, timeout=30) as publisher:
        publisher.connect(unique_id("pub"))
        for n in range(total):
            publisher.send(Publish(topic, b"%06d" % n + filler, 1, packet_id=n % 60000 + 1))
            if n % 100 == 99:
                publisher.take(Puback, n % 60000 + 1)
        broker.wait_for_output(r"dropped message on .* queue_full")
        grown = _rss_kb(broker.proc.pid) - baseline
        received = []
        while True:
            try:
                message = stalled.recv(timeout=2)
            except AssertionError:
                break  # nothing more within 2 s: the queue is empty
            if isinstance(message, Publish):
                stalled.send(Puback(message.packet_id))
                received.append(int(message.payload[:6]))
        assert received == list(range(len(received))), "a gap or reordering before the drops"
        assert 100 <= len(received) < total
        publisher.send(Publish(topic, b"after", 1, packet_id=1))
        assert stalled.expect(Publish).payload == b"after"
    stalled.close()
    print(f"\nstalled QoS 1 subscriber: {len(received)} of {total} delivered, VmRSS grew {grown} kB")
    assert grown < 8 * 1024, "the broker buffered the stalled subscriber's whole window"
