"""NanoMQ's HTTP API (v4) on `http_server { }`: a real broker process, real MQTT
clients (paho), real HTTP requests (urllib) with basic authentication."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest
from broker_process import REPO, start_broker
from helpers_cli import run_nanomq, write_conf
from mqtt_client import unique_id, v5_properties

API_CONF = """
http_server {
    bind = "127.0.0.1"
    port = 0
    limit_conn = 4
    username = admin
    password = "s3cret:pass"
}
"""
AUTH = ("admin", "s3cret:pass")
TIMEOUT = 10


class Api:
    """The API of one broker process: call(method, path, body) -> (HTTP status, JSON)."""

    def __init__(self, proc):
        match = proc.wait_for_output(r"NanoMQ HTTP API listening on http://127\.0\.0\.1:(\d+)")
        self.base = f"http://127.0.0.1:{match.group(1)}"

    def call(self, method, path, body=None, auth=AUTH, raw=None, headers=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                self.last_headers = error.headers
                return error.code, json.loads(error.read())

    def get(self, path):
        status, body = self.call("GET", path)
        assert status == 200, body
        assert body["code"] == 0
        return body

    def publish(self, **fields):
        return self.call("POST", "/api/v4/mqtt/publish", fields)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One broker with the API for the module; `client_factory` (conftest) connects to it."""
    proc = start_broker(tmp_path_factory.mktemp("api"), API_CONF)
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def api(broker):
    return Api(broker)


def connected(client_factory, username=None, keepalive=60, **kwargs):
    client = client_factory(**kwargs)
    if username is not None:
        client.paho.username_pw_set(username)
    client.connect(keepalive=keepalive)
    return client


def disconnect_and_wait(client_factory, client):
    """Disconnect `client` and wait until the broker has settled it: its offline
    presence message on $SYS is published after the session is kept or ended."""
    watcher = connected(client_factory)
    watcher.subscribe(f"$SYS/brokers/client_status/{client.client_id}", 0)
    client.disconnect()
    while b'"offline"' not in watcher.expect()[0].payload:
        pass


def entry_of(entries, client_id):
    found = [entry for entry in entries if entry.get("client_id", entry.get("clientid")) == client_id]
    assert len(found) == 1, entries
    return found[0]


# --------------------------------------------------------------------------- endpoints, broker, node


def test_the_endpoint_list_names_every_served_path(api):
    for path in ("/api/v4", "/api/v4/"):
        data = api.get(path)["data"]
        names = {item["name"]: (item["method"], item["path"]) for item in data}
        assert names["list_brokers"] == ("GET", "/brokers/")
        assert names["mqtt_publish"] == ("POST", "/mqtt/publish")
        assert all(set(item) == {"path", "name", "method", "descr"} for item in data)


