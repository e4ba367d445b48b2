"""The webhook runtime against a real HTTP server: what is POSTed, when, in which order,
and what happens when the endpoint fails, hangs or cannot keep up."""

import contextlib
import logging
import time

import gevent
import pytest
from webhook_sink import WebhookSink, refused_url, settled_counters

from nanomq_py.broker.events import ClientInfo
from nanomq_py.broker.message import Message
from nanomq_py.mqtt.packets import SubOptions
from nanomq_py.settings import WebhookRule, WebhookSettings
from nanomq_py.webhook import WebHook

TUTORIAL_RULES = [
    WebhookRule("on_message_publish", "nmq/pub"),
    WebhookRule("on_client_connack"),
    WebhookRule("on_client_disconnected"),
]
JSON_HEADERS = {"content-type": "application/json"}


def client(client_id="wbhk_clientid", username="wbhk_test"):
    return ClientInfo(client_id, username, 4, 60, "127.0.0.1", 50000, 1706703724000, True)


def message(topic="nmq/pub", payload=b"Hello World!", from_client_id="wbhk_clientid", qos=1, retain=True):
    return Message(topic, payload, qos, retain, from_client_id=from_client_id, from_username="wbhk_test")


def make_settings(url, rules, **overrides):
    values = {"headers": JSON_HEADERS, "cancel_timeout": 2.0, "retry_backoff": 0.01, "pool_size": 4}
    values.update(overrides)
    return WebhookSettings(url=url, events=list(rules), **values)


@contextlib.contextmanager
def running(settings, **kwargs):
    hook = WebHook(settings, **kwargs)
    hook.start()
    try:
        yield hook
    finally:
        hook.stop(timeout=1.0)


