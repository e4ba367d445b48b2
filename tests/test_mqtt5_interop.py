"""MQTT 5 application properties passed through unchanged (User Property,
Response Topic, Correlation Data, Payload Format Indicator, Content Type), on
live, retained and will messages; and v3.1 / v3.1.1 / v5 clients exchanging
messages on one topic."""

from __future__ import annotations

from mqtt_client import unique_id, v5_properties
from paho.mqtt.packettypes import PacketTypes

USER_PROPERTIES = [("origin", "sensor-7"), ("unit", "°C"), ("origin", "repeated keys keep their order")]


def application_properties(packet_type=PacketTypes.PUBLISH):
    return v5_properties(
        packet_type,
        UserProperty=USER_PROPERTIES,
        ResponseTopic="interop/replies/42",
        CorrelationData=b"\x00\x01binary\xff",
        PayloadFormatIndicator=1,
        ContentType="application/json; charset=utf-8",
    )


def assert_application_properties(props):
    assert props.UserProperty == USER_PROPERTIES
    assert props.ResponseTopic == "interop/replies/42"
    assert props.CorrelationData == b"\x00\x01binary\xff"
    assert props.PayloadFormatIndicator == 1
    assert props.ContentType == "application/json; charset=utf-8"


def connected(client_factory, protocol, **kwargs):
    client = client_factory(protocol=protocol, **kwargs)
    client.connect()
    return client


def test_application_properties_reach_v5_subscribers_unchanged(client_factory):
    topic = f"interop/props/{unique_id()}"
    subscribers = [connected(client_factory, "5") for _ in range(2)]
    for qos, subscriber in enumerate(subscribers):
        subscriber.subscribe(topic, qos + 1)
    publisher = connected(client_factory, "5")
    publisher.publish(topic, b'{"t": 21.5}', qos=2, properties=application_properties())
    for subscriber in subscribers:
        [message] = subscriber.expect()
        assert message.payload == b'{"t": 21.5}'
        assert_application_properties(message.properties)


def test_retained_message_keeps_its_properties(client_factory):
    topic = f"interop/retained/{unique_id()}"
    publisher = connected(client_factory, "5")
    publisher.publish(topic, b'{"t": 1}', qos=1, retain=True, properties=application_properties())
    subscriber = connected(client_factory, "5")
    subscriber.subscribe(topic, 1)
    [message] = subscriber.expect()
    assert message.retain
    assert_application_properties(message.properties)
    publisher.publish(topic, b"", qos=1, retain=True)


def test_will_message_keeps_its_properties(client_factory):
    cid = unique_id("will-props")
    topic = f"interop/will/{cid}"
    watcher = connected(client_factory, "5")
    watcher.subscribe(topic, 1)
    client = client_factory(client_id=cid, protocol="5")
    client.paho.will_set(
        topic, b'{"state": "gone"}', 1, properties=application_properties(PacketTypes.WILLMESSAGE)
    )
    client.connect()
    client.drop()
    [will] = watcher.expect()
    assert will.payload == b'{"state": "gone"}'
    assert_application_properties(will.properties)


def test_request_response_with_correlation_data(client_factory):
    requests = f"interop/requests/{unique_id()}"
    responder = connected(client_factory, "5")
    responder.subscribe(requests, 1)
    requester = connected(client_factory, "5")
    reply_to = f"interop/replies/{requester.client_id}"
    requester.subscribe(reply_to, 1)
    ask = v5_properties(ResponseTopic=reply_to, CorrelationData=b"req-1")
    requester.publish(requests, b"ping", qos=1, properties=ask)
    [request] = responder.expect()
    answer = v5_properties(CorrelationData=request.properties.CorrelationData)
    responder.publish(request.properties.ResponseTopic, b"pong", qos=1, properties=answer)
    [reply] = requester.expect()
    assert (reply.topic, reply.payload, reply.properties.CorrelationData) == (reply_to, b"pong", b"req-1")


def test_v3_and_v5_clients_exchange_messages_on_one_topic(client_factory):
    topic = f"interop/mixed/{unique_id()}"
    clients = {protocol: connected(client_factory, protocol) for protocol in ("3.1", "3.1.1", "5")}
    for client in clients.values():
        client.subscribe(topic, 2)
    for protocol, client in clients.items():
        props = application_properties() if protocol == "5" else None
        client.publish(topic, f"from {protocol}".encode(), qos=2, properties=props)
    expected = [b"from 3.1", b"from 3.1.1", b"from 5"]
    for protocol, client in clients.items():
        messages = client.expect(3)
        assert sorted(m.payload for m in messages) == expected
        assert all(m.qos == 2 for m in messages)
        from_v5 = next(m for m in messages if m.payload == b"from 5")
        if protocol == "5":
            assert_application_properties(from_v5.properties)
            from_v3 = next(m for m in messages if m.payload == b"from 3.1.1")
            assert not hasattr(from_v3.properties, "UserProperty")


def test_delivered_qos_is_the_minimum_across_versions(client_factory):
    topic = f"interop/qos/{unique_id()}"
    v3 = connected(client_factory, "3.1.1")
    v3.subscribe(topic, 1)
    v5 = connected(client_factory, "5")
    v5.subscribe(topic, 0)
    publisher = connected(client_factory, "5")
    publisher.publish(topic, b"x", qos=2, properties=application_properties())
    assert v3.expect()[0].qos == 1
    assert v5.expect()[0].qos == 0