def test_brokers_and_nodes(api, client_factory):
    """Runs before any other test of the module connects a client: the counts are exact."""
    (broker,) = api.get("/api/v4/brokers")["data"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", broker["datetime"])
    assert re.fullmatch(r"\d+ Hours, \d+ minutes, \d+ seconds", broker["uptime"])
    assert broker["node_status"] == "Running" and broker["version"] and broker["sysdescr"]
    assert api.get("/api/v4/nodes/")["data"][0]["connections"] == 0
    connected(client_factory)
    connected(client_factory)
    (node,) = api.get("/api/v4/nodes")["data"]
    assert node["connections"] == 2
    assert node["node_status"] == "Running" and node["version"] == broker["version"]


# --------------------------------------------------------------------------- clients


def test_clients_list_shows_a_connected_client_with_nanomq_fields(api, client_factory):
    alice = connected(client_factory, "alice-list", keepalive=42)
    v5 = connected(client_factory, protocol="5")
    v31 = connected(client_factory, protocol="3.1")
    data = api.get("/api/v4/clients")["data"]
    entry = entry_of(data, alice.client_id)
    assert entry == {
        "client_id": alice.client_id,
        "username": "alice-list",
        "keepalive": 42,
        "ipv4": "127.0.0.1",
        "port": alice.paho.socket().getsockname()[1],
        "conn_state": "connected",
        "clean_start": True,
        "proto_name": "MQTT",
        "proto_ver": 4,
        "connected_at": entry["connected_at"],
    }
    assert isinstance(entry["connected_at"], int) and entry["connected_at"] > 1_600_000_000_000
    assert (entry_of(data, v5.client_id)["proto_ver"], entry_of(data, v5.client_id)["username"]) == (5, "")
    assert (entry_of(data, v31.client_id)["proto_name"], entry_of(data, v31.client_id)["proto_ver"]) == (
        "MQIsdp",
        3,
    )


def test_clients_query_filters(api, client_factory):
    v4 = connected(client_factory, "filter-user")
    v5 = connected(client_factory, "filter-user", protocol="5")
    ids = {v4.client_id, v5.client_id}

    def listed(query):
        return {e["client_id"] for e in api.get(f"/api/v4/clients?{query}")["data"]} & ids

    assert listed("username=filter-user") == ids
    assert listed(f"clientid={v5.client_id}") == {v5.client_id}
    assert listed("username=filter-user&proto_ver=5") == {v5.client_id}
    assert listed("username=filter-user&proto_ver=4&conn_state=connected&clean_start=true") == {v4.client_id}
    assert listed("username=filter-user&conn_state=disconnected") == set()
    assert listed("username=filter-user&clean_start=false") == set()
    status, body = api.call("GET", "/api/v4/clients?conn_state=sleeping")
    assert (status, body["code"]) == (400, 108)
    status, body = api.call("GET", "/api/v4/clients?proto_ver=five")
    assert (status, body["code"]) == (400, 108)


def test_one_client_by_id_and_by_username_and_an_unknown_one(api, client_factory):
    odd = connected(client_factory, "by-name", client_id=unique_id("odd/id é"))
    other = connected(client_factory, "by-name")
    (entry,) = api.get(f"/api/v4/clients/{quote(odd.client_id, safe='')}")["data"]
    assert (entry["client_id"], entry["conn_state"]) == (odd.client_id, "connected")
    by_name = api.get("/api/v4/clients/username/by-name")["data"]
    assert {e["client_id"] for e in by_name} == {odd.client_id, other.client_id}
    status, body = api.call("GET", "/api/v4/clients/nobody-here")
    assert (status, body["code"]) == (404, 112)


def test_a_kept_session_is_listed_as_disconnected(api, client_factory):
    client = client_factory(protocol="5", clean=False)
    client.connect(properties=v5_properties(1, SessionExpiryInterval=300))
    client.subscribe("kept/topic", 1)
    disconnect_and_wait(client_factory, client)
    (entry,) = api.get(f"/api/v4/clients/{client.client_id}")["data"]
    assert (entry["conn_state"], entry["clean_start"]) == ("disconnected", False)
    listed = api.get(f"/api/v4/clients?conn_state=disconnected&clientid={client.client_id}")["data"]
    assert [e["client_id"] for e in listed] == [client.client_id]
    subs = api.get(f"/api/v4/subscriptions/{client.client_id}")["data"]
    assert subs == [{"clientid": client.client_id, "topic": "kept/topic", "qos": 1}]


# --------------------------------------------------------------------------- subscriptions


def test_subscriptions_show_filters_and_qos(api, client_factory):
    client = connected(client_factory)
    client.subscribe("sub/+/x", 1)
    client.subscribe("sub/two", 2)
    client.subscribe("$share/grp/sub/shared", 0)
    expected = [
        {"clientid": client.client_id, "topic": "sub/+/x", "qos": 1},
        {"clientid": client.client_id, "topic": "sub/two", "qos": 2},
        {"clientid": client.client_id, "topic": "$share/grp/sub/shared", "qos": 0},
    ]
    assert api.get(f"/api/v4/subscriptions/{client.client_id}")["data"] == expected
    assert api.get(f"/api/v4/subscriptions?clientid={client.client_id}")["data"] == expected
    everyone = api.get("/api/v4/subscriptions")["data"]
    assert all(item in everyone for item in expected)
    assert api.get(f"/api/v4/subscriptions?clientid={client.client_id}&qos=2")["data"] == [expected[1]]
    assert api.get(f"/api/v4/subscriptions?clientid={client.client_id}&share=grp")["data"] == [expected[2]]
    assert api.get(f"/api/v4/subscriptions?topic={quote('sub/+/x')}")["data"] == [expected[0]]
    client.unsubscribe("sub/two")
    assert api.get(f"/api/v4/subscriptions/{client.client_id}")["data"] == [expected[0], expected[2]]
    status, body = api.call("GET", "/api/v4/subscriptions/nobody-here")
    assert (status, body["code"]) == (404, 112)


# --------------------------------------------------------------------------- publish


def test_publish_reaches_a_subscribed_client(api, client_factory):
    subscriber = connected(client_factory)
    subscriber.subscribe("api/pub/+", 1)
    status, body = api.publish(
        topic="api/pub/1", payload="Hello World", qos=1, retain=False, clientid="example"
    )
    assert (status, body) == (200, {"code": 0})
    (message,) = subscriber.expect()
    assert (message.topic, message.payload, message.qos, message.retain) == (
        "api/pub/1",
        b"Hello World",
        1,
        False,
    )
    status, body = api.publish(topics="api/pub/2,api/pub/3", payload="aGk=", encoding="base64")
    assert (status, body) == (200, {"code": 0})
    assert sorted((m.topic, m.payload, m.qos) for m in subscriber.expect(2)) == [
        ("api/pub/2", b"hi", 0),
        ("api/pub/3", b"hi", 0),
    ]


def test_published_retained_message_and_v5_properties(api, client_factory):
    topic = f"api/retained/{unique_id()}"
    status, _ = api.publish(
        topic=topic,
        payload="kept",
        qos=1,
        retain=True,
        properties={"user_properties": {"id": 10010, "name": "emqx"}, "content_type": "text/plain"},
    )
    assert status == 200
    late = connected(client_factory, protocol="5")
    late.subscribe(topic, 1)
    (message,) = late.expect()
    assert (message.payload, message.retain) == (b"kept", True)
    assert message.properties.UserProperty == [("id", "10010"), ("name", "emqx")]
    assert message.properties.ContentType == "text/plain"
    assert api.publish(topic=topic, payload="", retain=True)[0] == 200  # clears it, as MQTT does
    again = connected(client_factory)
    again.subscribe(topic, 1)
    assert again.received_before_sync(late) == []


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"payload": "x"}, 107),
        ({"topic": "a"}, 107),
        ({"topic": "a/#", "payload": "x"}, 115),
        ({"topic": "", "payload": "x"}, 115),
        ({"topic": "a", "payload": "x", "qos": 3}, 108),
        ({"topic": "a", "payload": "x", "qos": "1"}, 108),
        ({"topic": "a", "payload": "x", "retain": "yes"}, 108),
        ({"topic": "a", "payload": "not base64!", "encoding": "base64"}, 108),
        ({"topic": "a", "payload": "x", "encoding": "hex"}, 108),
        ({"topic": "a", "payload": "x", "properties": {"colour": "red"}}, 108),
        ({"topic": "a", "payload": "x", "properties": {"response_topic": "r/#"}}, 115),
    ],
)
def test_a_bad_publish_is_refused_with_400_and_nanomq_code(api, client_factory, fields, code):
    watcher = connected(client_factory)
    watcher.subscribe("a", 0)
    status, body = api.publish(**fields)
    assert (status, body["code"]) == (400, code), body
    assert body["message"]
    assert watcher.received_before_sync(connected(client_factory)) == []


