"""A synchronous test client over paho-mqtt: every call waits for its
acknowledgement (an event, never a sleep) and received messages queue up."""

from __future__ import annotations

import itertools
import queue
import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TIMEOUT = 10
_ids = itertools.count(1)
PROTOCOLS = {"3.1": paho.MQTTv31, "3.1.1": paho.MQTTv311, "5": paho.MQTTv5}


def unique_id(prefix="client"):
    return f"{prefix}-{next(_ids)}-{threading.get_ident() % 10000}"


class TestClient:
    __test__ = False  # not a pytest class

    def __init__(self, broker, client_id=None, protocol="3.1.1", clean=True, transport="tcp", **paho_kwargs):
        self.broker = broker
        self.protocol = protocol
        self.client_id = unique_id() if client_id is None else client_id
        version = PROTOCOLS[protocol]
        kwargs = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": self.client_id,
            "protocol": version,
            "transport": transport,
        }
        if version != paho.MQTTv5:
            kwargs["clean_session"] = clean
        kwargs.update(paho_kwargs)
        self.clean = clean
        self.paho = paho.Client(**kwargs)
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.disconnects = queue.Queue()
        self._acks = {}
        self._lock = threading.Lock()
        self.paho.on_connect = self._on_connect
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = self._on_ack
        self.paho.on_unsubscribe = self._on_ack
        self.paho.on_publish = self._on_publish
        self.paho.on_disconnect = self._on_disconnect

    # -- callbacks (paho's thread) -----------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack.put((flags, reason_code, properties))

    def _on_message(self, client, userdata, message):
        self.messages.put(message)

    def _event(self, mid):
        with self._lock:
            return self._acks.setdefault(mid, [threading.Event(), None])

    def _on_ack(self, client, userdata, mid, reason_codes, properties):
        entry = self._event(mid)
        entry[1] = reason_codes
        entry[0].set()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        entry = self._event(mid)
        entry[1] = reason_code
        entry[0].set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnects.put(reason_code)

    # -- actions -----------------------------------------------------------

    def connect(
        self, keepalive=60, properties=None, expect_success=True, host=None, port=None, clean_start=None
    ):
        if self.protocol == "5":
            start = self.clean if clean_start is None else clean_start
            self.paho.connect(
                host or self.broker.host,
                port or self.broker.port,
                keepalive,
                clean_start=start,
                properties=properties,
            )
        else:
            self.paho.connect(host or self.broker.host, port or self.broker.port, keepalive)
        self.paho.loop_start()
        flags, reason_code, props = self.connack.get(timeout=TIMEOUT)
        if expect_success:
            assert not reason_code.is_failure, f"CONNACK refused: {reason_code}"
        return flags, reason_code, props

    def _wait(self, mid):
        entry = self._event(mid)
        assert entry[0].wait(TIMEOUT), f"no acknowledgement for mid {mid}"
        with self._lock:
            del self._acks[mid]
        return entry[1]

    def subscribe(self, topic, qos=0, options=None, properties=None):
        """Returns the granted reason codes (list)."""
        if options is not None:
            result, mid = self.paho.subscribe(topic, options=options, properties=properties)
        elif isinstance(topic, list):
            result, mid = self.paho.subscribe(topic, properties=properties)
        else:
            result, mid = self.paho.subscribe(topic, qos, properties=properties)
        assert result == paho.MQTT_ERR_SUCCESS
        return self._wait(mid)

    def unsubscribe(self, topic, properties=None):
        result, mid = self.paho.unsubscribe(topic, properties=properties)
        assert result == paho.MQTT_ERR_SUCCESS
        return self._wait(mid)

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True):
        info = self.paho.publish(topic, payload, qos, retain, properties=properties)
        if wait:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published(), f"publish to {topic} not acknowledged"
        return info

    def expect(self, count=1, timeout=TIMEOUT):
        """The next `count` messages, failing if they do not arrive in time."""
        return [self.messages.get(timeout=timeout) for _ in range(count)]

    def received_before_sync(self, publisher):
        """Messages that arrive before a marker `publisher` sends now.

        The broker routes one connection's packets in order, so anything the
        publisher sent earlier has been delivered (or not) by the time the
        marker arrives: absence is checked by an event, not a sleep.
        """
        marker_topic = f"sync/{self.client_id}"
        if not getattr(self, "_sync_subscribed", False):
            self.subscribe(marker_topic, 1)
            self._sync_subscribed = True
        token = unique_id("marker").encode()
        publisher.publish(marker_topic, token, qos=1)
        seen = []
        while True:
            message = self.messages.get(timeout=TIMEOUT)
            if message.topic == marker_topic and message.payload == token:
                return seen
            seen.append(message)

    def disconnect(self, properties=None):
        self.paho.disconnect(properties=properties)
        self.disconnects.get(timeout=TIMEOUT)
        self.paho.loop_stop()

    def drop(self):
        """Close the socket without DISCONNECT (abnormal close)."""
        sock = self.paho.socket()
        self.paho.loop_stop()
        if sock is not None:
            sock.close()


def v5_properties(packet_type=PacketTypes.PUBLISH, **values):
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props
