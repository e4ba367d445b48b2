"""Disk full while running: the broker keeps serving, and a QoS 1 message it
cannot make durable is refused (MQTT 5: PUBACK 0x80 with a reason string;
3.1.1: the connection is closed without an ack), never acknowledged and lost.

The "full disk" is the broker process's file size limit (RLIMIT_FSIZE, set on
the running process with prlimit; CPython ignores SIGXFSZ, so a write past it
fails with EFBIG), which works as root, where permissions would not.
"""

from __future__ import annotations

import os
import resource

from raw_client import RawClient
from raw_client_v5 import ConnectionClosed, RawV5Client
from store_helpers import drain_until_marker, store_conf

from nanomq_py.mqtt import reason_codes as rc
from nanomq_py.mqtt.packets import Puback, Publish
from nanomq_py.mqtt.properties import REASON_STRING

PAYLOAD = b"p" * 65536


def test_disk_full_refuses_qos1_and_keeps_serving(broker_factory, tmp_path):
    store_dir = tmp_path / "store"
    broker = broker_factory(store_conf(store_dir))
    sub = RawClient(broker)
    sub.connect("full-sub", clean=False)
    sub.subscribe("full/t", qos=1)
    sub.disconnect()
    used = sum(os.path.getsize(path) for path in store_dir.glob("nanomq.db*"))
    limit = used + 2 * 1024 * 1024
    resource.prlimit(broker.proc.pid, resource.RLIMIT_FSIZE, (limit, limit))

    pub = RawV5Client(broker)
    pub.connect("full-pub5")
    acked = []
    refused = None
    for n in range(200):
        pid = pub.publish("full/t", b"%04d" % n + PAYLOAD, qos=1)
        ack = pub.expect(Puback)
        assert ack.packet_id == pid
        if ack.reason_code == rc.UNSPECIFIED_ERROR:
            refused = ack
            break
        acked.append(b"%04d" % n)
    assert refused is not None, "the store never filled up"
    assert "could not be stored" in refused.properties[REASON_STRING]
    assert acked

    # The broker still serves: QoS 0 traffic flows, and the v5 publisher is still connected.
    watcher = RawClient(broker)
    watcher.connect("full-watch")
    watcher.subscribe("full/live", qos=0)
    pub.publish("full/live", b"still here", qos=0)
    assert watcher.expect(Publish).payload == b"still here"

    # MQTT 3.1.1 has no negative PUBACK: the connection is closed without one.
    pub3 = RawClient(broker)
    pub3.connect("full-pub3")
    pub3.publish("full/t", b"v3" + PAYLOAD, qos=1)
    pub3.assert_closed()
    broker.wait_for_output(r"store .* commit of \d+ changes failed")

    broker.stop()
    broker = broker_factory(store_conf(store_dir))  # no limit any more
    received, _ = drain_until_marker(broker, "full-sub", "full/t")
    delivered = {payload[:4] for payload in received}
    assert not set(acked) - delivered  # every acknowledged message survived
    print(
        f"\ndisk full: acked {len(acked)}, refused at #{len(acked) + 1}, delivered after restart {len(received)}"
    )
    try:
        pub.close()
    except (OSError, ConnectionClosed):
        pass
