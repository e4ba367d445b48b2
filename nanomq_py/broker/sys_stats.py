"""Mosquitto's `$SYS/broker/...` statistics tree, and the figures the HTTP API's
Prometheus endpoint and status page read too.

Names and plain-text payloads are Mosquitto's (mosquitto(8), "BROKER STATUS"):
`$SYS/broker/version` is retained at start; the rest is published, retained,
every `mqtt.sys_interval` seconds, a topic only when its text changed (as
Mosquitto does), and only while some filter under `$SYS` is subscribed. An idle
broker pays nothing: the broker's one-second tick (which runs anyway) compares
a time and looks up one dict key; no timer of our own exists. When the last
`$SYS` subscriber goes, the periodic values are cleared from the retained
store, so a later subscriber never sees stale figures: it gets the version at
once and the rest at the next tick.

Load averages are Mosquitto's: per interval, the rate per minute over the
time since the last update, folded into exponentially decaying averages over
1, 5 and 15 minutes (new = rate + exp(-dt/window) * (old - rate)). After a
pause with no subscriber, the first update averages over the whole pause.

The counters behind them are plain integers bumped inline (broker.stats);
optional features (webhook, store, bridges) are read through their
`counters()` dicts. Work per update: one pass over the sessions (for the
disconnected and shared subscription counts) and one read of /proc/self/status.
"""

from __future__ import annotations

import math
from time import monotonic

from nanomq_py import __version__

from .message import Message

PREFIX = "$SYS/broker/"
VERSION_TEXT = f"nanomq_py version {__version__}"
WINDOWS = (("1min", 60.0), ("5min", 300.0), ("15min", 900.0))
# load/<name>/<window>: Stats attribute counted per minute
LOADS = (
    ("messages/received", "packets_received"),
    ("messages/sent", "packets_sent"),
    ("publish/received", "received"),
    ("publish/sent", "publish_sent"),
    ("publish/dropped", "dropped"),
    ("bytes/received", "bytes_received"),
    ("bytes/sent", "bytes_sent"),
)


def figures(broker):
    """Broker-wide gauges and counters by name: the one source for $SYS,
    Prometheus and the status page."""
    stats = broker.stats
    connected = len(broker.clients)
    sessions = len(broker.sessions)
    rss, peak = memory()
    own = broker.sys_stats
    return {
        "connections": connected,
        "connections_peak": max(stats.connections_peak, connected),
        "sessions": sessions,
        "disconnected": sessions - sum(1 for cid in broker.sessions if cid in broker.clients),
        "subscriptions": broker.trie.count,
        "shared_subscriptions": sum(
            1 for s in broker.sessions.values() for sub in s.subscriptions.values() if sub.group is not None
        ),
        # the application's: without the broker's own retained $SYS values
        "retained": len(broker.retained) - (len(own.published) + 1 if own is not None else 0),
        "memory": rss,
        "memory_peak": peak,
        **stats.as_dict(),
    }


def features(broker):
    """[(section, name or None, counters dict)] of the optional features that exist:
    the webhook, the durable store, each bridge (CONTRACT.md's `counters()`)."""
    found = []
    for section, owner in (("webhook", broker.hooks), ("store", getattr(broker, "store", None))):
        counters = getattr(owner, "counters", None)
        if counters is not None:
            found.append((section, None, counters()))
    for name, bridge in sorted((getattr(broker, "bridges", None) or {}).items()):
        found.append(("bridges", name, bridge.counters()))
    return found


def memory():
    """(resident bytes, peak resident bytes) of this process; (0, 0) without /proc."""
    rss = peak = 0
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"VmHWM:"):
                    peak = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, peak


class SysStats:
    """Created by the broker when `mqtt.sys_interval` is not 0; `tick(now)` from its sweep."""

    def __init__(self, broker, interval):
        self.broker = broker
        self.interval = interval
        self.started_at = monotonic()
        self.next_at = 0.0
        self.published = {}  # topic -> payload text last published (and retained)
        self.loads = {}  # load topic -> current average
        self.marks = None  # (time, {Stats attribute: value}) at the last update
        # Static, retained from the start; nobody has subscribed yet, so nothing to route.
        broker.retained.store(Message(PREFIX + "version", VERSION_TEXT.encode(), 0, True))

    def tick(self, now):
        if now < self.next_at:
            return
        if not self.broker.trie.has_subscriptions_under("$SYS"):
            if self.published:
                self._forget()
            self.next_at = now + 1.0
            return
        self.next_at = now + self.interval
        for topic, text in self.tree(now):
            if self.published.get(topic) != text:
                self._publish(topic, text)
                self.published[topic] = text

    def tree(self, now):
        """[(topic, payload text)] of every periodic value, loads updated to `now`."""
        broker = self.broker
        f = figures(broker)
        items = [
            ("uptime", f"{int(now - self.started_at)} seconds"),
            ("clients/connected", f["connections"]),
            ("clients/disconnected", f["disconnected"]),
            ("clients/total", f["sessions"]),
            ("clients/maximum", f["connections_peak"]),
            ("messages/received", f["packets_received"]),
            ("messages/sent", f["packets_sent"]),
            ("publish/messages/received", f["received"]),
            ("publish/messages/sent", f["publish_sent"]),
            ("publish/messages/dropped", f["dropped"]),
            ("bytes/received", f["bytes_received"]),
            ("bytes/sent", f["bytes_sent"]),
            ("subscriptions/count", f["subscriptions"]),
            ("shared_subscriptions/count", f["shared_subscriptions"]),
            ("retained messages/count", f["retained"]),
            ("heap/current", f["memory"]),
            ("heap/maximum", f["memory_peak"]),
        ]
        items.extend(self._update_loads(now, f))
        for section, name, counters in features(broker):
            where = f"{section}/{name}/" if name is not None else f"{section}/"
            items.extend((where + key, value) for key, value in counters.items())
        return [(PREFIX + topic, _text(value)) for topic, value in items]

    def _update_loads(self, now, f):
        """Mosquitto's calc_load for every LOADS counter and window; 0.00 at the first update."""
        marks = self.marks
        if marks is None:
            self.loads = {f"load/{name}/{window}": 0.0 for name, _ in LOADS for window, _ in WINDOWS}
        elif now - marks[0] >= 0.5:  # a rate over less than that is noise
            elapsed = now - marks[0]
            for name, attr in LOADS:
                rate = (f[attr] - marks[1][attr]) * 60.0 / elapsed
                for window, seconds in WINDOWS:
                    topic = f"load/{name}/{window}"
                    self.loads[topic] = rate + math.exp(-elapsed / seconds) * (self.loads[topic] - rate)
        else:
            return list(self.loads.items())
        self.marks = (now, {attr: f[attr] for _, attr in LOADS})
        return list(self.loads.items())

    def _publish(self, topic, text):
        broker = self.broker
        broker.route(Message(topic, text.encode(), 0, True))
        broker.stats.received -= 1  # the broker's own statistics are not messages it received

    def _forget(self):
        """Nobody listens any more: drop the retained periodic values, start afresh next time."""
        retained = self.broker.retained
        for topic in self.published:
            retained.store(Message(topic, b"", 0, True))
        self.published = {}


def _text(value):
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