def test_bad_json_bodies_get_400_with_code_109(api):
    for raw in (b"{not json", b"\xff\xfe", b"", b'["a list"]'):
        status, body = api.call("POST", "/api/v4/mqtt/publish", raw=raw)
        assert (status, body["code"]) == (400, 109), raw


def test_publish_batch_answers_each_item(api, client_factory):
    subscriber = connected(client_factory)
    subscriber.subscribe("batch/#", 0)
    items = [
        {"topic": "batch/1", "payload": "one"},
        {"topic": "batch/#", "payload": "bad"},
        {"topic": "batch/2", "payload": "two", "qos": 1},
    ]
    status, body = api.call("POST", "/api/v4/mqtt/publish_batch", items)
    assert status == 200 and body["code"] == 0
    assert [(item["topic"], item["code"]) for item in body["data"]] == [
        ("batch/1", 0),
        ("batch/#", 115),
        ("batch/2", 0),
    ]
    assert [(m.topic, m.payload) for m in subscriber.expect(2)] == [("batch/1", b"one"), ("batch/2", b"two")]
    status, body = api.call("POST", "/api/v4/mqtt/publish_batch", {"topic": "batch/1"})
    assert (status, body["code"]) == (400, 109)


def test_metrics_count_what_the_broker_did(api, client_factory):
    first = api.get("/api/v4/metrics")
    assert first["metrics"] == [] and re.fullmatch(r"\d+\.\d\d%", first["cpuinfo"])
    assert int(first["memory"]) > 1024 * 1024
    subscriber = connected(client_factory)
    subscriber.subscribe("metrics/t", 0)
    assert api.publish(topic="metrics/t", payload="m")[0] == 200
    subscriber.expect()
    stats = api.get("/api/v4/metrics")["stats"]
    assert stats["messages_received"] >= first["stats"]["messages_received"] + 1
    assert stats["subscriptions"] >= 1 and stats["connections"] >= 1


