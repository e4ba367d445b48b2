"""A raw-socket MQTT 5 client for tests that need exact bytes or withheld
acknowledgements: malformed properties, Receive Maximum, keepalive expiry.

Packets are encoded and decoded with nanomq_py.mqtt.codec; every read has a
timeout, so a missing packet fails the test instead of hanging it.
"""

from __future__ import annotations

import socket

from nanomq_py.mqtt.codec import FrameReader, encode
from nanomq_py.mqtt.packets import Connack, Connect, Disconnect, Publish, Suback, SubOptions, Subscribe

TIMEOUT = 5.0


class ConnectionClosed(AssertionError):
    """The broker closed the connection while a packet was expected."""


class RawV5Client:
    """One TCP connection speaking MQTT 5 packet by packet."""

    def __init__(self, broker, timeout=TIMEOUT):
        self.sock = socket.create_connection((broker.host, broker.port), timeout=timeout)
        self.reader = FrameReader(max_packet_size=1 << 28, version=5)
        self.pending = []
        self._next_pid = 0

    def close(self):
        self.sock.close()

    # -- sending ------------------------------------------------------------

    def send(self, packet):
        self.sock.sendall(encode(packet, 5))

    def send_bytes(self, data):
        self.sock.sendall(data)

    def connect(self, client_id, properties=None, clean_start=True, keepalive=60, will=None):
        """Send CONNECT and return the CONNACK."""
        self.send(Connect("MQTT", 5, clean_start, keepalive, client_id, None, None, will, properties or {}))
        return self.expect(Connack)

    def new_pid(self):
        self._next_pid = self._next_pid % 65535 + 1
        return self._next_pid

    def subscribe(self, topic_filter, qos=0, properties=None, **options):
        pid = self.new_pid()
        self.send(Subscribe(pid, [(topic_filter, SubOptions(qos, **options))], properties or {}))
        suback = self.expect(Suback)
        assert suback.packet_id == pid
        return suback

    def publish(self, topic, payload=b"", qos=0, properties=None, retain=False):
        pid = self.new_pid() if qos else 0
        self.send(Publish(topic, payload, qos, retain, False, pid, properties or {}))
        return pid

    # -- receiving ----------------------------------------------------------

    def read(self):
        """The next packet from the broker; ConnectionClosed at EOF."""
        while not self.pending:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                raise ConnectionClosed("connection closed by the broker")
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    def expect(self, cls):
        packet = self.read()
        assert isinstance(packet, cls), f"expected {cls.__name__}, got {packet!r}"
        return packet

    def expect_disconnect(self, reason_code):
        """The broker's DISCONNECT with this reason code, then the end of the connection."""
        packet = self.expect(Disconnect)
        assert packet.reason_code == reason_code, (
            f"DISCONNECT 0x{packet.reason_code:02X}, expected 0x{reason_code:02X}"
        )
        self.expect_closed()
        return packet

    def expect_closed(self):
        """The broker closes the connection without sending anything more."""
        try:
            packet = self.read()
        except ConnectionClosed:
            return
        raise AssertionError(f"expected the connection to close, got {packet!r}")
