"""Mosquitto's $SYS/broker statistics: a real broker process and real subscribers
(paho, mosquitto_sub), plus in-process checks of the tree's rules (what an idle
broker does, load averages, optional features' counters) on a real Broker object."""

from __future__ import annotations

import math
import queue
import re
import shutil
import subprocess
import time

import pytest
from helpers_cli import run_nanomq, write_conf
from mqtt_client import TestClient
from webhook_sink import WebhookSink

from nanomq_py.broker.broker import Broker
from nanomq_py.broker.session import Session
from nanomq_py.broker.sys_stats import PREFIX, SysStats
from nanomq_py.broker.trie import Subscription
from nanomq_py.config import load_settings
from nanomq_py.mqtt.packets import SubOptions
from nanomq_py.settings import Settings

FAST = "mqtt.sys_interval = 1s\n"
TIMEOUT = 15


def collect(client, wanted, timeout=TIMEOUT):
    """topic -> (payload text, retain flag), last value per topic, until `wanted(seen)`
    is true; fails after `timeout` seconds without it."""
    seen = {}
    deadline = time.monotonic() + timeout
    while not wanted(seen):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"gave up waiting; seen {sorted(seen)}")
        try:
            msg = client.messages.get(timeout=left)
        except queue.Empty:
            continue
        seen[msg.topic] = (msg.payload.decode(), msg.retain)
    return seen


def has(*topics):
    return lambda seen: all(PREFIX + topic in seen for topic in topics)


MOSQUITTO_TOPICS = [
    "uptime",
    "clients/connected",
    "clients/disconnected",
    "clients/total",
    "clients/maximum",
    "messages/received",
    "messages/sent",
    "publish/messages/received",
    "publish/messages/sent",
    "publish/messages/dropped",
    "bytes/received",
    "bytes/sent",
    "subscriptions/count",
    "retained messages/count",
    "heap/current",
    "heap/maximum",
] + [
    f"load/{what}/{window}"
    for what in (
        "messages/received",
        "messages/sent",
        "publish/received",
        "publish/sent",
        "publish/dropped",
        "bytes/received",
        "bytes/sent",
    )
    for window in ("1min", "5min", "15min")
]


def test_the_tree_has_mosquittos_topics_and_plain_text_payloads(broker_factory):
    proc = broker_factory(FAST)
    watcher = TestClient(proc)
    watcher.connect()
    try:
        watcher.subscribe("$SYS/broker/#")
        seen = collect(watcher, has("version", *MOSQUITTO_TOPICS))
    finally:
        watcher.disconnect()
    version, retained = seen[PREFIX + "version"]
    assert re.fullmatch(r"nanomq_py version \d+\.\d+\.\d+\S*", version) and retained  # static, retained
    assert re.fullmatch(r"\d+ seconds", seen[PREFIX + "uptime"][0])
    for topic in MOSQUITTO_TOPICS:
        text = seen[PREFIX + topic][0]
        pattern = (
            r"\d+\.\d\d" if topic.startswith("load/") else r"\d+ seconds" if topic == "uptime" else r"\d+"
        )
        assert re.fullmatch(pattern, text), (topic, text)
    assert int(seen[PREFIX + "clients/connected"][0]) >= 1
    assert int(seen[PREFIX + "subscriptions/count"][0]) >= 1
    assert int(seen[PREFIX + "heap/current"][0]) > 1_000_000  # the process RSS, in bytes


