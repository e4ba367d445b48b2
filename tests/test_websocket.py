"""WebSocket listeners (`listeners.ws`, `listeners.wss`): paho-mqtt and MQTT.js as
clients, a raw wsproto client for exact framing (several packets in one frame,
a packet split across frames, ping, close, text frames), and HTTP errors for
requests that are not a proper upgrade."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest
from broker_process import start_broker
from certs import make_certs
from mqtt_client import TestClient, unique_id
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection as WsFrames
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from nanomq_py.mqtt.codec import FrameReader, encode
from nanomq_py.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Puback,
    Publish,
    Suback,
    SubOptions,
    Subscribe,
    Will,
)
from nanomq_py.transport.websocket import binary_frame

TIMEOUT = 10
JS_DIR = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory, certs):
    """One broker with tcp, ws and wss listeners, shared by the module's tests."""
    conf = f"""
listeners.tcp.bind = "127.0.0.1:0"
listeners.ws.bind = "127.0.0.1:0/mqtt"
listeners.wss {{
  bind = "127.0.0.1:0/mqtt"
  certfile = "{certs.server_cert}"
  keyfile = "{certs.server_key}"
}}
"""
    proc = start_broker(tmp_path_factory.mktemp("broker"), conf)
    yield proc
    proc.stop()


class RawWsClient:
    """A WebSocket client over a plain socket, with wsproto: frames exactly as the test says."""

    def __init__(self, broker, path="/mqtt", subprotocols=("mqtt",), tls_ca=None):
        kind = "ws" if tls_ca is None else "wss"
        self.sock = socket.create_connection(broker.listeners[kind], timeout=TIMEOUT)
        if tls_ca is not None:
            context = ssl.create_default_context(cafile=str(tls_ca))
            self.sock = context.wrap_socket(self.sock, server_hostname="localhost")
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events = deque()
        self.reader = FrameReader(max_packet_size=1 << 24)
        self.packets = deque()
        self.sock.sendall(
            self.ws.send(Request(host="127.0.0.1", target=path, subprotocols=list(subprotocols)))
        )
        self.handshake = self.next_event()

    def next_event(self):
        while not self.events:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)  # None: EOF, wsproto reports close code 1006
            self.events.extend(self.ws.events())
        return self.events.popleft()

    def send_frames(self, *payloads):
        """Each payload in a binary frame of its own, all in one TCP write."""
        self.sock.sendall(b"".join(self.ws.send(Message(data=payload)) for payload in payloads))

    def send_fragmented(self, *parts):
        """One binary message in len(parts) frames: the first, then continuation frames."""
        last = len(parts) - 1
        frames = [
            self.ws.send(Message(data=part, message_finished=i == last)) for i, part in enumerate(parts)
        ]
        self.sock.sendall(b"".join(frames))

    def expect_packet(self):
        while not self.packets:
            event = self.next_event()
            assert isinstance(event, BytesMessage), event
            self.packets.extend(self.reader.feed(event.data))
        return self.packets.popleft()

    def expect_close(self):
        """The next event is a close frame (its code) and then the server closes TCP."""
        event = self.next_event()
        assert isinstance(event, CloseConnection), event
        assert self.sock.recv(1) == b""
        return event.code

    def close(self):
        self.sock.close()


def http_request(broker, request):
    """Send raw HTTP to the ws port; (status code, headers, body) of the reply, read until EOF."""
    with socket.create_connection(broker.listeners["ws"], timeout=TIMEOUT) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    assert len(body) == int(headers["content-length"]), reply
    return int(status_line.split()[1]), headers, body


def paho_ws(broker, kind="ws", certs=None, **kwargs):
    client = TestClient(broker, transport="websockets", **kwargs)
    client.paho.ws_set_options(path="/mqtt")
    if kind == "wss":
        client.paho.tls_set(ca_certs=str(certs.ca))
    host, port = broker.listeners[kind]
    client.connect(host=host, port=port)
    return client


