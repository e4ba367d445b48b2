"""Hostile input against a live broker process, while well-behaved paho
clients keep exchanging QoS 1 messages through it.

Frames come from a seeded random generator (valid packets of every type and
version, mutated: bit flips, byte changes, insertions, deletions,
truncations, forged remaining lengths, forged fixed headers; and plain
noise) and from hypothesis. Each fuzzing connection optionally sends a valid
CONNECT first, so the frames reach the connected-state handlers too, then
its frames, then FIN, and reads until the broker closes it.

Every test checks that the broker is still up, that the well-behaved
subscriber got every message the well-behaved publisher sent, in order, and
that the broker's resident memory (VmRSS) comes back near its baseline.

NANOMQ_FUZZ_FRAMES (default 3000) sets the number of seeded random frames,
NANOMQ_FUZZ_EXAMPLES (default 300) the number of hypothesis connections,
NANOMQ_FUZZ_SEED (default 20240601) the seed; a long run:

    NANOMQ_FUZZ_FRAMES=100000 python -m pytest -s tests/test_fuzz_live.py -k frames
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time

import pytest
from broker_process import start_broker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_client import TestClient, unique_id
from raw_client import RawClient

from nanomq_py.mqtt import properties as p
from nanomq_py.mqtt.codec import encode
from nanomq_py.mqtt.packets import (
    Auth,
    Connect,
    Disconnect,
    Pingreq,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    SubOptions,
    Subscribe,
    Unsubscribe,
    Will,
)

FRAMES = int(os.environ.get("NANOMQ_FUZZ_FRAMES", "3000"))
EXAMPLES = int(os.environ.get("NANOMQ_FUZZ_EXAMPLES", "300"))
SEED = int(os.environ.get("NANOMQ_FUZZ_SEED", "20240601"))
WORKERS = 8
CONNECT_TIMEOUT = 2
OUTGOING_LIMIT = 1024 * 1024
RSS_SLACK_KB = 20 * 1024


def _samples():
    """Valid encodings of every packet type a client may send, in each version."""
    v5_props = {p.USER_PROPERTY: [("k", "v")], p.MESSAGE_EXPIRY_INTERVAL: 30, p.CONTENT_TYPE: "text/plain"}
    out = []
    for version in (3, 4, 5):
        props = v5_props if version == 5 else {}
        name = "MQIsdp" if version == 3 else "MQTT"
        will = Will("fuzz/will", b"gone", 1, False, {p.WILL_DELAY_INTERVAL: 1} if version == 5 else {})
        packets = [
            Connect(name, version, True, 30, "fz-sample", "user", b"pass", will),
            Connect(name, version, False, 0, "fz-sample-2"),
            Publish("fuzz/a", b"payload", 0, False, False, 0, props),
            Publish("fuzz/b/c", b"x" * 40, 1, True, False, 7, props),
            Publish("fuzz/q2", b"two", 2, False, True, 8, props),
            Puback(7),
            Pubrec(8),
            Pubrel(8),
            Pubcomp(8),
            Subscribe(9, [("fuzz/#", SubOptions(1)), ("$share/g/fuzz/+", SubOptions(2))]),
            Unsubscribe(10, ["fuzz/#", "nothing"]),
            Pingreq(),
            Disconnect(),
        ]
        if version == 5:
            packets.append(Auth(0x18, {p.AUTHENTICATION_METHOD: "m"}))
        out.extend(encode(packet, version) for packet in packets)
    return out


SAMPLES = _samples()


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def random_frame(rng):
    """One hostile frame: mostly a mutated valid packet, sometimes noise or a forged frame."""
    kind = rng.random()
    if kind < 0.15:
        return rng.randbytes(rng.randint(1, 200))
    if kind < 0.3:
        body = rng.randbytes(rng.randint(0, 120))
        return bytes([rng.randrange(256)]) + _varint(len(body)) + body
    data = bytearray(rng.choice(SAMPLES))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 2:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and len(data) > 2:
            at = rng.randrange(1, len(data))
            del data[at : at + rng.randint(1, 8)]
        elif op == 4 and len(data) > 1:
            del data[rng.randrange(1, len(data)) :]
        elif op == 5:
            forged = rng.choice([0, 1, 127, 128, 16383, 16384, 2_000_000, 268_435_455])
            length = rng.choice([_varint(forged), b"\xff\xff\xff\xff\x7f", b"\x80"])
            data = bytearray(data[:1] + length + data[2:])
        else:
            data[0] = rng.randrange(256)
        if not data:
            data = bytearray(b"\x00")
    return bytes(data)


def prelude(version, tag):
    """A valid CONNECT (clean start) in `version`, or nothing for version None."""
    if version is None:
        return b""
    name = "MQIsdp" if version == 3 else "MQTT"
    return encode(Connect(name, version, True, 30, f"fz-{tag}"[:23]), version)


def send_connection(broker, data):
    """One fuzzing connection: send, FIN, read until the broker closes it."""
    try:
        with socket.create_connection((broker.host, broker.port), timeout=10) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
            except OSError:
                pass  # the broker cut a connection that broke the protocol: expected
    except OSError as exc:
        raise AssertionError(f"the broker stopped accepting connections: {exc}") from exc


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def wait_for_rss_below(broker, limit_kb, timeout=20):
    """Poll VmRSS until it is below limit_kb (the broker closes fuzz sockets and
    lingering connections on its one-second sweep); returns the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        current = rss_kb(broker.proc.pid)
        if current < limit_kb or time.monotonic() > deadline:
            return current
        time.sleep(0.25)


