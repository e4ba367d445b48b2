"""The WebHook tutorial end to end: `nanomq start --conf` as a real process, paho-mqtt
as the client, a real HTTP server as the endpoint."""

import os
import re
import signal
import subprocess
import sys
import threading

import paho.mqtt.client as paho
from broker_process import REPO
from mqtt_client import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from webhook_sink import WebhookSink, settled_counters

TUTORIAL_BLOCK = """
webhook {
  url = "%s"                   # Destination endpoint for webhook requests
  headers.content-type = "application/json"       # Content-Type of the request
  body.encoding = plain                           # Payload encoding: plain, base64, or base62
  pool_size = 32                                  # Number of concurrent HTTP connections

  events = [
    {
      event = "on_message_publish"
      topic = "nmq/pub"
    }
    {
      event = "on_client_connack"
    }
    {
      event = "on_client_disconnected"
    }
  ]
}
"""

TUTORIAL_BODIES = [
    {
        "proto_ver": 4,
        "keepalive": 60,
        "conn_ack": "success",
        "username": "wbhk_test",
        "clientid": "wbhk_clientid",
        "action": "client_connack",
    },
    {
        "topic": "nmq/pub",
        "retain": True,
        "qos": 1,
        "action": "message_publish",
        "from_username": "wbhk_test",
        "from_client_id": "wbhk_clientid",
        "payload": "Hello World!",
    },
    {
        "reason": "normal",
        "username": "wbhk_test",
        "clientid": "wbhk_clientid",
        "action": "client_disconnected",
    },
]


def stop_by_pid(broker):
    """SIGTERM to the pid in the broker's pid file, then wait for the process to end."""
    os.kill(int(broker.pid_file.read_text().split()[0]), signal.SIGTERM)
    assert broker.proc.wait(15) == 0, broker.output()


def final_counters(broker):
    """The counters of the webhook's last log line, as a dict of ints."""
    lines = re.findall(r"webhook counters: (.*)", broker.output())
    assert lines, broker.output()
    return {name: int(value) for name, value in re.findall(r"(\w+)=(\d+)", lines[-1])}


def test_the_tutorial(broker_factory):
    with WebhookSink() as sink:
        broker = broker_factory(TUTORIAL_BLOCK % "http://127.0.0.1:%d" % sink.port)
        connected = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="wbhk_clientid", protocol=paho.MQTTv311)
        client.username_pw_set("wbhk_test")
        client.on_connect = lambda *args: connected.set()
        client.connect(broker.host, broker.port, keepalive=60)
        client.loop_start()
        try:
            assert connected.wait(10)
            client.publish("nmq/pub", b"Hello World!", qos=1, retain=True).wait_for_publish(10)
            client.publish("nmq/other", b"no rule for this topic", qos=1).wait_for_publish(10)
            client.disconnect()
        finally:
            client.loop_stop()
        requests = sink.wait_for(3, timeout=10)
        stop_by_pid(broker)
        assert len(sink.requests) == 3, "nothing else was posted, even at shutdown"
    # Up to pool_size POSTs are in flight at once: they may arrive in any order.
    actions = [body["action"] for body in TUTORIAL_BODIES]
    requests = sorted(requests, key=lambda request: actions.index(request.json()["action"]))
    bodies = [request.json() for request in requests]
    ts = bodies[1].pop("ts")
    assert isinstance(ts, int) and ts > 1_700_000_000_000, "ts is in epoch milliseconds"
    assert bodies == TUTORIAL_BODIES
    assert list(bodies[1]) == list(TUTORIAL_BODIES[1]), "key order as in the tutorial"
    assert requests[1].body.startswith(b'{"ts":')
    for request in requests:
        assert request.method == "POST"
        assert request.header("content-type") == "application/json"
    assert final_counters(broker) == settled_counters(queued=3, delivered=3)


def test_a_slow_endpoint_does_not_hold_back_mqtt(broker_factory):
    block = TUTORIAL_BLOCK.replace('"nmq/pub"', '"load/#"') + (
        "webhook.queue_size = 1000\nwebhook.drain_timeout = 1s\nwebhook.max_retries = 0\n"
    )
    messages = 10_000
    with WebhookSink(delay=2.0) as sink:
        broker = broker_factory(block % sink.url)
        subscriber = TestClient(broker)
        subscriber.connect()
        subscriber.subscribe("load/#", 0)
        publisher = TestClient(broker)
        publisher.connect()
        for number in range(messages):
            publisher.publish(f"load/{number % 10}", b"%05d" % number, qos=0, wait=False)
        received = subscriber.expect(messages, timeout=60)
        posted_meanwhile = len(sink.requests)
        publisher.disconnect()
        subscriber.disconnect()
        stop_by_pid(broker)
    assert [message.payload for message in received] == [b"%05d" % number for number in range(messages)]
    assert posted_meanwhile < 200, "subscribers got everything while the endpoint was still busy"
    counters = final_counters(broker)
    produced = messages + 2 * 2  # the publishes, plus connack and disconnected of both clients
    assert counters["delivered"] + counters["failed"] + counters["dropped"] == produced
    assert counters["dropped"] > 0
    assert counters["queued"] <= 1000 + counters["delivered"] + counters["failed"], "the queue stayed bounded"


def test_urllib3_is_not_imported_without_a_webhook():
    code = (
        "import sys\n"
        "from nanomq_py.server import Server\n"
        "from nanomq_py.settings import Settings\n"
        "Server(Settings())\n"
        "assert 'urllib3' not in sys.modules and 'nanomq_py.webhook' not in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=30)
