"""kill -9 in the middle of work: every acknowledged message survives.

Real broker processes with a `sqlite { }` store, SIGKILLed while a publisher
floods a persistent session; after a restart on the same store the subscriber
must receive every message that was PUBACKed (lost = 0). Duplicates (messages
stored but not yet acked when the broker died) are allowed and reported.
"""

from __future__ import annotations

import threading

from raw_client import RawClient
from store_helpers import drain_until_marker, kill, store_conf

from nanomq_py.mqtt.packets import Puback, Pubcomp, Publish, Pubrec, Pubrel

FLOOD = 3000


class _AckCollector(threading.Thread):
    """Reads a publisher's PUBACKs until the connection dies; counts them for the main thread."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.acked = set()
        self.cond = threading.Condition()

    def run(self):
        try:
            while True:
                packet = self.client.recv(timeout=30)
                if isinstance(packet, Puback):
                    with self.cond:
                        self.acked.add(packet.packet_id)
                        self.cond.notify_all()
        except (AssertionError, OSError):
            with self.cond:
                self.cond.notify_all()

    def wait_for(self, count):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.acked) >= count or not self.is_alive(), 30)


def test_kill_mid_qos1_flood_loses_no_acked_message(broker_factory, tmp_path):
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    sub = RawClient(broker)
    sub.connect("flood-sub", clean=False)
    sub.subscribe("flood/t", qos=1)
    sub.disconnect()

    pub = RawClient(broker)
    pub.connect("flood-pub")
    collector = _AckCollector(pub)
    collector.start()
    sent = []

    def flood():
        try:
            for n in range(1, FLOOD + 1):
                pub.publish("flood/t", b"%d" % n, qos=1, packet_id=n)
                sent.append(n)
        except OSError:
            pass  # the broker died under us

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    collector.wait_for(FLOOD // 10)  # acks are flowing: now die in the middle of the flood
    kill(broker)
    sender.join(30)
    collector.join(30)
    acked = {b"%d" % pid for pid in collector.acked}
    assert len(acked) >= FLOOD // 10

    broker = broker_factory(store_conf(store_dir))
    received, _ = drain_until_marker(broker, "flood-sub", "flood/t")
    delivered = set(received)
    lost = acked - delivered
    duplicates = len(received) - len(delivered)
    print(
        f"\nkill -9 QoS 1 flood: sent {len(sent)}, acked {len(acked)}, delivered {len(received)} "
        f"({len(delivered)} distinct), lost {len(lost)}, duplicates {duplicates}, "
        f"stored but never acked {len(delivered - acked)}"
    )
    assert not lost
    assert [int(p) for p in received] == sorted(int(p) for p in received)  # in publish order


def test_qos2_exactly_once_across_kill_between_pubrec_and_pubrel(broker_factory, tmp_path):
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    sub = RawClient(broker)
    sub.connect("q2-sub", clean=False)
    sub.subscribe("q2/t", qos=2)
    sub.disconnect()
    pub = RawClient(broker)
    pub.connect("q2-pub", clean=False)
    pub.publish("q2/t", b"once", qos=2, packet_id=7)
    pub.take(Pubrec, 7)
    kill(broker)

    broker = broker_factory(store_conf(store_dir))
    pub = RawClient(broker)
    connack = pub.connect("q2-pub", clean=False)
    assert connack.session_present
    pub.publish("q2/t", b"once", qos=2, dup=True, packet_id=7)  # the client did not see PUBREC: it resends
    pub.take(Pubrec, 7)
    pub.send(Pubrel(7))
    pub.take(Pubcomp, 7)
    pub.publish("q2/t", b"marker", qos=2, packet_id=8)
    pub.take(Pubrec, 8)
    pub.send(Pubrel(8))
    pub.take(Pubcomp, 8)

    got = []
    sub = RawClient(broker)
    sub.connect("q2-sub", clean=False)
    while True:
        packet = sub.recv()
        if isinstance(packet, Publish):
            sub.send(Pubrec(packet.packet_id))
            sub.take(Pubrel, packet.packet_id)
            sub.send(Pubcomp(packet.packet_id))
            if packet.payload == b"marker":
                break
            got.append(packet.payload)
    assert got == [b"once"]


def test_outgoing_qos2_past_pubrec_gets_pubrel_after_a_kill(broker_factory, tmp_path):
    """The broker sent a QoS 2 message, got PUBREC, sent PUBREL and then died: after
    the restart the subscriber gets that PUBREL again, not the message."""
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    sub = RawClient(broker)
    sub.connect("out2-sub", clean=False)
    sub.subscribe("out2/t", qos=2)
    pub = RawClient(broker)
    pub.connect("out2-pub")
    pub.publish_acked("out2/t", b"twice?", qos=2)
    delivery = sub.expect(Publish)
    sub.send(Pubrec(delivery.packet_id))
    sub.take(Pubrel, delivery.packet_id)  # PUBCOMP never sent
    pub.publish_acked("out2/other", b"sync", qos=1)  # its PUBACK comes after the PUBREC's change is committed
    kill(broker)

    broker = broker_factory(store_conf(store_dir))
    sub = RawClient(broker)
    assert sub.connect("out2-sub", clean=False).session_present
    assert sub.take(Pubrel, delivery.packet_id).packet_id == delivery.packet_id
    sub.send(Pubcomp(delivery.packet_id))
    received, _ = drain_until_marker(broker, "out2-sub", "out2/t")
    assert received == []