def test_counters_and_loads_move_when_messages_flow(broker_factory):
    proc = broker_factory(FAST)
    watcher = TestClient(proc)
    watcher.connect()
    publisher = TestClient(proc)
    publisher.connect()
    subscriber = TestClient(proc)
    subscriber.connect()
    try:
        subscriber.subscribe("flow/#")
        watcher.subscribe("$SYS/broker/publish/messages/+")
        watcher.subscribe("$SYS/broker/load/publish/received/1min")
        first = collect(watcher, has("publish/messages/received", "publish/messages/sent"))
        received = int(first[PREFIX + "publish/messages/received"][0])
        sent = int(first[PREFIX + "publish/messages/sent"][0])
        for n in range(20):
            publisher.publish(f"flow/{n}", b"x", qos=1)
        assert len(subscriber.expect(20)) == 20

        def moved(seen):
            def value(topic, cast=int):
                return cast(seen[PREFIX + topic][0]) if PREFIX + topic in seen else None

            return (
                (value("publish/messages/received") or 0) >= received + 20
                and (value("publish/messages/sent") or 0) >= sent + 20
                and (value("load/publish/received/1min", float) or 0.0) > 0.0
            )

        collect(watcher, moved)
    finally:
        for client in (watcher, publisher, subscriber):
            client.disconnect()


def test_mosquitto_sub_reads_the_tree(broker_factory):
    if shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto_sub is not installed (apt-get install mosquitto-clients)")
    proc = broker_factory(FAST)
    host, port = proc.listeners["tcp"]
    out = subprocess.run(
        ["mosquitto_sub", "-h", host, "-p", str(port), "-t", "$SYS/#", "-v", "-C", "20", "-W", str(TIMEOUT)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 5,
    )
    lines = out.stdout.splitlines()
    assert len(lines) == 20, out
    assert lines[0].startswith("$SYS/broker/version nanomq_py version ")
    assert any(re.fullmatch(r"\$SYS/broker/uptime \d+ seconds", line) for line in lines)


def test_the_webhooks_counters_are_in_the_tree(broker_factory):
    with WebhookSink() as sink:
        conf = FAST + f'webhook {{\n url = "{sink.url}"\n events = [{{event = "on_client_connected"}}]\n}}\n'
        proc = broker_factory(conf)
        watcher = TestClient(proc)
        watcher.connect()
        try:
            sink.wait_for(1)  # the watcher's own on_client_connected
            watcher.subscribe("$SYS/broker/webhook/#")
            keys = ("queued", "delivered", "failed", "dropped")
            seen = collect(
                watcher,
                lambda seen: (
                    has(*(f"webhook/{key}" for key in keys))(seen)
                    and int(seen[PREFIX + "webhook/delivered"][0]) >= 1
                ),
            )
        finally:
            watcher.disconnect()
    assert all(text.isdigit() for text, _ in seen.values())


def test_sys_interval_0_turns_the_tree_off(broker_factory):
    proc = broker_factory("mqtt.sys_interval = 0\n")
    watcher = TestClient(proc)
    publisher = TestClient(proc)
    watcher.connect()
    publisher.connect()
    try:
        watcher.subscribe("$SYS/broker/#")
        # Nothing, not even the version: absence checked by a marker, not a wait.
        assert watcher.received_before_sync(publisher) == []
    finally:
        watcher.disconnect()
        publisher.disconnect()


@pytest.mark.parametrize("text", ["-1s", "often", "true"])
def test_a_bad_sys_interval_stops_the_start_naming_the_key(tmp_path, text):
    path = write_conf(tmp_path, f"mqtt.sys_interval = {text}\n")
    result = run_nanomq(tmp_path, "start", "--conf", str(path))
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if "sys_interval" in line]
    assert "mqtt.sys_interval = " in line and "expected a duration" in line


def test_sys_interval_reads_as_a_duration(tmp_path):
    path = write_conf(tmp_path, "mqtt { sys_interval = 1m }\n")
    settings, _ = load_settings(str(path), None, {}, None)
    assert settings.mqtt.sys_interval == 60.0


# --------------------------------------------------------------------------- in-process rules


class _Feature:
    def __init__(self, counters):
        self._counters = counters

    def counters(self):
        return dict(self._counters)


def _broker(interval=10.0):
    settings = Settings()
    settings.mqtt.sys_interval = interval
    broker = Broker(settings)
    if broker.sys_stats is not None:
        broker.sys_stats.started_at = 0.0  # the tests' clock: tick(now) with small numbers
    return broker