class LiveTraffic:
    """A paho publisher sending numbered QoS 1 messages, each once the one
    before is acknowledged, and a paho subscriber that must receive all of them."""

    def __init__(self, broker):
        self.topic = unique_id("live/")
        self.subscriber = TestClient(broker)
        self.subscriber.connect()
        self.subscriber.subscribe(self.topic, 1)
        self.publisher = TestClient(broker)
        self.publisher.connect()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish, daemon=True)
        self._thread.start()

    def _publish(self):
        while not self._stop.wait(0.002):  # paced, so the fuzzers get the test process's CPU
            self.publisher.publish(self.topic, str(self.sent).encode(), qos=1)
            self.sent += 1

    def finish(self):
        """Stop publishing and check that every message arrived, in order."""
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the publisher got stuck"
        received = [m for m in self.subscriber.expect(self.sent) if m.topic == self.topic]
        assert [int(m.payload) for m in received] == list(range(self.sent))
        self.subscriber.disconnect()
        self.publisher.disconnect()
        return self.sent


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    conf = f"""
mqtt {{
  connect_timeout = {CONNECT_TIMEOUT}s
  max_outgoing_bytes = {OUTGOING_LIMIT}
  session_expiry_interval = 5s
}}
"""
    proc = start_broker(tmp_path_factory.mktemp("fuzz"), conf, log_level="error")
    warm = random.Random(SEED - 1)
    for index in range(50):
        send_connection(proc, prelude(4, f"warm{index}") + random_frame(warm))
    yield proc
    assert proc.proc.poll() is None, "the broker died:\n" + proc.output()
    proc.stop()
    assert "Traceback" not in proc.output()


def _assert_alive(broker):
    client = TestClient(broker)
    client.connect()
    topic = unique_id("alive/")
    client.subscribe(topic, 1)
    client.publish(topic, b"still here", qos=1)
    assert client.expect(1)[0].payload == b"still here"
    client.disconnect()