def tcp_client(broker):
    client = TestClient(broker)
    client.connect()
    return client


# -- the outgoing framing written here matches wsproto's --------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_binary_frame_matches_wsproto(size):
    payload = os.urandom(size)
    assert binary_frame(payload) == WsFrames(ConnectionType.SERVER).send(Message(data=payload))


# -- real clients -------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["3.1", "3.1.1", "5"])
def test_paho_over_websocket_round_trip(broker, protocol):
    subscriber = paho_ws(broker, protocol=protocol)
    publisher = paho_ws(broker, protocol=protocol)
    topic = f"ws/{unique_id('topic')}"
    subscriber.subscribe(topic, 1)
    payloads = [b"small", os.urandom(300), os.urandom(70_000)]  # 7-, 16- and 64-bit frame lengths
    for payload in payloads:
        publisher.publish(topic, payload, qos=1)
    assert [m.payload for m in subscriber.expect(len(payloads))] == payloads
    subscriber.disconnect()
    publisher.disconnect()


def test_paho_over_wss_round_trip_with_tcp_client(broker, certs):
    subscriber = paho_ws(broker, "wss", certs)
    publisher = tcp_client(broker)
    topic = f"wss/{unique_id('topic')}"
    subscriber.subscribe(topic, 1)
    publisher.publish(topic, b"tcp to wss", qos=1)
    [message] = subscriber.expect()
    assert message.payload == b"tcp to wss"
    publisher.subscribe(topic + "/back", 1)  # and the other way
    subscriber.publish(topic + "/back", b"wss to tcp", qos=1)
    [message] = publisher.expect()
    assert message.payload == b"wss to tcp"
    subscriber.disconnect()
    publisher.disconnect()


@pytest.mark.skipif(
    shutil.which("node") is None or not (JS_DIR / "node_modules" / "mqtt").is_dir(),
    reason="node or MQTT.js (npm install in tests/js) missing",
)
def test_mqtt_js_over_websocket(broker):
    host, port = broker.listeners["ws"]
    topic = f"js/{unique_id('topic')}"
    script = """
const mqtt = require("mqtt");
const [url, topic] = process.argv.slice(1);
const client = mqtt.connect(url, {protocolVersion: 4, connectTimeout: 5000, reconnectPeriod: 0});
const fail = (e) => { console.error(String(e)); process.exit(1); };
client.on("error", fail);
setTimeout(() => fail("timeout"), 8000).unref();
client.on("connect", () => client.subscribe(topic, {qos: 1}, (err) => err ? fail(err) :
    client.publish(topic, "from MQTT.js", {qos: 1})));
client.on("message", (t, payload) => {
    console.log(JSON.stringify({topic: t, payload: payload.toString()}));
    client.end(false, () => process.exit(0));
});
"""
    result = subprocess.run(
        ["node", "-e", script, f"ws://{host}:{port}/mqtt", topic],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, NODE_PATH=str(JS_DIR / "node_modules")),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"topic": topic, "payload": "from MQTT.js"}


# -- framing ------------------------------------------------------------------------------------


def test_several_packets_in_one_frame(broker):
    raw = RawWsClient(broker)
    assert isinstance(raw.handshake, AcceptConnection) and raw.handshake.subprotocol == "mqtt"
    topic = f"ws/{unique_id('batch')}"
    batch = b"".join(
        encode(packet, 4)
        for packet in (
            Connect(client_id=unique_id("raw")),
            Subscribe(1, [(topic, SubOptions(1))]),
            Publish(topic, b"in one frame", qos=1, packet_id=2),
        )
    )
    raw.send_frames(batch)
    assert raw.expect_packet() == Connack(False, 0)
    assert raw.expect_packet() == Suback(1, [1])
    rest = [raw.expect_packet(), raw.expect_packet()]
    assert Puback(2) in rest
    [echo] = [p for p in rest if isinstance(p, Publish)]
    assert (echo.topic, echo.payload, echo.qos) == (topic, b"in one frame", 1)
    raw.close()


