"""`GET /api/v4/prometheus`: the broker's figures in Prometheus' text format (0.0.4).

NanoMQ's metric names where NanoMQ has them (its rest_api.c `compose_metrics`:
nanomq_connections_count, _max, sessions, topics, subscribers, messages
received/sent/dropped, memory and cpu usage, each with its `_max`), with the
same meanings as far as this broker has them; NanoMQ's `_max` values are the
highest seen at a scrape, and so are ours, except connections (exact) and
memory (the kernel's peak RSS). Ours beside them, named `nanomq_<what>_total`
for counters. Optional features render their `counters()` as
`nanomq_webhook_<key>`, `nanomq_store_<key>` and `nanomq_bridge_<key>{name=...}`
(untyped: only the feature knows whether a key counts or measures); a text
value (a bridge's state) becomes `nanomq_bridge_<key>{name=...,<key>="..."} 1`.

Cost: one pass over sessions and subscriptions per scrape, nothing between.
"""

from __future__ import annotations

import os
import re
from time import monotonic

from ..broker.sys_stats import features, figures
from .document import Document

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# (metric, type, figure name, help): counters of the broker (broker.stats) and gauges
_METRICS = (
    ("nanomq_connections_count", "gauge", "connections", "Clients connected now"),
    ("nanomq_connections_max", "gauge", "connections_peak", "Most clients connected at once"),
    ("nanomq_sessions_count", "gauge", "sessions", "Sessions held: connected clients and kept sessions"),
    ("nanomq_topics_count", "gauge", "topics", "Distinct topic filters subscribed"),
    ("nanomq_subscribers_count", "gauge", "subscribers", "Sessions with at least one subscription"),
    ("nanomq_messages_received", "counter", "received", "PUBLISH messages the broker routed"),
    ("nanomq_messages_sent", "counter", "publish_sent", "PUBLISH packets written to subscribers"),
    ("nanomq_messages_dropped", "counter", "dropped", "Messages dropped (queue full, expired, too large)"),
    ("nanomq_memory_usage", "gauge", "memory", "Resident memory of the broker process (bytes)"),
    ("nanomq_memory_usage_max", "gauge", "memory_peak", "Peak resident memory of the process (bytes)"),
    ("nanomq_cpu_usage", "gauge", "cpu", "CPU used by the broker since the previous scrape (%)"),
    ("nanomq_uptime_seconds", "gauge", "uptime", "Seconds since the broker started"),
    ("nanomq_subscriptions_count", "gauge", "subscriptions", "Subscriptions, shared ones included"),
    ("nanomq_shared_subscriptions_count", "gauge", "shared_subscriptions", "Shared subscriptions"),
    ("nanomq_retained_count", "gauge", "retained", "Retained messages (the broker's own $SYS ones aside)"),
    ("nanomq_messages_routed_total", "counter", "routed", "Subscriptions that matched routed messages"),
    ("nanomq_packets_received_total", "counter", "packets_received", "MQTT packets of any type received"),
    ("nanomq_packets_sent_total", "counter", "packets_sent", "MQTT packets of any type sent"),
    ("nanomq_bytes_received_total", "counter", "bytes_received", "MQTT bytes received"),
    ("nanomq_bytes_sent_total", "counter", "bytes_sent", "MQTT bytes sent"),
    ("nanomq_connects_refused_total", "counter", "refused", "CONNECTs refused with a CONNACK code"),
    ("nanomq_protocol_errors_total", "counter", "protocol_errors", "Connections ended for a protocol error"),
    ("nanomq_connect_timeouts_total", "counter", "connect_timeouts", "Connections without CONNECT in time"),
    ("nanomq_connections_refused_total", "counter", "connections_refused", "Connections over the limit"),
    ("nanomq_subscriptions_refused_total", "counter", "subscriptions_refused", "Subscriptions refused"),
    ("nanomq_publishes_denied_total", "counter", "publishes_denied", "PUBLISHes the ACL denied"),
)
_PEAKS = {"sessions", "topics", "subscribers", "cpu"}  # NanoMQ's `<name>_max`: highest seen at a scrape
_PREFIXES = {"webhook": "nanomq_webhook_", "store": "nanomq_store_", "bridges": "nanomq_bridge_"}
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")


class Exposition:
    """One per API: keeps what spans scrapes (CPU time mark, NanoMQ-style maxima)."""

    def __init__(self, broker, started_at):
        self.broker = broker
        self.started_at = started_at
        self.cpu_mark = (monotonic(), _cpu_seconds())
        self.peaks = dict.fromkeys(_PEAKS, 0)

    def answer(self, query):
        return Document(CONTENT_TYPE, self.text().encode())

    def text(self):
        broker = self.broker
        now, cpu = monotonic(), _cpu_seconds()
        then, cpu_then = self.cpu_mark
        self.cpu_mark = (now, cpu)
        values = figures(broker)
        values["cpu"] = round(100.0 * (cpu - cpu_then) / (now - then), 2) if now > then else 0.0
        values["uptime"] = int(now - self.started_at)
        filters = set()
        subscribers = 0
        for session in broker.sessions.values():
            if session.subscriptions:
                subscribers += 1
                filters.update(session.subscriptions)
        values["topics"] = len(filters)
        values["subscribers"] = subscribers
        lines = []
        for metric, kind, name, text in _METRICS:
            _family(lines, metric, kind, text, [("", values[name])])
            if name in _PEAKS:
                peak = self.peaks[name] = max(self.peaks[name], values[name])
                _family(
                    lines,
                    metric.replace("_count", "") + "_max",
                    "gauge",
                    f"Highest {metric} seen at a scrape (as NanoMQ)",
                    [("", peak)],
                )
        self._features(lines)
        return "\n".join(lines) + "\n"

    def _features(self, lines):
        """Every optional feature's counters, one family per metric name."""
        families = {}  # metric -> [(labels, value)]
        for section, name, counters in features(self.broker):
            base = {} if name is None else {"name": name}
            for key, value in counters.items():
                metric = _PREFIXES[section] + _NOT_NAME.sub("_", key)
                if isinstance(value, str):
                    families.setdefault(metric, []).append((_labels({**base, key: value}), 1))
                elif isinstance(value, (int, float)):  # bool included: 0/1
                    families.setdefault(metric, []).append((_labels(base), value))
        for metric, samples in families.items():
            _family(lines, metric, "untyped", "Counter of an optional feature (see its counters())", samples)


def _family(lines, metric, kind, text, samples):
    lines.append(f"# HELP {metric} {text}")
    lines.append(f"# TYPE {metric} {kind}")
    for labels, value in samples:
        lines.append(f"{metric}{labels} {float(value) if isinstance(value, float) else int(value)}")


def _labels(pairs):
    if not pairs:
        return ""
    inner = ",".join(f'{_NOT_NAME.sub("_", key)}="{_escape(str(value))}"' for key, value in pairs.items())
    return "{" + inner + "}"


def _escape(value):
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _cpu_seconds():
    times = os.times()
    return times.user + times.system
