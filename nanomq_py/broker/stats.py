"""Broker counters a user can read (logs, API): plain integers, bumped inline."""


class Stats:
    __slots__ = (
        "received",
        "routed",
        "dropped",
        "refused",
        "protocol_errors",
        "connect_timeouts",
        "connections_refused",
        "subscriptions_refused",
        "publishes_denied",
        "packets_received",  # MQTT packets of any type ($SYS/broker/messages/received)
        "packets_sent",
        "publish_sent",  # PUBLISH packets written to subscribers
        "bytes_received",  # MQTT bytes (inside TLS/WebSocket framing)
        "bytes_sent",
        "connections_peak",  # most clients connected at once
    )

    def __init__(self):
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}
