"""TLS listeners (`listeners.ssl`) with certificates generated here: paho-mqtt and
mosquitto_sub as clients, client certificates, and clients that fail the
handshake while others keep being served."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys

import pytest
from broker_process import REPO
from certs import KEY_PASSWORD, make_certs
from mqtt_client import TestClient, unique_id

from nanomq_py.mqtt.codec import encode
from nanomq_py.mqtt.packets import Connect

TIMEOUT = 10


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def ssl_conf(certs, keyfile=None, **options):
    """A nanomq.conf with a TCP and an ssl listener on ephemeral ports."""
    lines = [
        'bind = "127.0.0.1:0"',
        f'certfile = "{certs.server_cert}"',
        f'keyfile = "{keyfile or certs.server_key}"',
        f'cacertfile = "{certs.ca}"',
    ]
    lines += [f"{key} = {value}" for key, value in options.items()]
    return 'listeners.tcp.bind = "127.0.0.1:0"\nlisteners.ssl {\n  ' + "\n  ".join(lines) + "\n}\n"


def tls_client(broker, certs, certfile=None, keyfile=None, **kwargs):
    """A connected TestClient on the broker's ssl listener."""
    client = TestClient(broker, **kwargs)
    client.paho.tls_set(
        ca_certs=str(certs.ca), certfile=certfile and str(certfile), keyfile=keyfile and str(keyfile)
    )
    host, port = broker.listeners["ssl"]
    client.connect(host=host, port=port)
    return client


def raw_tls_attempt(broker, certs, certfile=None, keyfile=None):
    """Handshake (maybe with a client certificate), send CONNECT, read the answer.

    Returns (local port, bytes read or the SSLError). In TLS 1.3 the server
    checks the client certificate after the client has finished its side, so
    a refusal shows up on the first read, not in the client's handshake."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    if certfile:
        context.load_cert_chain(str(certfile), str(keyfile))
    sock = socket.create_connection(broker.listeners["ssl"], timeout=TIMEOUT)
    local_port = sock.getsockname()[1]
    try:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(encode(Connect(client_id=unique_id("raw")), 4))
            return local_port, tls.recv(100)
    except ssl.SSLError as exc:
        return local_port, exc
    finally:
        sock.close()


def round_trip(subscriber, publisher, payload):
    topic = f"tls/{unique_id('topic')}"
    subscriber.subscribe(topic, 1)
    publisher.publish(topic, payload, qos=1)
    [message] = subscriber.expect()
    assert (message.topic, message.payload) == (topic, payload)


def closed(clients):
    for client in clients:
        client.disconnect()


def test_paho_over_tls_round_trip_with_encrypted_key(broker_factory, certs):
    broker = broker_factory(
        ssl_conf(certs, keyfile=certs.server_key_encrypted, key_password=f'"{KEY_PASSWORD}"')
    )
    subscriber = tls_client(broker, certs)
    publisher = tls_client(broker, certs, protocol="5")
    round_trip(subscriber, publisher, b"over TLS")
    plain = TestClient(broker)
    plain.connect()
    round_trip(subscriber, plain, b"from plain TCP to TLS")
    closed([subscriber, publisher, plain])


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto-clients not installed")
def test_mosquitto_sub_with_cafile_receives_from_plain_tcp(broker_factory, certs):
    broker = broker_factory(ssl_conf(certs))
    topic = f"tls/{unique_id('mosquitto')}"
    publisher = TestClient(broker)
    publisher.connect()
    # A retained message first: mosquitto_sub prints (and flushes) it once subscribed,
    # which is the cue to publish the live one (its debug output is not flushed).
    publisher.publish(topic, b"retained over TCP", qos=1, retain=True)
    _, port = broker.listeners["ssl"]
    sub = subprocess.Popen(
        ["mosquitto_sub", "--cafile", str(certs.ca), "-h", "localhost", "-p", str(port)]
        + ["-t", topic, "-q", "1", "-C", "2", "-W", str(TIMEOUT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert sub.stdout.readline() == "retained over TCP\n"
        publisher.publish(topic, b"live over TCP", qos=1)
        output, _ = sub.communicate(timeout=TIMEOUT)
        assert (sub.returncode, output) == (0, "live over TCP\n")
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    publisher.disconnect()


def test_required_client_certificate(broker_factory, certs):
    broker = broker_factory(ssl_conf(certs, verify_peer="true", fail_if_no_peer_cert="true"))
    subscriber = tls_client(broker, certs, certfile=certs.client_cert, keyfile=certs.client_key)

    port, answer = raw_tls_attempt(broker, certs)
    assert isinstance(answer, ssl.SSLError) or answer == b"", answer
    broker.wait_for_output(rf"TLS handshake with 127\.0\.0\.1:{port} failed")

    port, answer = raw_tls_attempt(broker, certs, certs.stranger_cert, certs.stranger_key)
    assert isinstance(answer, ssl.SSLError) or answer == b"", answer
    broker.wait_for_output(rf"TLS handshake with 127\.0\.0\.1:{port} failed")

    _, answer = raw_tls_attempt(broker, certs, certs.client_cert, certs.client_key)
    assert answer[:1] == b"\x20", answer  # CONNACK

    publisher = tls_client(broker, certs, certfile=certs.client_cert, keyfile=certs.client_key)
    round_trip(subscriber, publisher, b"still served")
    closed([subscriber, publisher])


def test_optional_client_certificate(broker_factory, certs):
    broker = broker_factory(ssl_conf(certs, verify_peer="true", fail_if_no_peer_cert="false"))
    _, answer = raw_tls_attempt(broker, certs)
    assert answer[:1] == b"\x20", answer  # no certificate: allowed
    _, answer = raw_tls_attempt(broker, certs, certs.client_cert, certs.client_key)
    assert answer[:1] == b"\x20", answer
    port, answer = raw_tls_attempt(broker, certs, certs.stranger_cert, certs.stranger_key)
    assert isinstance(answer, ssl.SSLError) or answer == b"", answer  # a certificate must be valid
    broker.wait_for_output(rf"TLS handshake with 127\.0\.0\.1:{port} failed")


def test_plaintext_client_on_tls_port_is_closed_alone(broker_factory, certs):
    broker = broker_factory(ssl_conf(certs))
    subscriber = tls_client(broker, certs)
    with socket.create_connection(broker.listeners["ssl"], timeout=TIMEOUT) as sock:
        port = sock.getsockname()[1]
        sock.sendall(encode(Connect(client_id=unique_id("plain")), 4))
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert not received.startswith(b"\x20"), received  # no CONNACK: at most a TLS alert, then EOF
    broker.wait_for_output(rf"TLS handshake with 127\.0\.0\.1:{port} failed")
    publisher = tls_client(broker, certs)
    round_trip(subscriber, publisher, b"unharmed")
    closed([subscriber, publisher])


def test_wrong_key_password_stops_the_start_naming_the_file(tmp_path, certs):
    conf = tmp_path / "nanomq.conf"
    conf.write_text(ssl_conf(certs, keyfile=certs.server_key_encrypted, key_password='"wrong"'))
    env = dict(os.environ, PYTHONPATH=str(REPO), NANOMQ_PID_FILE=str(tmp_path / "nanomq.pid"))
    result = subprocess.run(
        [sys.executable, "-m", "nanomq_py", "start", "--conf", str(conf)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode != 0
    assert "listeners.ssl" in result.stderr and str(certs.server_key_encrypted) in result.stderr, (
        result.stderr
    )
