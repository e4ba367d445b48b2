"""A raw-socket MQTT client for tests that need exact bytes on the wire:
malformed and out-of-order packets, withheld acknowledgements, DUP flags.

Packets are encoded and decoded with nanomq_py.mqtt.codec; every read has a
timeout, so a missing packet fails the test instead of hanging it.

Also here, for the paho clients of the MQTT 3 test modules: `client_factory`,
which wraps the shared fixture so each client is disconnected before its
network loop is stopped, and `connect_unthreaded` for clients the broker will
close or refuse. paho's loop thread only notices it should stop at its next
one-second poll or reconnect sleep; these avoid paying that per client.
"""

from __future__ import annotations

import socket
import time

import pytest

from nanomq_py.mqtt.codec import FrameReader, encode
from nanomq_py.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    SubOptions,
    Subscribe,
    Unsuback,
    Unsubscribe,
)

TIMEOUT = 5.0
_PROTOCOL_NAMES = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}


class RawClient:
    """One TCP connection speaking MQTT at protocol level `version` (3 or 4)."""

    def __init__(self, broker, version=4, timeout=TIMEOUT, receive_buffer=None):
        self.version = version
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # before connecting, so the advertised window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect((broker.host, broker.port))
        self.reader = FrameReader(max_packet_size=1 << 28, version=version)
        self.pending = []  # decoded packets not yet handed out
        self.eof = False
        self._next_pid = 0

    # -- sending ------------------------------------------------------------

    def send(self, packet):
        self.sock.sendall(encode(packet, self.version))

    def send_bytes(self, data):
        self.sock.sendall(data)

    def connect(self, client_id, clean=True, keepalive=60, will=None, username=None, password=None):
        """Send CONNECT and return the CONNACK."""
        self.send(
            Connect(
                _PROTOCOL_NAMES[self.version],
                self.version,
                clean,
                keepalive,
                client_id,
                username,
                password,
                will,
            )
        )
        return self.expect(Connack)

    def new_pid(self):
        self._next_pid = self._next_pid % 65535 + 1
        return self._next_pid

    def subscribe(self, *filters, qos=0):
        """SUBSCRIBE to each filter (a name, or (name, qos)); returns the SUBACK's return codes."""
        pid = self.new_pid()
        topics = [(f, SubOptions(qos)) if isinstance(f, str) else (f[0], SubOptions(f[1])) for f in filters]
        self.send(Subscribe(pid, topics))
        return self.take(Suback, pid).reason_codes

    def unsubscribe(self, *filters):
        pid = self.new_pid()
        self.send(Unsubscribe(pid, list(filters)))
        self.take(Unsuback, pid)

    def publish(self, topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None):
        """Send a PUBLISH; for QoS 1/2 the packet id used is returned (acks are the caller's)."""
        if qos and packet_id is None:
            packet_id = self.new_pid()
        self.send(Publish(topic, payload, qos, retain, dup, packet_id or 0))
        return packet_id

    def publish_acked(self, topic, payload=b"", qos=1, retain=False):
        """Publish and complete the QoS 1 or QoS 2 flow (messages arriving meanwhile stay queued)."""
        pid = self.publish(topic, payload, qos, retain)
        if qos == 1:
            self.take(Puback, pid)
        elif qos == 2:
            self.take(Pubrec, pid)
            self.send(Pubrel(pid))
            self.take(Pubcomp, pid)

    def ping(self):
        """PINGREQ -> PINGRESP: proves the connection is open and everything before it was handled."""
        self.send(Pingreq())
        self.expect(Pingresp)

    def disconnect(self):
        self.send(Disconnect())
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- receiving ----------------------------------------------------------

    def _fill(self, deadline):
        """Read once more from the socket; False at EOF or when the deadline passes."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.pending.extend(self.reader.feed(data))
        return True

    def recv(self, timeout=None):
        """The next packet from the broker; AssertionError on timeout or close."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.pending:
            if not self._fill(deadline):
                raise AssertionError("connection closed by the broker" if self.eof else "no packet in time")
        return self.pending.pop(0)

    def expect(self, cls, timeout=None):
        packet = self.recv(timeout)
        assert isinstance(packet, cls), f"expected {cls.__name__}, got {packet!r}"
        return packet

    def take(self, cls, packet_id, timeout=None):
        """The first packet of type cls with this packet id, wherever it is in the
        stream; packets before it stay queued for recv() in their order."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = 0
        while True:
            for index in range(seen, len(self.pending)):
                packet = self.pending[index]
                if isinstance(packet, cls) and packet.packet_id == packet_id:
                    return self.pending.pop(index)
            seen = len(self.pending)
            if not self._fill(deadline):
                raise AssertionError(
                    f"no {cls.__name__} for packet id {packet_id}; received {self.pending!r}"
                )

    def wait_closed(self, timeout=None):
        """Block until the broker closes the connection; returns the packets it sent before.
        AssertionError if the connection is still open after the timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.eof:
            if not self._fill(deadline) and not self.eof:
                raise AssertionError(f"connection still open; received {self.pending!r}")
        packets, self.pending = self.pending, []
        return packets

    def assert_closed(self, timeout=None):
        """The broker closes the connection without sending anything first."""
        packets = self.wait_closed(timeout)
        assert packets == [], f"unexpected packets before close: {packets!r}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def acknowledge(client, packet):
    """Answer a PUBLISH from the broker as a well-behaved subscriber does."""
    if packet.qos == 1:
        client.send(Puback(packet.packet_id))
    elif packet.qos == 2:
        client.send(Pubrec(packet.packet_id))
        assert client.expect(Pubrel).packet_id == packet.packet_id
        client.send(Pubcomp(packet.packet_id))


@pytest.fixture(name="client_factory")
def fast_client_factory(client_factory):
    """The shared client_factory, with a fast teardown: DISCONNECT first, so the
    paho thread ends at once instead of at its next one-second poll."""
    made = []

    def make(*args, **kwargs):
        client = client_factory(*args, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        if client.paho.is_connected():
            client.paho.disconnect()


def connect_unthreaded(client, host=None, port=None):
    """Connect a TestClient without paho's loop thread; returns its CONNACK
    (flags, reason_code, properties). Drive it further with paho.loop()."""
    client.paho.connect(host or client.broker.host, port or client.broker.port, 60)
    deadline = time.monotonic() + TIMEOUT
    while client.connack.empty():
        assert time.monotonic() < deadline, "no CONNACK"
        client.paho.loop(0.1)
    return client.connack.get()


def loop_until_disconnected(client):
    """Run an unthreaded paho client until the connection ends; returns the reason code."""
    deadline = time.monotonic() + TIMEOUT
    while client.disconnects.empty():
        assert time.monotonic() < deadline, "still connected"
        client.paho.loop(0.1)
    return client.disconnects.get()
