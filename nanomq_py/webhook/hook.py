"""WebHook: the broker-event consumer that turns configured events into POSTs.

Each event method runs on the broker's path. It checks the rules, captures the
few fields the body needs (for messages a tuple, because the broker may reuse
or change its objects; ClientInfo is fixed once CONNECT is read, so it is kept
as is) and hands them to the dispatcher: microseconds, no waiting, no
exceptions out. Bodies are built later by a worker.
"""

from __future__ import annotations

import functools

from ..broker.events import BrokerEvents
from .bodies import BodyBuilder
from .dispatcher import Dispatcher
from .encoding import payload_encoder
from .rules import compile_rules, topic_matcher


def _never_raises(method):
    """The broker's path must not fail because of the webhook: a fault drops the event and counts it."""

    @functools.wraps(method)
    def guarded(self, *args):
        try:
            method(self, *args)
        except Exception as exc:
            self._dispatcher.drop(f"{method.__name__} failed: {exc!r}")

    return guarded


def _matcher(rules, event):
    """The topic test of a message event, or None when the event has no rule."""
    return topic_matcher(rules[event]) if event in rules else None


def _message_fields(msg) -> tuple:
    return (msg.topic, msg.payload, msg.qos, msg.retain, msg.from_client_id, msg.from_username)


class WebHook(BrokerEvents):
    """hook = WebHook(settings.webhook); hook.start(); ... hook.stop(); hook.counters()."""

    def __init__(self, settings, *, report_interval: float = 60.0, warn_interval: float = 10.0):
        rules = compile_rules(settings.events)
        self.enabled_events = frozenset(rules)  # the broker may skip calls for the others
        self._bodies = BodyBuilder(payload_encoder(settings.encoding))
        self._dispatcher = Dispatcher(settings, report_interval, warn_interval)
        self._submit = self._dispatcher.submit
        self._connect = "on_client_connect" in rules
        self._connack = "on_client_connack" in rules
        self._connected = "on_client_connected" in rules
        self._disconnected = "on_client_disconnected" in rules
        self._subscribe = "on_client_subscribe" in rules
        self._unsubscribe = "on_client_unsubscribe" in rules
        self._subscribed = "on_session_subscribed" in rules
        self._unsubscribed = "on_session_unsubscribed" in rules
        self._terminated = "on_session_terminated" in rules
        self._publish_matches = _matcher(rules, "on_message_publish")
        self._delivered_matches = _matcher(rules, "on_message_delivered")
        self._acked_matches = _matcher(rules, "on_message_acked")
        self._dropped_matches = _matcher(rules, "on_message_dropped")

    def start(self) -> None:
        """Create the HTTP connection pool and the pool_size workers."""
        self._dispatcher.start()

    def stop(self, timeout: float | None = None) -> None:
        """Drain the queue for at most `timeout` (default settings.drain_timeout) seconds."""
        self._dispatcher.stop(timeout)

    def counters(self) -> dict[str, int]:
        """Cumulative queued, delivered, retried, failed, dropped; the gauges in_flight, waiting;
        and with a spool spooled, replayed, spool_dropped, spool_waiting."""
        counters = self._dispatcher.counters()
        if self._dispatcher.spool is not None:
            counters.update(self._dispatcher.spool.counters_dict())
        return counters

    def use_spool(self, store, interval: float) -> None:
        """Keep events that cannot be delivered now in the durable store (see spool)."""
        from .spool import Spool

        self._dispatcher.spool = Spool(store.queue("webhook"), interval, self._dispatcher.stats)

    # Client and session events.

    @_never_raises
    def on_client_connect(self, client):
        if self._connect:
            self._submit(client.client_id, self._bodies.client_connect, (client,))

    @_never_raises
    def on_client_connack(self, client, conn_ack):
        if self._connack:
            self._submit(client.client_id, self._bodies.client_connack, (client, conn_ack))

    @_never_raises
    def on_client_connected(self, client):
        if self._connected:
            self._submit(client.client_id, self._bodies.client_connected, (client,))

    @_never_raises
    def on_client_disconnected(self, client, reason):
        if self._disconnected:
            self._submit(client.client_id, self._bodies.client_disconnected, (client, reason))

    @_never_raises
    def on_client_subscribe(self, client, topic, opts):
        if self._subscribe:
            self._submit(client.client_id, self._bodies.client_subscribe, (client, topic, opts))

    @_never_raises
    def on_client_unsubscribe(self, client, topic):
        if self._unsubscribe:
            self._submit(client.client_id, self._bodies.client_unsubscribe, (client, topic))

    @_never_raises
    def on_session_subscribed(self, client, topic, opts):
        if self._subscribed:
            self._submit(client.client_id, self._bodies.session_subscribed, (client, topic, opts))

    @_never_raises
    def on_session_unsubscribed(self, client, topic):
        if self._unsubscribed:
            self._submit(client.client_id, self._bodies.session_unsubscribed, (client, topic))

    @_never_raises
    def on_session_terminated(self, client, reason):
        if self._terminated:
            self._submit(client.client_id, self._bodies.session_terminated, (client, reason))

    # Message events: the rule's topic filter applies.

    @_never_raises
    def on_message_publish(self, msg):
        matches = self._publish_matches
        if matches is not None and matches(msg.topic):
            self._submit(
                msg.from_client_id, self._bodies.message_publish, (_message_fields(msg),), len(msg.payload)
            )

    @_never_raises
    def on_message_delivered(self, client, msg):
        matches = self._delivered_matches
        if matches is not None and matches(msg.topic):
            self._submit(
                client.client_id,
                self._bodies.message_delivered,
                (client, _message_fields(msg)),
                len(msg.payload),
            )

    @_never_raises
    def on_message_acked(self, client, msg):
        matches = self._acked_matches
        if matches is not None and matches(msg.topic):
            self._submit(
                client.client_id, self._bodies.message_acked, (client, _message_fields(msg)), len(msg.payload)
            )

    @_never_raises
    def on_message_dropped(self, client, msg, reason):
        matches = self._dropped_matches
        if matches is not None and matches(msg.topic):
            key = msg.from_client_id if client is None else client.client_id
            self._submit(
                key, self._bodies.message_dropped, (client, _message_fields(msg), reason), len(msg.payload)
            )
