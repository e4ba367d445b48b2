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