def test_packet_split_across_frames(broker):
    watcher = tcp_client(broker)
    topic = f"ws/{unique_id('split')}"
    watcher.subscribe(topic, 1)
    raw = RawWsClient(broker)
    connect = encode(Connect(client_id=unique_id("raw")), 4)
    raw.send_frames(connect[:1], connect[1:5], connect[5:])  # even the fixed header is split
    assert raw.expect_packet() == Connack(False, 0)

    first = encode(Publish(topic, b"fragmented message", qos=1, packet_id=1), 4)
    second = encode(Publish(topic, b"straddles frames", qos=1, packet_id=2), 4)
    raw.send_fragmented(first[:3], first[3:10], first[10:])  # continuation frames
    raw.send_frames(second[:4], second[4:])
    tail_and_head = encode(Publish(topic, b"tail and head", qos=1, packet_id=3), 4)
    raw.send_frames(tail_and_head[:6], tail_and_head[6:] + encode(Disconnect(), 4))  # ends with DISCONNECT
    assert [raw.expect_packet() for _ in range(3)] == [Puback(1), Puback(2), Puback(3)]
    assert [m.payload for m in watcher.expect(3)] == [
        b"fragmented message",
        b"straddles frames",
        b"tail and head",
    ]
    raw.close()
    watcher.disconnect()


# -- control frames -----------------------------------------------------------------------------


def connected_raw_client(broker, will_topic=None):
    raw = RawWsClient(broker)
    will = Will(will_topic, b"gone", qos=1) if will_topic else None
    raw.sock.sendall(raw.ws.send(Message(data=encode(Connect(client_id=unique_id("raw"), will=will), 4))))
    assert raw.expect_packet() == Connack(False, 0)
    return raw


def test_ping_is_answered_with_pong(broker):
    raw = connected_raw_client(broker)
    raw.sock.sendall(raw.ws.send(Ping(b"are you there")))
    event = raw.next_event()
    assert isinstance(event, Pong) and event.payload == b"are you there"
    raw.close()


def test_close_frame_after_disconnect_in_one_write_ends_cleanly(broker):
    """The DISCONNECT in front of the close frame is handled first: no will is sent."""
    watcher = tcp_client(broker)
    publisher = tcp_client(broker)
    will_topic = f"ws/{unique_id('will')}"
    watcher.subscribe(will_topic, 1)
    raw = connected_raw_client(broker, will_topic)
    raw.sock.sendall(
        raw.ws.send(Message(data=encode(Disconnect(), 4))) + raw.ws.send(CloseConnection(1000, "bye"))
    )
    assert raw.expect_close() == 1000
    assert watcher.received_before_sync(publisher) == []
    raw.close()
    watcher.disconnect()
    publisher.disconnect()


def test_close_frame_without_disconnect_sends_the_will(broker):
    watcher = tcp_client(broker)
    will_topic = f"ws/{unique_id('will')}"
    watcher.subscribe(will_topic, 1)
    raw = connected_raw_client(broker, will_topic)
    raw.sock.sendall(raw.ws.send(CloseConnection(1001)))
    assert raw.expect_close() == 1001  # echoed
    [message] = watcher.expect()
    assert (message.topic, message.payload) == (will_topic, b"gone")
    raw.close()
    watcher.disconnect()


def test_broker_closing_sends_a_close_frame(broker):
    raw = connected_raw_client(broker)
    raw.send_frames(encode(Connect(client_id=unique_id("again")), 4))  # a second CONNECT: protocol error
    assert raw.expect_close() == 1000
    raw.close()


