"""The broker's event interface: what it tells consumers (the webhook) about
MQTT events.

The broker calls these methods synchronously on its own path, so an
implementation must only hand the event over (microseconds) and never block.
The broker calls nothing at all when no consumer is attached.
"""

from __future__ import annotations


class ClientInfo:
    """What is known about a client once its CONNECT is read."""

    __slots__ = (
        "client_id",
        "username",
        "proto_ver",
        "keepalive",
        "peer_host",
        "peer_port",
        "connected_at",
        "clean_start",
    )

    def __init__(
        self, client_id, username, proto_ver, keepalive, peer_host, peer_port, connected_at, clean_start
    ):
        self.client_id = client_id  # str
        self.username = username  # str or None when absent
        self.proto_ver = proto_ver  # 3, 4 or 5
        self.keepalive = keepalive  # seconds, as the client asked
        self.peer_host = peer_host  # str
        self.peer_port = peer_port  # int
        self.connected_at = connected_at  # epoch milliseconds
        self.clean_start = clean_start  # bool


class BrokerEvents:
    """Base class of event consumers; every method is a no-op here.

    `client` is a ClientInfo, `msg` a broker.message.Message (topic, payload
    bytes, qos, retain, from_client_id, from_username, properties), `opts` a
    mqtt.packets.SubOptions, reasons are snake_case strings such as "normal",
    "keepalive_timeout", "takenover", "tcp_closed", "protocol_error".
    """

    def on_client_connect(self, client):
        """CONNECT received, before authentication."""

    def on_client_connack(self, client, conn_ack):
        """CONNACK about to be sent; conn_ack is "success" or the refusal reason."""

    def on_client_connected(self, client):
        """The client is connected and its session attached."""

    def on_client_disconnected(self, client, reason):
        """The network connection of a connected client ended."""

    def on_client_subscribe(self, client, topic, opts):
        """SUBSCRIBE received, one call per topic filter, before ACL checks."""

    def on_client_unsubscribe(self, client, topic):
        """UNSUBSCRIBE received, one call per topic filter."""

    def on_session_subscribed(self, client, topic, opts):
        """A subscription was added to the session."""

    def on_session_unsubscribed(self, client, topic):
        """A subscription was removed from the session."""

    def on_session_terminated(self, client, reason):
        """The session ended (clean session close, expiry, takeover discard)."""

    def on_message_publish(self, msg):
        """A message (including wills) entered the broker for routing."""

    def on_message_delivered(self, client, msg):
        """A message was written to a subscriber."""

    def on_message_acked(self, client, msg):
        """A subscriber acknowledged a QoS 1/2 message (PUBACK / PUBCOMP)."""

    def on_message_dropped(self, client, msg, reason):
        """A message was dropped for a subscriber (queue_full, expired, too_large, ...).
        client is None when the drop is not tied to one subscriber."""