def test_seeded_random_frames(target):
    baseline = rss_kb(target.proc.pid)
    live = LiveTraffic(target)
    per_worker = FRAMES // WORKERS
    counts = [0] * WORKERS
    connections = [0] * WORKERS

    def worker(index):
        rng = random.Random(SEED + index)
        sent = 0
        connection = 0
        while sent < per_worker:
            # few frames per connection: the broker stops reading one at its first protocol error
            frames = [random_frame(rng) for _ in range(min(rng.randint(1, 4), per_worker - sent))]
            version = rng.choice([None, 3, 4, 5, 5])
            send_connection(target, prelude(version, f"{index}-{connection}") + b"".join(frames))
            sent += len(frames)
            connection += 1
        counts[index] = sent
        connections[index] = connection

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    peak = rss_kb(target.proc.pid)
    delivered = live.finish()
    _assert_alive(target)
    after = wait_for_rss_below(target, baseline + RSS_SLACK_KB)
    print(
        f"\nfuzz: {sum(counts)} random frames (seed {SEED}) on {sum(connections)} connections in {took:.1f} s; "
        f"{delivered} live messages all "
        f"delivered; broker VmRSS baseline {baseline} kB, peak {peak} kB, after {after} kB"
    )
    assert sum(counts) == per_worker * WORKERS
    assert after < baseline + RSS_SLACK_KB


_frame = st.one_of(
    st.binary(min_size=1, max_size=100),
    st.builds(
        lambda first, body: bytes([first]) + _varint(len(body)) + body,
        st.integers(0, 255),
        st.binary(max_size=100),
    ),
    st.builds(
        lambda sample, at, junk: sample[:at] + junk + sample[at + len(junk) :],
        st.sampled_from(SAMPLES),
        st.integers(0, 64),
        st.binary(min_size=1, max_size=6),
    ),
)
_connection = st.tuples(st.sampled_from([None, 3, 4, 5]), st.lists(_frame, min_size=1, max_size=8))


def test_hypothesis_frames(target):
    baseline = rss_kb(target.proc.pid)
    live = LiveTraffic(target)
    frames = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(_connection)
    def one_connection(connection):
        version, packets = connection
        frames.append(len(packets))
        send_connection(target, prelude(version, f"h{len(frames)}") + b"".join(packets))

    one_connection()
    delivered = live.finish()
    _assert_alive(target)
    after = wait_for_rss_below(target, baseline + RSS_SLACK_KB)
    print(
        f"\nhypothesis: {sum(frames)} frames on {len(frames)} connections; {delivered} live messages delivered"
    )
    assert after < baseline + RSS_SLACK_KB