def test_wss_close_by_the_broker_sends_a_close_frame_inside_tls(broker, certs):
    raw = RawWsClient(broker, tls_ca=certs.ca)
    assert isinstance(raw.handshake, AcceptConnection) and raw.handshake.subprotocol == "mqtt"
    raw.send_frames(encode(Connect(client_id=unique_id("wss")), 4))
    assert raw.expect_packet() == Connack(False, 0)
    raw.send_frames(encode(Connect(client_id=unique_id("again")), 4))
    assert raw.expect_close() == 1000  # then close_notify: the TLS socket reads b""
    raw.close()


def test_text_frame_is_refused_with_1003(broker):
    raw = connected_raw_client(broker)
    raw.sock.sendall(raw.ws.send(TextMessage("not MQTT")))
    assert raw.expect_close() == 1003
    raw.close()


def test_unmasked_frame_is_a_protocol_error(broker):
    raw = connected_raw_client(broker)
    raw.sock.sendall(binary_frame(encode(Disconnect(), 4)))  # a server-style frame: clients must mask
    assert raw.expect_close() == 1002
    broker.wait_for_output(r"WebSocket from 127\.0\.0\.1:\d+ broke the protocol")
    raw.close()


# -- the upgrade --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["mqtt"], "mqtt"), (["mqttv3.1"], "mqttv3.1"), (["foo", "mqtt"], "mqtt"), ([], None)],
)
def test_subprotocol_is_echoed(broker, offered, chosen):
    raw = RawWsClient(broker, subprotocols=offered)
    assert isinstance(raw.handshake, AcceptConnection)
    assert raw.handshake.subprotocol == chosen
    raw.send_frames(encode(Connect(client_id=unique_id("raw")), 4))
    assert raw.expect_packet() == Connack(False, 0)
    raw.close()


def test_unknown_subprotocol_is_refused(broker):
    raw = RawWsClient(broker, subprotocols=["amqp"])
    assert isinstance(raw.handshake, RejectConnection) and raw.handshake.status_code == 400
    raw.close()


UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n\r\n"
)


def test_wrong_path_gets_404(broker):
    status, headers, body = http_request(broker, UPGRADE.format(path="/elsewhere").encode())
    assert status == 404
    assert headers["connection"] == "close"
    assert b"/elsewhere" in body
    broker.wait_for_output(r"WebSocket upgrade from 127\.0\.0\.1:\d+ refused with 404")


def test_query_string_is_not_part_of_the_path(broker):
    raw = RawWsClient(broker, path="/mqtt?token=abc")
    assert isinstance(raw.handshake, AcceptConnection)
    raw.close()


def test_plain_http_get_gets_an_http_error(broker):
    watcher = paho_ws(broker)  # a WebSocket client connected meanwhile is unaffected
    status, _, body = http_request(broker, b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status in (400, 426)
    assert b"Upgrade" in body
    status, _, _ = http_request(broker, b"POST /mqtt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status in (400, 405, 426)
    status, _, _ = http_request(broker, b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")  # MQTT, not HTTP
    assert status == 400
    topic = f"ws/{unique_id('after')}"
    watcher.subscribe(topic, 1)
    watcher.publish(topic, b"still here", qos=1)
    assert watcher.expect()[0].payload == b"still here"
    watcher.disconnect()


def test_wrong_websocket_version_gets_426(broker):
    request = UPGRADE.format(path="/mqtt").replace("Version: 13", "Version: 8").encode()
    status, headers, _ = http_request(broker, request)
    assert status == 426
    assert headers["sec-websocket-version"] == "13"


def test_tls_and_websocket_code_is_loaded_only_when_configured(tmp_path):
    """A tcp-only server imports neither ssl nor wsproto/h11 (memory on a small device)."""
    probe = """
import sys
from nanomq_py.server import Server
from nanomq_py.settings import ListenerSettings, Settings
server = Server(Settings(listeners=[ListenerSettings(host="127.0.0.1", port=0)]))
server.start()
server.stop()
print(sorted(m for m in ("ssl", "wsproto", "h11") if m in sys.modules))
"""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=30
    )
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr
