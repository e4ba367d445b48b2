"""auth.http_auth through a real broker process and a real HTTP endpoint:
request formats (form POST, JSON POST, GET query), placeholders, super_req
and acl_req, the verdict cache, failures, and that a slow endpoint holds up
only the client it is asked about."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
from mqtt_client import TestClient, unique_id
from raw_client import RawClient

from nanomq_py.mqtt.packets import Puback, Publish

V5_NOT_AUTHORIZED = 0x87
V3_NOT_AUTHORIZED = 5


class AuthRequest:
    __slots__ = ("method", "path", "params", "headers", "body")

    def __init__(self, method, path, params, headers, body):
        self.method = method
        self.path = path
        self.params = params  # dict from the query string, form body or JSON body
        self.headers = headers
        self.body = body


class AuthEndpoint:
    """A real HTTP server: records every request, answers decide(request) -> status.

    While `hold` is cleared, requests for which `held(request)` is true are
    recorded and then wait for it to be set."""

    def __init__(self, decide=lambda request: 200):
        self.decide = decide
        self.requests = queue.Queue()
        self.hold = threading.Event()
        self.hold.set()
        self.held = lambda request: True
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if self.command == "GET":
                    params = dict(parse_qsl(split.query))
                elif self.headers.get("Content-Type", "").startswith("application/json"):
                    params = json.loads(body)
                else:
                    params = dict(parse_qsl(body.decode()))
                request = AuthRequest(self.command, split.path, params, self.headers, body)
                endpoint.requests.put(request)
                if endpoint.held(request):
                    endpoint.hold.wait(30)
                self.send_response(endpoint.decide(request))
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def next(self, timeout=5):
        return self.requests.get(timeout=timeout)

    def assert_idle(self):
        assert self.requests.empty(), f"unexpected request {self.requests.get().params}"

    def stop(self):
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def _decide(request):
    """dev/pw may connect, root is a superuser, acl allows topics under ok/."""
    p = request.params
    if request.path == "/auth":
        return 200 if (p.get("username"), p.get("password")) in (("dev", "pw"), ("root", "pw")) else 401
    if request.path == "/super":
        return 200 if p.get("username") == "root" else 404
    if request.path == "/acl":
        return 200 if p.get("topic", "").startswith("ok/") else 403
    if request.path == "/error":
        return 500
    return 404


@pytest.fixture(scope="module")
def endpoint():
    server = AuthEndpoint(_decide)
    yield server
    server.stop()


def _conf(endpoint, auth_path="/auth", extra=""):
    return f"""
