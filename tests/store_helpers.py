"""Brokers with a durable store for the tests/test_store_*.py modules: start one
on a store directory, SIGKILL it, start it again on the same store."""

from __future__ import annotations

from broker_process import start_broker
from raw_client import RawClient

from nanomq_py.mqtt.packets import Puback, Publish


def store_conf(store_dir, extra=""):
    return f'sqlite {{ mounted_file_path = "{store_dir}" }}\nmqtt {{ max_mqueue_len = 100000 }}\n' + extra


def kill(broker):
    """SIGKILL: nothing gets a chance to be written."""
    broker.proc.kill()
    broker.proc.wait(10)
    broker.stop()


def restart(tmp_path, store_dir, extra=""):
    return start_broker(tmp_path, store_conf(store_dir, extra))


def drain_until_marker(broker, client_id, topic, qos=1, clean=False, limit=100000):
    """Connect `client_id` (persistent), ack everything it receives, and return the
    payloads received before a marker that a fresh publisher sends to `topic` now:
    the broker delivers one session's messages in order, so the marker comes last."""
    sub = RawClient(broker, timeout=30)
    sub.connect(client_id, clean=clean)
    publisher = RawClient(broker)
    publisher.connect(f"{client_id}-marker")
    publisher.publish_acked(topic, b"marker", qos=qos)
    received = []
    dups = 0
    while len(received) < limit:
        packet = sub.recv()
        if not isinstance(packet, Publish):
            continue
        if packet.qos:
            sub.send(Puback(packet.packet_id))
        if packet.payload == b"marker":
            break
        dups += packet.dup
        received.append(packet.payload)
    publisher.disconnect()
    sub.disconnect()
    return received, dups