def _closed_within(sock, seconds):
    """True if the broker closes sock within `seconds` (anything it sends is discarded)."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not sock.recv(4096):
                return True
    except (TimeoutError, ConnectionError):
        return False
    return False


def test_slowloris_connects_are_cut_at_connect_timeout(target):
    live = LiveTraffic(target)
    connect_bytes = prelude(4, "slowloris-never-done")[:-1]  # never the last byte
    sockets = [socket.create_connection((target.host, target.port)) for _ in range(50)]
    opened = time.monotonic()
    stop = threading.Event()

    def drip():
        for index in range(len(connect_bytes)):
            for sock in sockets:
                try:
                    sock.send(connect_bytes[index : index + 1])
                except OSError:
                    pass
            if stop.wait(0.1):
                return

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        for sock in sockets:
            remaining = opened + CONNECT_TIMEOUT + 3 - time.monotonic()
            assert _closed_within(sock, max(remaining, 0.1)), (
                "a slowloris connection outlived connect_timeout"
            )
    finally:
        stop.set()
        dripper.join()
        for sock in sockets:
            sock.close()
    assert live.finish() > 0


def test_half_open_connections_end_by_keepalive_and_half_closed_ones_send_their_wills(target):
    will_topic = unique_id("wills/")
    watcher = TestClient(target)
    watcher.connect()
    watcher.subscribe(will_topic + "/#", 1)
    silent = []
    for _ in range(20):
        client = RawClient(target)
        assert client.connect(unique_id("silent"), keepalive=1).reason_code == 0
        silent.append(client)  # connected, then never a byte again, never a FIN
    half_closed = []
    for index in range(20):
        client = RawClient(target)
        will = Will(f"{will_topic}/{index}", b"gone", 1)
        assert client.connect(unique_id("half"), will=will).reason_code == 0
        client.sock.shutdown(socket.SHUT_WR)
        half_closed.append(client)
    wills = sorted(m.topic for m in watcher.expect(20))
    assert wills == sorted(f"{will_topic}/{i}" for i in range(20))
    for client in silent + half_closed:
        client.wait_closed(timeout=5)  # keepalive 1 s x 1.5 on a 1 s sweep
        client.close()
    watcher.disconnect()


def test_a_connect_flood_is_served_and_released(target):
    baseline = rss_kb(target.proc.pid)
    live = LiveTraffic(target)
    flood = []
    lock = threading.Lock()

    def open_many(count, tag):
        for index in range(count):
            sock = socket.create_connection((target.host, target.port), timeout=10)
            sock.sendall(prelude(4, f"fl{tag}-{index}"))
            with lock:
                flood.append(sock)

    openers = [threading.Thread(target=open_many, args=(50, t)) for t in range(10)]
    for thread in openers:
        thread.start()
    for thread in openers:
        thread.join()
    assert len(flood) == 500
    for sock in flood:
        assert sock.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
    peak = rss_kb(target.proc.pid)
    for sock in flood:
        sock.close()
    assert live.finish() > 0
    _assert_alive(target)
    after = wait_for_rss_below(target, baseline + RSS_SLACK_KB)
    print(f"\nconnect flood: 500 connections, VmRSS baseline {baseline} kB, peak {peak} kB, after {after} kB")
    assert after < baseline + RSS_SLACK_KB


def test_a_subscriber_that_never_reads_costs_at_most_max_outgoing_bytes(target):
    topic = unique_id("flood/")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((target.host, target.port))
    stalled.sendall(prelude(4, unique_id("stalled")))
    stalled.sendall(encode(Subscribe(1, [(topic, SubOptions(0))]), 4))
    reader = TestClient(target)
    reader.connect()
    reader.subscribe(topic, 1)
    publisher = TestClient(target)
    publisher.connect()
    assert stalled.recv(4) == b"\x20\x02\x00\x00"  # CONNACK; the SUBACK is never read
    baseline = rss_kb(target.proc.pid)
    payload = b"z" * 10_000
    peak = baseline
    for index in range(2000):  # 20 MB through the broker
        publisher.publish(topic, payload, qos=1, wait=index % 50 == 49)
        if index % 200 == 199:
            peak = max(peak, rss_kb(target.proc.pid))
    publisher.publish(topic, payload, qos=1)
    got = reader.expect(2001)
    assert all(m.payload == payload for m in got)
    peak = max(peak, rss_kb(target.proc.pid))
    print(f"\nstalled subscriber: 20 MB published, VmRSS baseline {baseline} kB, peak {peak} kB")
    assert peak < baseline + RSS_SLACK_KB
    stalled.close()
    reader.disconnect()
    publisher.disconnect()


def test_sockets_without_connect_cannot_make_the_broker_buffer_megabytes(target):
    baseline = rss_kb(target.proc.pid)
    hostile = []
    for _ in range(20):
        sock = socket.create_connection((target.host, target.port), timeout=10)
        try:
            sock.sendall(b"\x10" + _varint(9_000_000) + bytes(600_000))  # a 9 MB "CONNECT"
        except OSError:
            pass  # cut off while sending: the point
        hostile.append(sock)
    for sock in hostile:
        assert _closed_within(sock, 5)
        sock.close()
    assert rss_kb(target.proc.pid) < baseline + RSS_SLACK_KB
    client = TestClient(target)  # once connected, max_packet_size (10 MB) applies
    client.connect()
    topic = unique_id("big/")
    client.subscribe(topic, 1)
    client.publish(topic, bytes(2_000_000), qos=1)
    assert len(client.expect(1)[0].payload) == 2_000_000
    client.disconnect()
