"""The webhook spool: with the store on, events the endpoint does not take
(it answers 503 past the retries) are kept in the store, survive a restart,
and are POSTed oldest first once the endpoint answers again. With
per_client_order the events of one client reach the spool in their order (without
it, up to pool_size POSTs fail concurrently and are spooled as they fail)."""

from __future__ import annotations

import base64
import json
import urllib.request

from raw_client import RawClient
from store_helpers import store_conf
from webhook_sink import WebhookSink

_HOOK = """
webhook {{
  url = "{url}"
  max_retries = 0
  retry_backoff = 10ms
  per_client_order = true
  events = [ {{ event = "on_message_publish", topic = "spool/#" }} ]
}}
"""
_API = 'http_server { bind = "127.0.0.1", port = 0 }\n'


def test_spool_survives_outage_and_restart(broker_factory, tmp_path):
    store_dir = tmp_path / "store"
    extra = "sqlite { resend_interval = 100 }\n"
    with WebhookSink(status=503) as down:
        broker = broker_factory(store_conf(store_dir, extra) + _HOOK.format(url=down.url))
        pub = RawClient(broker)
        pub.connect("spool-pub")
        for n in range(3):
            pub.publish_acked(f"spool/{n}", b"event-%d" % n, qos=1)
        down.wait_for(3)  # every event was tried once and refused
        broker.wait_for_output(r"events spooled to the store")
        assert broker.stop() == 0
    assert "spool_dropped" in broker.output()

    with WebhookSink() as up:
        broker = broker_factory(store_conf(store_dir, extra) + _HOOK.format(url=up.url) + _API)
        requests = up.wait_for(3, timeout=10)
        assert [r.json()["payload"] for r in requests] == ["event-0", "event-1", "event-2"]
        broker.wait_for_output(r"webhook spool: replayed=3, waiting=0")
        port = broker.wait_for_output(r"NanoMQ HTTP API listening on http://127\.0\.0\.1:(\d+)").group(1)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v4/metrics")
        request.add_header("Authorization", "Basic " + base64.b64encode(b"admin:public").decode())
        with urllib.request.urlopen(request, timeout=10) as response:
            metrics = json.loads(response.read())
        assert metrics["webhook"]["replayed"] == 3
        assert metrics["webhook"]["spool_waiting"] == 0
        assert metrics["store"]["write_errors"] == 0