def _subscribe(broker, flt="$SYS/#"):
    session = Session(broker, "watcher")
    sub = Subscription(session, flt, SubOptions(0, False, False, 0))
    broker.trie.add(sub)
    return sub


def _retained_topics(broker):
    return {msg.topic for msg in broker.retained.matching("$SYS/#")}


def test_an_idle_broker_publishes_nothing_and_keeps_only_the_version():
    broker = _broker()
    stats = broker.sys_stats
    for second in range(1, 30):
        broker.tick(float(second))
    assert _retained_topics(broker) == {PREFIX + "version"}
    assert stats.published == {} and stats.marks is None
    assert broker.stats.routed == 0 and broker.stats.received == 0


def test_values_are_retained_while_subscribed_and_cleared_after():
    broker = _broker(interval=10.0)
    sub = _subscribe(broker)
    broker.tick(100.0)
    topics = _retained_topics(broker)
    assert PREFIX + "uptime" in topics and PREFIX + "load/bytes/sent/15min" in topics
    assert broker.stats.received == 0  # the broker's own statistics are not counted as received
    assert broker.stats.routed == len(topics) - 1  # each matched the one subscription (not the version)
    routed = broker.stats.routed
    before = {msg.topic: msg for msg in broker.retained.matching("$SYS/#")}
    broker.tick(105.0)  # before the interval: nothing
    assert broker.stats.routed == routed
    broker.tick(110.0)  # only what changed, as Mosquitto does
    after = {msg.topic: msg for msg in broker.retained.matching("$SYS/#")}
    assert after[PREFIX + "uptime"].payload == b"110 seconds" != before[PREFIX + "uptime"].payload
    assert after[PREFIX + "clients/total"] is before[PREFIX + "clients/total"]  # unchanged: not sent again
    assert routed < broker.stats.routed < 2 * routed
    broker.trie.remove(sub)
    broker.tick(120.0)
    assert _retained_topics(broker) == {PREFIX + "version"}


def test_load_averages_are_mosquittos_exponential_averages():
    broker = _broker(interval=60.0)
    _subscribe(broker)
    stats = broker.sys_stats
    broker.tick(1000.0)  # first update: 0.00 everywhere
    assert stats.loads["load/publish/received/1min"] == 0.0
    broker.stats.received += 600  # 600 per minute for the next minute
    broker.tick(1060.0)
    rate = 600.0
    for window, seconds in (("1min", 60), ("5min", 300), ("15min", 900)):
        expected = rate + math.exp(-60 / seconds) * (0.0 - rate)
        assert stats.loads[f"load/publish/received/{window}"] == pytest.approx(expected)
    published = {msg.topic: msg.payload for msg in broker.retained.matching("$SYS/broker/load/#")}
    assert published[PREFIX + "load/publish/received/1min"] == b"%.2f" % (rate * (1 - math.exp(-1)))


def test_optional_features_render_under_their_sections():
    broker = _broker()
    broker.store = _Feature({"db_bytes": 4096, "messages": 3})
    broker.bridges = {"cloud": _Feature({"state": "connected", "forwarded": 7})}
    _subscribe(broker)
    broker.tick(1.0)
    values = {msg.topic: msg.payload for msg in broker.retained.matching("$SYS/broker/#")}
    assert values[PREFIX + "store/db_bytes"] == b"4096"
    assert values[PREFIX + "store/messages"] == b"3"
    assert values[PREFIX + "bridges/cloud/state"] == b"connected"
    assert values[PREFIX + "bridges/cloud/forwarded"] == b"7"
    assert not any("/webhook/" in topic for topic in values)  # not configured: not there


def test_the_tree_is_built_only_when_configured():
    assert _broker(interval=0).sys_stats is None
    assert isinstance(_broker().sys_stats, SysStats)