# --------------------------------------------------------------------------- authentication and paths


def test_missing_or_wrong_credentials_get_401(api):
    status, body = api.call("GET", "/api/v4/clients", auth=None)
    assert (status, body["code"]) == (401, 104)
    assert api.last_headers["WWW-Authenticate"] == 'Basic realm="nanomq"'
    for auth in (("admin", "wrong"), ("root", "s3cret:pass"), ("admin", "s3cret")):
        status, body = api.call("GET", "/api/v4/clients", auth=auth)
        assert (status, body["code"]) == (401, 103), auth
    status, body = api.call("POST", "/api/v4/mqtt/publish", {"topic": "a", "payload": "x"}, auth=("a", "b"))
    assert (status, body["code"]) == (401, 103)
    status, body = api.call("GET", "/api/v4/clients", headers={"Authorization": "Bearer abc"}, auth=None)
    assert (status, body["code"]) == (401, 104)


def test_unknown_paths_get_404_and_wrong_methods_405(api):
    for path in (
        "/api/v4/nothing",
        "/api/v5/clients",
        "/index.html",  # "/" is the status page (test_status_page.py)
        "/api/v4/clients/a/b/c",
        "/api/v4/mqtt/subscribe",
    ):
        status, body = api.call("GET", path)
        assert (status, body["code"]) == (404, 102), path
    status, body = api.call("POST", "/api/v4/clients", {})
    assert (status, body["code"]) == (405, 102)
    status, body = api.call("DELETE", "/api/v4/mqtt/publish")
    assert (status, body["code"]) == (405, 102)


def raw_exchange(api, data, answers):
    """Send raw bytes on one connection; the first `answers` HTTP responses, as (head, body)."""
    host, port = api.base.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        stream = sock.makefile("rb")
        results = []
        while len(results) < answers:
            lines = []
            while (line := stream.readline()) not in (b"\r\n", b""):
                lines.append(line.decode().strip())
            assert lines, f"connection closed after {len(results)} answers"
            length = next(
                (int(v) for k, _, v in (h.partition(": ") for h in lines) if k == "Content-Length"), 0
            )
            results.append((lines, stream.read(length)))
        return results


