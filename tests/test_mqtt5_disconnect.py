"""Server-initiated MQTT 5 DISCONNECT: session taken over (0x8E), keepalive
timeout (0x8D), server shutting down (0x8B); and the webhook bodies of v5
clients (proto_ver 5, the disconnect reason named after the v5 reason code).
Packet too large (0x95) and protocol errors are in test_mqtt5_flow.py and
test_mqtt5_properties.py."""

from __future__ import annotations

from mqtt_client import TIMEOUT, unique_id
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from raw_client_v5 import RawV5Client
from webhook_sink import WebhookSink

from nanomq_py.mqtt import properties as p
from nanomq_py.mqtt import reason_codes as rc


def test_session_taken_over(client_factory):
    cid = unique_id("takeover")
    first = client_factory(client_id=cid, protocol="5", reconnect_on_failure=False)  # no takeover back
    first.connect()
    second = client_factory(client_id=cid, protocol="5")
    second.connect()
    assert first.disconnects.get(timeout=TIMEOUT).value == rc.SESSION_TAKEN_OVER
    second.publish("disconnect/after-takeover", b"still connected", qos=1)


def test_keepalive_timeout(broker):
    raw = RawV5Client(broker)
    assert raw.connect(unique_id("silent"), keepalive=1).reason_code == 0
    # Silent past 1.5 x keepalive: the broker's sweep (once a second) ends the connection.
    disconnect = raw.expect_disconnect(rc.KEEP_ALIVE_TIMEOUT)
    assert disconnect.properties[p.REASON_STRING] == "keep alive timeout"


def test_server_shutting_down(broker_factory, client_factory):
    own = broker_factory()
    client = client_factory(own, protocol="5", reconnect_on_failure=False)
    client.connect()
    assert own.stop() == 0
    assert client.disconnects.get(timeout=TIMEOUT).value == rc.SERVER_SHUTTING_DOWN


WEBHOOK = """
webhook {
  url = "%s"
  events = [
    { event = "on_client_connack" }
    { event = "on_client_disconnected" }
  ]
}
"""


def test_webhook_bodies_of_v5_clients(broker_factory, client_factory):
    with WebhookSink() as sink:
        hooked = broker_factory(WEBHOOK % sink.url)
        with_will = unique_id("v5-will")
        client = client_factory(hooked, client_id=with_will, protocol="5")
        client.paho.will_set("disconnect/will", b"bye")
        client.connect()
        client.paho.disconnect(
            reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=rc.DISCONNECT_WITH_WILL)
        )
        assert client.disconnects.get(timeout=TIMEOUT) is not None

        bad_alias = unique_id("v5-alias")
        raw = RawV5Client(hooked)
        raw.connect(bad_alias)
        raw.publish("disconnect/alias", b"x", 0, {p.TOPIC_ALIAS: 5})
        raw.expect_disconnect(rc.TOPIC_ALIAS_INVALID)

        bodies = [request.json() for request in sink.wait_for(4, timeout=10)]
    connacks = {b["clientid"]: b for b in bodies if b["action"] == "client_connack"}
    reasons = {b["clientid"]: b["reason"] for b in bodies if b["action"] == "client_disconnected"}
    assert connacks[with_will]["proto_ver"] == 5
    assert connacks[bad_alias]["proto_ver"] == 5
    assert reasons == {with_will: "disconnect_with_will_message", bad_alias: "topic_alias_invalid"}