def wait_until(predicate, timeout=5.0):
    """Let the hub run until `predicate()` holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        gevent.sleep(0.005)


def publish_payloads(requests):
    return [request.json()["payload"] for request in requests]


def test_the_tutorial_bodies_arrive_with_the_configured_header():
    with WebhookSink() as sink, running(make_settings(sink.url, TUTORIAL_RULES)) as hook:
        hook.on_client_connack(client(), "success")
        hook.on_message_publish(message())
        hook.on_message_publish(message(topic="nmq/other"))  # no rule for this topic
        hook.on_client_disconnected(client(), "normal")
        requests = sink.wait_for(3)
    # Up to pool_size POSTs are in flight at once: they may arrive in any order.
    actions = ["client_connack", "message_publish", "client_disconnected"]
    requests = sorted(requests, key=lambda request: actions.index(request.json()["action"]))
    bodies = [request.body for request in requests]
    assert bodies[0] == (
        b'{"proto_ver":4,"keepalive":60,"conn_ack":"success","username":"wbhk_test",'
        b'"clientid":"wbhk_clientid","action":"client_connack"}'
    )
    ts = requests[1].json()["ts"]
    assert abs(ts - time.time() * 1000) < 5000
    assert bodies[1] == (
        b'{"ts":%d,"topic":"nmq/pub","retain":true,"qos":1,"action":"message_publish",'
        b'"from_username":"wbhk_test","from_client_id":"wbhk_clientid","payload":"Hello World!"}' % ts
    )
    assert bodies[2] == (
        b'{"reason":"normal","username":"wbhk_test","clientid":"wbhk_clientid","action":"client_disconnected"}'
    )
    for request in requests:
        assert request.method == "POST"
        assert request.path == "/webhook"
        assert request.header("content-type") == "application/json"
    assert len(sink.requests) == 3
    assert hook.counters() == settled_counters(queued=3, delivered=3)


def test_headers_are_sent_as_configured_and_no_content_type_is_invented():
    headers = {"Authorization": "Bearer s3cret", "X-Edge-Node": "pi-7"}
    with WebhookSink() as sink, running(make_settings(sink.url, TUTORIAL_RULES, headers=headers)) as hook:
        hook.on_client_connack(client(), "success")
        (request,) = sink.wait_for(1)
    assert ("Authorization", "Bearer s3cret") in request.headers
    assert ("X-Edge-Node", "pi-7") in request.headers
    assert request.header("content-type") is None


def test_wildcard_rules_match_subtopics_but_not_dollar_topics():
    rules = [WebhookRule("on_message_publish", "nmq/#"), WebhookRule("on_message_publish", "+/status")]
    with WebhookSink() as sink, running(make_settings(sink.url, rules, pool_size=1)) as hook:
        for topic in ("nmq/pub1", "other/x", "$SYS/status", "nmq", "nmq/pub2/deep", "dev/status", "$nmq/a"):
            hook.on_message_publish(message(topic=topic, payload=topic.encode()))
        hook.stop(timeout=5)
    assert publish_payloads(sink.requests) == ["nmq/pub1", "nmq", "nmq/pub2/deep", "dev/status"]


def test_a_publish_rule_without_topic_matches_every_message_but_dollar_topics_need_their_own_rule():
    rules = [WebhookRule("on_message_publish"), WebhookRule("on_message_publish", "$SYS/brokers/#")]
    with WebhookSink() as sink, running(make_settings(sink.url, rules, pool_size=1)) as hook:
        for topic in ("a", "a/b/c", "$SYS/brokers/x", "$SYS/other"):
            hook.on_message_publish(message(topic=topic, payload=topic.encode()))
        hook.stop(timeout=5)
    assert publish_payloads(sink.requests) == ["a", "a/b/c", "$SYS/brokers/x"]


def test_overlapping_rules_give_one_post_per_event():
    rules = [
        WebhookRule("on_message_publish", "a/#"),
        WebhookRule("on_message_publish", "a/b"),
        WebhookRule("on_message_publish", "+/b"),
        WebhookRule("on_client_connack"),
        WebhookRule("on_client_connack"),
    ]
    with WebhookSink() as sink, running(make_settings(sink.url, rules, pool_size=1)) as hook:
        hook.on_message_publish(message(topic="a/b"))
        hook.on_client_connack(client(), "success")
        hook.stop(timeout=5)
    assert [request.json()["action"] for request in sink.requests] == ["message_publish", "client_connack"]


def test_events_without_a_rule_do_nothing():
    rules = [WebhookRule("on_client_connack")]
    with WebhookSink() as sink, running(make_settings(sink.url, rules)) as hook:
        assert hook.enabled_events == {"on_client_connack"}
        hook.on_client_connect(client())
        hook.on_client_connected(client())
        hook.on_client_disconnected(client(), "normal")
        hook.on_message_publish(message())
        hook.on_client_subscribe(client(), "a", SubOptions())
        hook.on_client_connack(client(), "not_authorized")
        hook.stop(timeout=5)
    assert [request.json()["action"] for request in sink.requests] == ["client_connack"]
    assert hook.counters()["queued"] == 1


def test_every_extra_event_is_posted_with_emqx_fields():
    rules = [WebhookRule(name) for name in EVENT_CALLS]
    who = client()
    hello = message()
    with WebhookSink() as sink, running(make_settings(sink.url, rules)) as hook:
        for name, args in EVENT_CALLS.items():
            getattr(hook, name)(*args(who, hello))
        requests = sink.wait_for(len(EVENT_CALLS))
    bodies = [request.json() for request in requests]
    assert sorted(body["action"] for body in bodies) == sorted(name[3:] for name in EVENT_CALLS)
    by_action = {body["action"]: body for body in bodies}
    assert by_action["client_connect"]["ipaddress"] == "127.0.0.1"
    assert by_action["client_connected"]["connected_at"] == 1706703724000
    assert by_action["client_subscribe"]["opts"] == {"qos": 1, "nl": 0, "rap": 0, "rh": 0}
    assert by_action["session_terminated"]["reason"] == "takenover"
    assert by_action["message_delivered"]["clientid"] == "wbhk_clientid"
    assert by_action["message_acked"]["payload"] == "Hello World!"
    assert by_action["message_dropped"]["reason"] == "queue_full"


EVENT_CALLS = {
    "on_client_connect": lambda c, m: (c,),
    "on_client_connack": lambda c, m: (c, "success"),
    "on_client_connected": lambda c, m: (c,),
    "on_client_subscribe": lambda c, m: (c, "nmq/#", SubOptions(qos=1)),
    "on_session_subscribed": lambda c, m: (c, "nmq/#", SubOptions(qos=1)),
    "on_message_publish": lambda c, m: (m,),
    "on_message_delivered": lambda c, m: (c, m),
    "on_message_acked": lambda c, m: (c, m),
    "on_message_dropped": lambda c, m: (c, m, "queue_full"),
    "on_client_unsubscribe": lambda c, m: (c, "nmq/#"),
    "on_session_unsubscribed": lambda c, m: (c, "nmq/#"),
    "on_client_disconnected": lambda c, m: (c, "takenover"),
    "on_session_terminated": lambda c, m: (c, "takenover"),
}


def test_binary_and_empty_payloads_arrive_as_valid_json():
    rules = [WebhookRule("on_message_publish")]
    with WebhookSink() as sink, running(make_settings(sink.url, rules, pool_size=1)) as hook:
        for payload in (b"\xff\xfe\x00\x01", b"", b'"quoted" \\ \n'):
            hook.on_message_publish(message(topic="bin", payload=payload))
        requests = sink.wait_for(3)
    assert publish_payloads(requests) == ["\ufffd\ufffd\x00\x01", "", '"quoted" \\ \n']


@pytest.mark.parametrize(
    ("encoding", "expected"), [("base64", "SGVsbG8gV29ybGQh"), ("base62", "T8dgcjRGkZ3aysdN")]
)
def test_configured_encoding_applies_to_the_payload(encoding, expected):
    with WebhookSink() as sink, running(make_settings(sink.url, TUTORIAL_RULES, encoding=encoding)) as hook:
        hook.on_message_publish(message())
        (request,) = sink.wait_for(1)
    assert request.json()["payload"] == expected


def test_500_then_200_is_retried_and_delivered():
    with WebhookSink(fail_first=2) as sink, running(make_settings(sink.url, TUTORIAL_RULES)) as hook:
        hook.on_client_connack(client(), "success")
        requests = sink.wait_for(3)
        wait_until(lambda: hook.counters()["delivered"] == 1)
    assert requests[0].body == requests[1].body == requests[2].body
    assert hook.counters() == settled_counters(queued=1, delivered=1, retried=2)


def test_429_is_retried_and_other_client_errors_are_failed_at_once():
    with (
        WebhookSink(fail_first=1, fail_status=429) as sink,
        running(make_settings(sink.url, TUTORIAL_RULES)) as hook,
    ):
        hook.on_client_connack(client(), "success")
        hook.stop(timeout=5)
    assert len(sink.requests) == 2
    assert hook.counters()["delivered"] == 1
    with WebhookSink(status=404) as sink, running(make_settings(sink.url, TUTORIAL_RULES)) as hook:
        hook.on_client_connack(client(), "success")
        hook.stop(timeout=5)
    assert len(sink.requests) == 1
    assert hook.counters() == settled_counters(queued=1, failed=1)


def test_a_retry_after_from_the_endpoint_is_waited_for():
    with (
        WebhookSink(fail_first=1, fail_status=429, retry_after="1") as sink,
        running(make_settings(sink.url, TUTORIAL_RULES)) as hook,  # back-off alone: 0.01 s
    ):
        hook.on_client_connack(client(), "success")
        started = time.monotonic()
        sink.wait_for(1)
        sink.wait_for(2, timeout=5)
        waited = time.monotonic() - started
        wait_until(lambda: hook.counters()["delivered"] == 1)
    assert waited >= 1.0, "the retry came before the Retry-After"
    assert hook.counters() == settled_counters(queued=1, delivered=1, retried=1)


def test_refused_endpoint_is_counted_failed_after_the_retries(caplog):
    settings = make_settings(refused_url(), TUTORIAL_RULES, max_retries=2)
    with caplog.at_level(logging.WARNING, logger="nanomq.webhook"), running(settings) as hook:
        for number in range(20):
            hook.on_client_connack(client(f"c{number}"), "success")
        hook.stop(timeout=10)
    assert hook.counters() == settled_counters(queued=20, retried=40, failed=20)
    failures = [record for record in caplog.records if "failed after 3 attempt(s)" in record.getMessage()]
    assert len(failures) == 1, "endpoint warnings are rate-limited"
    assert "Connection refused" in failures[0].getMessage()
    assert "webhook counters" in caplog.records[-1].getMessage()


def test_hanging_endpoint_times_out_without_blocking_the_hub():
    ticks = []

    def ticker():
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(0.01)

    settings = make_settings("", TUTORIAL_RULES, cancel_timeout=0.5, max_retries=0, pool_size=1)
    with WebhookSink(hang=True) as sink:
        settings.url = sink.url
        with running(settings) as hook:
            beat = gevent.spawn(ticker)
            started = time.monotonic()
            hook.on_client_connack(client(), "success")
            sink.wait_for(1)
            hook.stop(timeout=5)
            elapsed = time.monotonic() - started
            beat.kill()
    assert hook.counters() == settled_counters(queued=1, failed=1)
    assert 0.45 < elapsed < 3
    during_hang = [tick for tick in ticks if started + 0.1 < tick < started + 0.45]
    assert len(during_hang) > 10, "the hub kept running other greenlets while the POST waited"


def test_with_per_client_order_events_of_one_client_are_posted_in_order_under_retries():
    rules = [WebhookRule("on_message_publish")]
    with (
        WebhookSink(fail_first=5) as sink,
        running(make_settings(sink.url, rules, pool_size=8, per_client_order=True)) as hook,
    ):
        for number in range(30):
            for sender in ("alpha", "beta", "gamma"):
                hook.on_message_publish(message(topic="seq", payload=b"%d" % number, from_client_id=sender))
        hook.stop(timeout=10)
    assert hook.counters()["delivered"] == 90
    for sender in ("alpha", "beta", "gamma"):
        sequence = [request.json()["payload"] for request in sink.requests if sender in request.body.decode()]
        # A retry resends the failed POST and what was pipelined after it: taken at
        # its last arrival, every event comes after all the earlier ones.
        last_arrival = {payload: index for index, payload in enumerate(sequence)}
        assert sorted(last_arrival, key=last_arrival.get) == [str(number) for number in range(30)]


def test_a_full_queue_drops_and_counts_and_the_counters_add_up():
    rules = [WebhookRule("on_message_publish")]
    settings = make_settings("", rules, pool_size=2, queue_size=10)
    with WebhookSink(fail_first=3) as sink:
        settings.url = sink.url
        with running(settings) as hook:
            for number in range(50):  # handed over in one go: the workers cannot take any meanwhile
                hook.on_message_publish(
                    message(topic="t", payload=b"%d" % number, from_client_id=f"c{number}")
                )
            assert hook.counters()["queued"] == 10
            assert hook.counters()["dropped"] == 40
            hook.stop(timeout=5)
    counters = hook.counters()
    assert counters["delivered"] == 10
    assert counters["retried"] == 3
    assert counters["delivered"] + counters["failed"] + counters["dropped"] == 50


def test_stop_drains_the_queue():
    with (
        WebhookSink(delay=0.02) as sink,
        running(make_settings(sink.url, TUTORIAL_RULES, pool_size=2)) as hook,
    ):
        for number in range(20):
            hook.on_client_connack(client(f"c{number}"), "success")
        hook.stop(timeout=10)
    assert len(sink.requests) == 20
    assert hook.counters()["delivered"] == 20
    hook.on_client_connack(client(), "success")
    assert hook.counters()["dropped"] == 1, "events after stop are counted as dropped"


def test_what_the_drain_timeout_leaves_is_counted_as_dropped():
    settings = make_settings("", TUTORIAL_RULES, pool_size=1, cancel_timeout=10.0, drain_timeout=0.3)
    with WebhookSink(hang=True) as sink:
        settings.url = sink.url
        with running(settings) as hook:
            for number in range(5):
                hook.on_client_connack(client(f"c{number}"), "success")
            sink.wait_for(1)
            started = time.monotonic()
            hook.stop()
            assert time.monotonic() - started < 2
    assert hook.counters() == settled_counters(queued=5, dropped=5)


def test_keep_alive_connections_are_reused():
    with WebhookSink() as sink, running(make_settings(sink.url, TUTORIAL_RULES, pool_size=1)) as hook:
        for number in range(5):
            hook.on_client_connack(client(f"c{number}"), "success")
        requests = sink.wait_for(5)
    assert len({request.peer_port for request in requests}) == 1


def test_counters_are_logged_periodically(caplog):
    with (
        caplog.at_level(logging.INFO, logger="nanomq.webhook"),
        WebhookSink() as sink,
        running(make_settings(sink.url, TUTORIAL_RULES), report_interval=0.05) as hook,
    ):
        hook.on_client_connack(client(), "success")
        sink.wait_for(1)
        wait_until(lambda: any("delivered=1" in record.getMessage() for record in caplog.records))
    line = next(record for record in caplog.records if "delivered=1" in record.getMessage())
    assert line.name == "nanomq.webhook"
    assert line.levelno == logging.INFO
    assert "queued=1, delivered=1, retried=0, failed=0, dropped=0" in line.getMessage()


def test_event_methods_never_raise_into_the_broker():
    with WebhookSink() as sink, running(make_settings(sink.url, TUTORIAL_RULES)) as hook:
        hook.on_message_publish(None)
        hook.on_client_connack(object(), "success")
        hook.stop(timeout=5)
    assert hook.counters()["dropped"] == 2
    assert sink.requests == []


def test_an_oversized_base62_payload_is_failed_with_a_reason(caplog):
    rules = [WebhookRule("on_message_publish")]
    with (
        caplog.at_level(logging.WARNING, logger="nanomq.webhook"),
        WebhookSink() as sink,
        running(make_settings(sink.url, rules, encoding="base62")) as hook,
    ):
        hook.on_message_publish(message(topic="big", payload=b"x" * 100_000))
        hook.on_message_publish(message(topic="small", payload=b"x"))
        sink.wait_for(1)
        hook.stop(timeout=5)
    assert hook.counters()["failed"] == 1
    assert hook.counters()["delivered"] == 1
    assert any("base62 limit" in record.getMessage() for record in caplog.records)