def test_keep_alive_pipelining_100_continue_and_limits(api):
    token = base64.b64encode(":".join(AUTH).encode()).decode()
    auth = f"Authorization: Basic {token}\r\n"
    body = b'{"topic": "raw/t", "payload": "x"}'
    (continue_head, _), (head, answer) = raw_exchange(
        api,
        (
            f"POST /api/v4/mqtt/publish HTTP/1.1\r\n{auth}Content-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n"
        ).encode()
        + body,
        2,
    )
    assert continue_head == ["HTTP/1.1 100 Continue"]
    assert (head[0], json.loads(answer)) == ("HTTP/1.1 200 OK", {"code": 0})
    two = f"GET /api/v4/nodes HTTP/1.1\r\n{auth}\r\nGET /api/v4/nothing HTTP/1.1\r\n{auth}\r\n"
    first, second = raw_exchange(api, two.encode(), 2)
    assert first[0][0] == "HTTP/1.1 200 OK" and "Connection: keep-alive" in first[0]
    assert (second[0][0], json.loads(second[1])["code"]) == ("HTTP/1.1 404 Not Found", 102)
    # One byte past the 16 KiB limit and no end of headers: refused once all of it is read.
    start = f"GET /api/v4 HTTP/1.1\r\n{auth}X-Big: "
    ((head, _),) = raw_exchange(api, (start + "a" * (16385 - len(start))).encode(), 1)
    assert head[0] == "HTTP/1.1 431 Request Header Fields Too Large" and "Connection: close" in head
    too_long = f"POST /api/v4/mqtt/publish HTTP/1.1\r\n{auth}Content-Length: 999999999\r\n\r\n"
    ((head, answer),) = raw_exchange(api, too_long.encode(), 1)
    assert (head[0], json.loads(answer)["code"]) == ("HTTP/1.1 413 Payload Too Large", 108)
    ((head, _),) = raw_exchange(api, b"not http\r\n\r\n", 1)
    assert head[0] == "HTTP/1.1 400 Bad Request"


def test_limit_conn_bounds_connections_served_at_once(tmp_path, client_factory):
    proc = start_broker(tmp_path, API_CONF.replace("limit_conn = 4", "limit_conn = 1"))
    try:
        api = Api(proc)
        host, port = api.base.rsplit("/", 1)[1].split(":")
        held = socket.create_connection((host, int(port)))  # takes the only slot, sends nothing
        answers = []
        waiting = threading.Thread(target=lambda: answers.append(api.call("GET", "/api/v4/nodes")))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive() and answers == [], "a second connection was served beside the first"
        held.close()
        waiting.join(TIMEOUT)
        assert answers and answers[0][0] == 200
    finally:
        proc.stop()


# --------------------------------------------------------------------------- configuration and start


def test_a_bad_http_server_value_stops_the_start(tmp_path):
    for text, line in (
        ("http_server { auth_type = jwt }", 'http_server.auth_type = "jwt" is invalid: expected basic'),
        ("http_server { port = 70000 }", "http_server.port = 70000 is invalid: expected an integer from 0"),
        ("http_server { limit_conn = 0 }", "http_server.limit_conn = 0 is invalid: expected an integer >= 1"),
    ):
        conf = write_conf(tmp_path, 'listeners.tcp.bind = "127.0.0.1:0"\n' + text)
        result = run_nanomq(tmp_path, "start", "--conf", str(conf))
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{conf}: {line}"), result.stderr
        assert result.stdout == ""


def test_a_busy_api_port_stops_the_start(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        conf = write_conf(
            tmp_path,
            f'listeners.tcp.bind = "127.0.0.1:0"\nhttp_server {{ bind = "127.0.0.1", port = {port} }}\n',
        )
        result = run_nanomq(tmp_path, "start", "--conf", str(conf))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("NanoMQ failed to start:")
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "started successfully" not in result.stdout


def test_the_api_is_imported_only_when_configured():
    code = (
        "import sys\n"
        "from nanomq_py.server import Server\n"
        "from nanomq_py.settings import HttpServerSettings, Settings\n"
        "Server(Settings())\n"
        "assert 'nanomq_py.http_api' not in sys.modules and 'gevent.server' not in sys.modules\n"
        "Server(Settings(http_server=HttpServerSettings()))\n"
        "assert 'nanomq_py.http_api' in sys.modules\n"
        "heavy = [m for m in ('ssl', 'http.client', 'hashlib', 'email') if m in sys.modules]\n"
        "assert heavy == [], heavy\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=30)
