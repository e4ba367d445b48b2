"""GET /api/v4/prometheus: a real broker process and real MQTT clients, the answer
read by Prometheus' own text parser (prometheus_client); and the rendering of
optional features' counters on a real Broker object with stand-in features."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

import pytest
from mqtt_client import TestClient
from webhook_sink import WebhookSink

from nanomq_py.broker.broker import Broker
from nanomq_py.settings import Settings

parser = pytest.importorskip(
    "prometheus_client.parser", reason="pip install prometheus_client (the test extra)"
)

HTTP_CONF = 'http_server {\n bind = "127.0.0.1"\n port = 0\n username = admin\n password = "pw"\n}\n'
TIMEOUT = 10

NANOMQ_METRICS = {
    "nanomq_connections_count": "gauge",
    "nanomq_connections_max": "gauge",
    "nanomq_sessions_count": "gauge",
    "nanomq_sessions_max": "gauge",
    "nanomq_topics_count": "gauge",
    "nanomq_topics_max": "gauge",
    "nanomq_subscribers_count": "gauge",
    "nanomq_subscribers_max": "gauge",
    "nanomq_messages_received": "counter",
    "nanomq_messages_sent": "counter",
    "nanomq_messages_dropped": "counter",
    "nanomq_memory_usage": "gauge",
    "nanomq_memory_usage_max": "gauge",
    "nanomq_cpu_usage": "gauge",
    "nanomq_cpu_usage_max": "gauge",
}


def api_base(proc):
    match = proc.wait_for_output(r"NanoMQ HTTP API listening on http://127\.0\.0\.1:(\d+)")
    return f"http://127.0.0.1:{match.group(1)}"


def scrape(base, auth=("admin", "pw")):
    """(HTTP status, Content-Type, body text)."""
    request = urllib.request.Request(base + "/api/v4/prometheus")
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


def families(text):
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


def value(family, **labels):
    (sample,) = [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return sample.value


def test_nanomqs_metrics_in_the_text_format(broker_factory):
    proc = broker_factory(HTTP_CONF)
    base = api_base(proc)
    subscriber = TestClient(proc)
    publisher = TestClient(proc)
    subscriber.connect()
    publisher.connect()
    try:
        subscriber.subscribe("metrics/#", 1)
        for n in range(5):
            publisher.publish(f"metrics/{n}", b"m", qos=1)
        assert len(subscriber.expect(5)) == 5
        status, content_type, text = scrape(base)
    finally:
        subscriber.disconnect()
        publisher.disconnect()
    assert status == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    found = families(text)
    for name, kind in NANOMQ_METRICS.items():
        assert found[name].type == kind, name
    assert all(family.documentation for family in found.values())  # every family has its # HELP
    assert value(found["nanomq_connections_count"]) == 2
    assert value(found["nanomq_sessions_count"]) == 2
    assert value(found["nanomq_subscribers_count"]) == 1
    assert value(found["nanomq_topics_count"]) == 1
    assert value(found["nanomq_messages_received"]) >= 5
    assert value(found["nanomq_messages_sent"]) >= 5
    assert value(found["nanomq_messages_dropped"]) == 0
    assert value(found["nanomq_memory_usage"]) > 1_000_000
    assert value(found["nanomq_memory_usage_max"]) >= value(found["nanomq_memory_usage"])
    assert value(found["nanomq_bytes_received"]) > 0 and value(found["nanomq_packets_sent"]) > 0
    assert found["nanomq_bytes_received"].type == "counter"


def test_the_same_basic_authentication_as_the_api(broker_factory):
    base = api_base(broker_factory(HTTP_CONF))
    assert scrape(base, auth=None)[0] == 401
    assert scrape(base, auth=("admin", "wrong"))[0] == 401


def test_the_webhooks_counters_are_exposed(broker_factory):
    with WebhookSink() as sink:
        conf = (
            HTTP_CONF
            + f'webhook {{\n url = "{sink.url}"\n events = [{{event = "on_client_connected"}}]\n}}\n'
        )
        proc = broker_factory(conf)
        client = TestClient(proc)
        client.connect()
        try:
            sink.wait_for(1)
            status, _, text = scrape(api_base(proc))
        finally:
            client.disconnect()
    assert status == 200
    found = families(text)
    for key in ("queued", "delivered", "failed", "dropped"):
        assert f"nanomq_webhook_{key}" in found, key
    assert found["nanomq_webhook_queued"].type == "unknown"  # untyped: only the feature knows
    assert value(found["nanomq_webhook_queued"]) >= 1


class _Feature:
    def __init__(self, counters):
        self._counters = counters

    def counters(self):
        return dict(self._counters)


def test_store_and_bridges_render_with_labels():
    from nanomq_py.http_api.prometheus import Exposition

    broker = Broker(Settings())
    broker.store = _Feature({"db_bytes": 4096, "write_errors": 0})
    broker.bridges = {
        "cloud": _Feature({"state": "connected", "forwarded": 7}),
        'odd"name': _Feature({"state": "down", "forwarded": 0}),
    }
    found = families(Exposition(broker, 0.0).text())
    assert value(found["nanomq_store_db_bytes"]) == 4096
    assert value(found["nanomq_bridge_forwarded"], name="cloud") == 7
    assert value(found["nanomq_bridge_forwarded"], name='odd"name') == 0
    assert value(found["nanomq_bridge_state"], name="cloud", state="connected") == 1
    assert value(found["nanomq_bridge_state"], name='odd"name', state="down") == 1
    assert "nanomq_webhook_queued" not in found  # not configured: not there
