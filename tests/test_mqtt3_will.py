"""Will messages of MQTT 3.1 / 3.1.1 clients: published when the connection
ends without DISCONNECT (socket closed, protocol error, takeover), never
after DISCONNECT; will QoS and retain are honoured. (The will on keepalive
timeout is in test_mqtt3_session, the one after a refused CONNECT in
test_mqtt3_connect, next to the brokers those need.)"""

from __future__ import annotations

import socket
import struct

import pytest
from mqtt_client import unique_id
from raw_client import (
    RawClient,
    connect_unthreaded,
    fast_client_factory,  # noqa: F401 (the client_factory fixture)
)

from nanomq_py.mqtt.packets import Connect, Will


@pytest.fixture
def watcher(client_factory):
    """A client subscribed at QoS 2 to a fresh will topic: (client, topic)."""
    topic = f"will/{unique_id()}"
    client = client_factory()
    client.connect()
    client.subscribe(topic, 2)
    return client, topic


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_will_is_published_when_the_socket_closes(broker, watcher, version, reset):
    watch, topic = watcher
    with RawClient(broker, version=version) as client:
        client.connect(unique_id("drop"), will=Will(topic, b"gone", 1))
        if reset:  # a socket error on the broker's side rather than an orderly close
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    (message,) = watch.expect()
    assert (message.topic, message.payload, message.qos, message.retain) == (topic, b"gone", 1, False)


def test_paho_mqtt31_will_on_abnormal_close(client_factory, watcher):
    watch, topic = watcher
    client = client_factory(protocol="3.1")
    client.paho.will_set(topic, b"paho gone", qos=2, retain=False)
    connect_unthreaded(client)
    client.paho.socket().shutdown(socket.SHUT_RDWR)
    (message,) = watch.expect()
    assert (message.payload, message.qos) == (b"paho gone", 2)


@pytest.mark.parametrize("protocol", ["3.1", "3.1.1"])
def test_no_will_after_disconnect(client_factory, watcher, protocol):
    watch, topic = watcher
    client = client_factory(protocol=protocol)
    client.paho.will_set(topic, b"must not appear", qos=1)
    client.connect()
    client.disconnect()
    publisher = client_factory()
    publisher.connect()
    assert watch.received_before_sync(publisher) == []


def test_no_will_after_raw_disconnect_then_close(broker, watcher):
    watch, topic = watcher
    with RawClient(broker) as client:
        client.connect(unique_id("bye"), will=Will(topic, b"must not appear", 2))
        client.disconnect()
    with RawClient(broker) as other:
        # Its will is published only once this connection is gone: proof that
        # the first connection was settled before.
        other.connect(unique_id("after"), will=Will(topic, b"after", 0))
    assert [m.payload for m in watch.expect()] == [b"after"]
    with RawClient(broker) as publisher:
        publisher.connect(unique_id("marker"))
        assert watch.received_before_sync(publisher) == []


@pytest.mark.parametrize("will_qos", [0, 1, 2])
def test_will_qos_is_honoured(broker, watcher, will_qos):
    watch, topic = watcher
    with RawClient(broker) as client:
        client.connect(unique_id("q"), will=Will(topic, b"q%d" % will_qos, will_qos))
    (message,) = watch.expect()
    assert (message.payload, message.qos) == (b"q%d" % will_qos, will_qos)


def test_will_retain_is_honoured(broker, client_factory):
    topic = f"will/retained/{unique_id()}"
    live = client_factory()
    live.connect()
    live.subscribe(topic, 1)
    with RawClient(broker) as client:
        client.connect(unique_id("r"), will=Will(topic, b"last words", 1, retain=True))
    assert [(m.payload, m.retain) for m in live.expect()] == [(b"last words", False)]
    later = client_factory()
    later.connect()
    later.subscribe(topic, 1)
    (message,) = later.expect()
    assert (message.payload, message.retain, message.qos) == (b"last words", True, 1)


def test_will_on_protocol_error(broker, watcher):
    watch, topic = watcher
    with RawClient(broker) as client:
        client.connect(unique_id("err"), will=Will(topic, b"protocol error", 1))
        client.send_bytes(b"\x82\x02\x00\x01")  # SUBSCRIBE without filters
        client.assert_closed()
    assert watch.expect()[0].payload == b"protocol error"


def test_will_on_second_connect(broker, watcher):
    watch, topic = watcher
    with RawClient(broker) as client:
        client.connect(unique_id("twice"), will=Will(topic, b"second connect", 1))
        client.send(Connect("MQTT", 4, True, 60, unique_id("again")))
        client.assert_closed()
    assert watch.expect()[0].payload == b"second connect"


def test_taken_over_connection_publishes_its_will(broker, watcher):
    """As MQTT 5 says (3.1.1 leaves it open): the old connection's will goes out
    when it is taken over; the new connection's will when that one drops."""
    watch, topic = watcher
    client_id = unique_id("takeover")
    with RawClient(broker) as first, RawClient(broker) as second:
        first.connect(client_id, will=Will(topic, b"first", 1))
        assert second.connect(client_id, will=Will(topic, b"second", 1)).reason_code == 0
        first.assert_closed()
        assert [m.payload for m in watch.expect()] == [b"first"]
    assert [m.payload for m in watch.expect()] == [b"second"]