auth {{
  allow_anonymous = true
  no_match = deny
  password = {{"local" = "pw"}}
  acl = {{rules = [{{permit = allow, username = "local"}}]}}
  http_auth {{
    auth_req {{
      url = "{endpoint.url}{auth_path}"
      method = post
      headers.x-broker = "nanomq_py"
      params = {{clientid = "%c", username = "%u", password = "%P", ip = "%a", port = "%p", proto = "%r", cn = "%C"}}
    }}
    super_req {{
      url = "{endpoint.url}/super"
      method = post
      headers.content-type = "application/json"
      params = {{clientid = "%c", username = "%u"}}
    }}
    acl_req {{
      url = "{endpoint.url}/acl?via=get"
      method = get
      params = {{access = "%A", topic = "%t", username = "%u", clientid = "%c", fixed = "on-%u"}}
    }}
    timeout = 10s
    connect_timeout = 2s
    cache_ttl = 60s
    {extra}
  }}
}}
"""


@pytest.fixture(scope="module")
def broker(endpoint, tmp_path_factory):
    from broker_process import start_broker

    proc = start_broker(tmp_path_factory.mktemp("http_auth"), _conf(endpoint))
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output()


def _raw_connect(broker, version, username=None, password=None, client_id=None):
    client = RawClient(broker, version=version)
    connack = client.connect(client_id or unique_id("raw"), username=username, password=password)
    return client, connack.reason_code


def _paho(broker, username, password="pw", protocol="3.1.1"):
    client = TestClient(broker, protocol=protocol)
    client.paho.username_pw_set(username, password)
    client.connect()
    return client


def _drain(endpoint):
    while not endpoint.requests.empty():
        endpoint.requests.get()


def test_auth_req_posts_a_form_with_the_placeholders_filled_in(broker, endpoint):
    _drain(endpoint)
    client, code = _raw_connect(broker, 4, "dev", b"pw", client_id="form-1")
    assert code == 0
    auth = endpoint.next()
    assert (auth.method, auth.path) == ("POST", "/auth")
    assert auth.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert auth.headers["x-broker"] == "nanomq_py"
    assert auth.params == {
        "clientid": "form-1",
        "username": "dev",
        "password": "pw",
        "ip": "127.0.0.1",
        "port": str(broker.port),
        "proto": "mqtt",
    }  # cn (%C) has no value without a client certificate: left out
    superuser = endpoint.next()
    assert (superuser.path, superuser.headers["Content-Type"]) == ("/super", "application/json")
    assert json.loads(superuser.body) == {"clientid": "form-1", "username": "dev"}
    client.close()


def test_refusals_are_not_authorized_in_both_versions(broker, endpoint):
    assert _raw_connect(broker, 4, "dev", b"wrong")[1] == V3_NOT_AUTHORIZED
    assert _raw_connect(broker, 5, "dev", b"wrong")[1] == V5_NOT_AUTHORIZED
    assert _raw_connect(broker, 4)[1] == V3_NOT_AUTHORIZED  # anonymous: the endpoint decides too
    assert _raw_connect(broker, 4, "nobody", b"pw")[1] == V3_NOT_AUTHORIZED


def test_password_file_users_are_decided_without_http(broker, endpoint):
    _drain(endpoint)
    local, code = _raw_connect(broker, 4, "local", b"pw")
    assert code == 0
    assert _raw_connect(broker, 4, "local", b"bad")[1] == 4  # bad username or password, locally
    marker = unique_id("marker")
    _raw_connect(broker, 4, marker, b"x")
    asked = []
    while (request := endpoint.next()).params.get("username") != marker:
        asked.append((request.path, request.params["username"]))
    assert asked == [("/super", "local")]  # only whether the local user is a superuser
    local.close()


def test_verdicts_are_cached_for_cache_ttl(broker, endpoint):
    user = unique_id("cached")
    for _ in range(3):
        assert _raw_connect(broker, 4, user, b"pw", client_id="same-id")[1] == V3_NOT_AUTHORIZED
    _drain(endpoint)
    client_id = unique_id("c")
    for _ in range(2):
        client, code = _raw_connect(broker, 4, "dev", b"pw", client_id=client_id)
        assert code == 0
        client.close()
    requests = []
    marker = unique_id("marker")
    _raw_connect(broker, 4, marker, b"x")
    while (request := endpoint.next()).params.get("username") != marker:
        requests.append(request.path)
    assert requests == ["/auth", "/super"]  # once, not once per CONNECT


def test_superuser_skips_acl_and_acl_req_decides_the_rest(broker, endpoint):
    root = _paho(broker, "root")
    assert root.subscribe("#", 1) == [1]  # a superuser: no acl_req asked
    dev = RawClient(broker)
    assert dev.connect(unique_id("dev"), username="dev", password=b"pw").reason_code == 0
    _drain(endpoint)
    assert dev.subscribe(("ok/sub/#", 1), ("bad/#", 1)) == [1, 0x80]
    sub_ok, sub_bad = endpoint.next(), endpoint.next()
    assert (sub_ok.method, sub_ok.path) == ("GET", "/acl")
    assert sub_ok.params["via"] == "get"  # the URL's own query is kept
    assert (sub_ok.params["access"], sub_ok.params["topic"], sub_bad.params["topic"]) == (
        "1",
        "ok/sub/#",
        "bad/#",
    )
    assert sub_ok.params["fixed"] == "on-dev"
    for topic in ("bad/1", "ok/1", "bad/1", "ok/1"):
        dev.publish_acked(topic, topic.encode(), qos=1)  # denied ones are still acknowledged (3.1.1)
    assert [m.topic for m in root.expect(2)] == ["ok/1", "ok/1"]
    published = [endpoint.next() for _ in range(2)]
    assert [(r.params["access"], r.params["topic"]) for r in published] == [("2", "bad/1"), ("2", "ok/1")]
    endpoint.assert_idle()  # the repeats were answered from the cache
    dev.close()
    root.disconnect()


def test_v5_publish_denied_by_acl_req_gets_0x87(broker):
    client = RawClient(broker, version=5)
    assert client.connect(unique_id("v5"), username="dev", password=b"pw").reason_code == 0
    client.send(Publish("bad/v5", b"x", qos=1, packet_id=7))
    assert client.take(Puback, 7).reason_code == V5_NOT_AUTHORIZED
    client.close()


def test_server_errors_and_an_unreachable_endpoint_deny_with_one_warning(broker_factory, endpoint):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    conf = _conf(endpoint, auth_path="/error").replace(
        f'{endpoint.url}/super"', f'http://127.0.0.1:{dead_port}/super"'
    )
    proc = broker_factory(conf)
    for _ in range(3):
        assert _raw_connect(proc, 4, "dev", b"pw")[1] == V3_NOT_AUTHORIZED
    proc.wait_for_output(r"http_auth auth_req to http://127\.0\.0\.1:\d+/error answered HTTP 500: denied")
    assert proc.output().count("answered HTTP 500") == 1  # rate-limited
    local, code = _raw_connect(proc, 4, "local", b"pw")  # super_req cannot be reached: not a superuser
    assert code == 0
    proc.wait_for_output(r"http_auth super_req to http://127\.0\.0\.1:\d+/super failed \(.*\): denied")
    local.close()


def test_an_endpoint_that_never_answers_times_out(broker_factory, endpoint):
    proc = broker_factory(_conf(endpoint, extra="timeout = 1s\nconnect_timeout = 1s"))
    endpoint.hold.clear()
    try:
        started = time.monotonic()
        assert _raw_connect(proc, 4, "dev", b"pw")[1] == V3_NOT_AUTHORIZED
        assert time.monotonic() - started < 5
        proc.wait_for_output(r"http_auth auth_req to .* failed \((ReadTimeoutError|no answer).*\): denied")
    finally:
        endpoint.hold.set()


def test_a_client_closed_by_connect_timeout_while_http_waits(broker_factory, endpoint):
    proc = broker_factory("mqtt.connect_timeout = 1s\n" + _conf(endpoint, extra="timeout = 10s"))
    _drain(endpoint)
    endpoint.hold.clear()
    try:
        waiting = RawClient(proc)
        waiting.send_bytes(_connect_bytes("dev", b"pw"))
        endpoint.next()
        waiting.assert_closed(timeout=5)
    finally:
        endpoint.hold.set()
    local, code = _raw_connect(proc, 4, "local", b"pw")
    assert code == 0
    local.ping()
    local.close()


def test_a_slow_endpoint_holds_up_only_the_client_it_is_asked_about(broker, endpoint):
    subscriber = _paho(broker, "local")
    publisher = _paho(broker, "local")
    subscriber.subscribe("live/#", 1)
    _drain(endpoint)
    endpoint.held = lambda request: request.params.get("username") == "dev"
    endpoint.hold.clear()
    try:
        waiting = RawClient(broker)
        waiting.send_bytes(_connect_bytes("dev", b"pw"))
        assert endpoint.next().params["username"] == "dev"  # now in flight, and held
        for index in range(100):
            publisher.publish(f"live/{index}", str(index).encode(), qos=1)
        received = [m.payload for m in subscriber.expect(100)]
        assert received == [str(i).encode() for i in range(100)]
        late = _paho(broker, "local")  # others connect meanwhile, their own super_req answered
        late.disconnect()
        assert waiting.pending == [] and not waiting.eof
    finally:
        endpoint.hold.set()
        endpoint.held = lambda request: True
    assert waiting.recv().reason_code == 0
    waiting.close()
    subscriber.disconnect()
    publisher.disconnect()


def _connect_bytes(username, password):
    from nanomq_py.mqtt.codec import encode
    from nanomq_py.mqtt.packets import Connect

    return encode(Connect("MQTT", 4, True, 60, unique_id("held"), username, password), 4)
