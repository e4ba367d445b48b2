"""The status page over HTTP: GET / behind the API's basic authentication, one
self-contained file, and GET /api/v4/status, the one answer the page polls."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request

from mqtt_client import TestClient

HTTP_CONF = 'http_server {\n bind = "127.0.0.1"\n port = 0\n username = admin\n password = "pw"\n}\n'
TIMEOUT = 10
MAX_PAGE_BYTES = 64 * 1024


def api_base(proc):
    match = proc.wait_for_output(r"NanoMQ HTTP API listening on http://127\.0\.0\.1:(\d+)")
    return f"http://127.0.0.1:{match.group(1)}"


def get(url, auth=("admin", "pw")):
    """(HTTP status, headers, body bytes)."""
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def test_the_page_needs_the_apis_credentials(broker_factory):
    base = api_base(broker_factory(HTTP_CONF))
    status, headers, _ = get(base + "/", auth=None)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="nanomq"'  # the browser asks for them
    assert get(base + "/", auth=("admin", "nope"))[0] == 401
    assert get(base + "/api/v4/status", auth=None)[0] == 401


def test_the_page_is_one_small_self_contained_file(broker_factory):
    base = api_base(broker_factory(HTTP_CONF))
    status, headers, body = get(base + "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert 1000 < len(body) <= MAX_PAGE_BYTES
    html = body.decode()
    assert "<script>" in html and "<style>" in html
    # Nothing from elsewhere: no CDN script or stylesheet, no web font, no remote image.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert not re.search(r"@import|@font-face|url\(\s*['\"]?(https?:)?//", html, re.I)
    assert 'fetch("api/v4/status"' in html  # relative: works behind any host name and port


def test_the_status_answer_lists_clients_and_figures(broker_factory):
    proc = broker_factory(HTTP_CONF)
    base = api_base(proc)
    client = TestClient(proc, client_id="status-json-1", protocol="5")
    client.paho.username_pw_set("ann")
    client.connect()
    try:
        client.subscribe("plant/+/temp")
        client.subscribe("plant/alarm")
        status, _, body = get(base + "/api/v4/status")
    finally:
        client.disconnect()
    assert status == 200
    answer = json.loads(body)
    assert answer["code"] == 0
    data = answer["data"]
    assert data["version"] and data["uptime"] >= 0 and data["features"] == []
    assert data["figures"]["connections"] == 1 and data["figures"]["subscriptions"] == 2
    (entry,) = data["clients"]
    assert entry["client_id"] == "status-json-1" and entry["username"] == "ann"
    assert entry["proto_name"] == "MQTT" and entry["proto_ver"] == 5 and entry["connected"]
    assert entry["address"].startswith("127.0.0.1:")
    assert entry["subscriptions"] == 2 and set(entry["filters"]) == {"plant/+/temp", "plant/alarm"}
    assert data["clients_total"] == 1
