"""Order of arrival across connections: a SUBSCRIBE (or UNSUBSCRIBE) the broker
read before another client's PUBLISH is in force for that PUBLISH.

Each trial sends B's SUBSCRIBE and, at once, A's PUBLISH from this thread, so
both are in the broker's socket buffers in that order. A third client C has
just sent a 1 MiB PUBLISH to a topic nobody reads, which the broker reads
16 KiB per turn of its loop: B's and A's packets arrive while it is busy and
are reported by the same poll, the case where the order used to be lost. No
sleeps: A's PINGREQ/PINGRESP proves its PUBLISH was handled; B's
PINGREQ is sent after that, so whatever the broker routed to B is on B's
socket before B's PINGRESP.

Both ways of serving connections are tried: read callbacks in the event loop
(the default) and one greenlet per connection (when authentication may wait,
here because a PBKDF2 password is configured).
"""

from __future__ import annotations

import itertools

import pytest
from broker_process import start_broker
from raw_client import RawClient
from raw_client_v5 import RawV5Client

from nanomq_py.broker.passwords import hash_password
from nanomq_py.mqtt.codec import encode
from nanomq_py.mqtt.packets import (
    Pingreq,
    Pingresp,
    Publish,
    Suback,
    SubOptions,
    Subscribe,
    Unsuback,
    Unsubscribe,
)

TRIALS = 50
BUSY_BYTES = 1024 * 1024
_ids = itertools.count()


@pytest.fixture(scope="module", params=["callbacks", "greenlets"])
def served(request, tmp_path_factory):
    conf = ""
    if request.param == "greenlets":
        conf = f'auth {{ allow_anonymous = true, password = {{"carol" = "{hash_password("pw", 1000)}"}} }}'
    proc = start_broker(tmp_path_factory.mktemp("order"), conf)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output()


def connected(broker, version, name):
    client = RawClient(broker, version=4) if version == 4 else RawV5Client(broker)
    client.connect(f"{name}-{next(_ids)}")
    return client


def receive(client):
    return client.recv() if isinstance(client, RawClient) else client.read()


def keep_busy(client, version):
    """Send the broker a PUBLISH it takes many turns of its loop to read (no subscriber: no output)."""
    client.send_bytes(encode(Publish("order/nobody", b"x" * BUSY_BYTES, 0, False, False, 0), version))


def ping(client):
    """PINGREQ, then every packet the broker sent before the PINGRESP."""
    client.send(Pingreq())
    packets = []
    while not isinstance(packet := receive(client), Pingresp):
        packets.append(packet)
    return packets


@pytest.mark.parametrize("version", [4, 5])
def test_a_subscribe_read_first_gets_the_next_publish_of_another_client(served, version):
    a, b, c = (connected(served, version, name) for name in ("pub", "sub", "busy"))
    try:
        misses = []
        for trial in range(TRIALS):
            topic = f"order/sub/{version}/{trial}"
            keep_busy(c, version)
            b.send(Subscribe(trial + 1, [(topic, SubOptions(0))]))
            a.send(Publish(topic, b"m%d" % trial, 0, False, False, 0))
            ping(a)
            packets = ping(b)
            ping(c)
            assert isinstance(packets[0], Suback), packets
            if [p.topic for p in packets if isinstance(p, Publish)] != [topic]:
                misses.append(trial)
        assert misses == [], f"{len(misses)} of {TRIALS} PUBLISHes missed the SUBSCRIBE read before them"
    finally:
        for client in (a, b, c):
            client.close()


@pytest.mark.parametrize("version", [4, 5])
def test_no_delivery_after_an_unsubscribe_read_before_the_publish(served, version):
    a, b, c = (connected(served, version, name) for name in ("pub", "unsub", "busy"))
    try:
        topic = f"order/unsub/{version}"
        b.send(Subscribe(1, [(topic, SubOptions(0))]))
        assert isinstance(ping(b)[0], Suback)
        late = []
        for trial in range(TRIALS):
            keep_busy(c, version)
            b.send(Unsubscribe(trial + 2, [topic]))
            a.send(Publish(topic, b"m%d" % trial, 0, False, False, 0))
            ping(a)
            packets = ping(b)
            ping(c)
            assert any(isinstance(p, Unsuback) for p in packets), packets
            if any(isinstance(p, Publish) for p in packets):
                late.append(trial)
            b.send(Subscribe(trial + 2, [(topic, SubOptions(0))]))  # again, for the next trial
            assert isinstance(ping(b)[0], Suback)
        assert late == [], f"{len(late)} of {TRIALS} PUBLISHes were delivered after the UNSUBSCRIBE"
    finally:
        for client in (a, b, c):
            client.close()
