"""One busy client's webhook events reach a slow endpoint pool_size at a time.

The endpoint is a real HTTP server (tests/webhook_sink.py, a thread per
connection) that answers each POST after a delay and records how many requests
it held at once: the delivered rate is about max_held / delay, so the tests
assert on max_held (the concurrency the server saw), never on timing.
"""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from webhook_sink import WebhookSink

from nanomq_py.broker.events import ClientInfo
from nanomq_py.settings import WebhookRule, WebhookSettings
from nanomq_py.webhook import WebHook


def conf(sink, pool_size, extra=""):
    return f"""
webhook {{
  url = "{sink.url}"
  pool_size = {pool_size}
  {extra}
  events = [{{event = on_message_publish, topic = "gw/#"}}]
}}
"""


def publish_from_one_client(broker, count):
    """One MQTT connection publishes `count` QoS 1 messages gw/<n> (acked: all read by the broker)."""
    connected = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="gateway", protocol=paho.MQTTv311)
    client.on_connect = lambda *args: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert connected.wait(10)
        infos = [client.publish(f"gw/{number}", b"%d" % number, qos=1) for number in range(count)]
        for info in infos:
            info.wait_for_publish(30)
        client.disconnect()
    finally:
        client.loop_stop()


def test_one_clients_events_reach_a_slow_endpoint_pool_size_at_a_time(broker_factory):
    pool_size, count = 32, 320
    with WebhookSink(delay=0.2) as sink:
        broker = broker_factory(conf(sink, pool_size))
        publish_from_one_client(broker, count)
        requests = sink.wait_for(count, timeout=60)
        assert sink.max_held == pool_size, "the server held pool_size requests at once"
    assert sorted(request.json()["payload"] for request in requests) == sorted(str(n) for n in range(count))
    assert all(isinstance(request.json()["ts"], int) for request in requests), "receivers can order by ts"


def test_per_client_order_sends_one_clients_events_one_at_a_time_in_order(broker_factory):
    count = 10
    with WebhookSink(delay=0.05) as sink:
        broker = broker_factory(conf(sink, 8, "per_client_order = true"))
        publish_from_one_client(broker, count)
        requests = sink.wait_for(count, timeout=30)
        assert sink.max_held == 1, "the cost of the order: one request per round trip per client"
    assert [request.json()["payload"] for request in requests] == [str(n) for n in range(count)]


def test_what_the_drain_leaves_is_named_in_one_warning_at_stop(caplog):
    who = ClientInfo("gw", "u", 4, 60, "127.0.0.1", 50000, 1706703724000, True)
    with WebhookSink(hang=True) as sink:
        settings = WebhookSettings(
            url=sink.url,
            events=[WebhookRule("on_client_connack")],
            pool_size=2,
            cancel_timeout=10.0,
            drain_timeout=0.3,
        )
        hook = WebHook(settings)
        hook.start()
        for _ in range(5):
            hook.on_client_connack(who, "success")
        sink.wait_for(2)  # both workers hold a request the endpoint never answers
        with caplog.at_level(logging.INFO, logger="nanomq.webhook"):
            hook.stop()
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "5 event(s) not delivered to " + sink.url in warnings[0]
    assert "3 still queued, 2 being sent" in warnings[0]
    assert hook.counters()["dropped"] == 5
