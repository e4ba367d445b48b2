// MQTT.js (protocolVersion 5) against the broker: connect, subscribe with
// options and a subscription identifier, publish with properties, and check
// that they arrive intact. The subscriber accepts topic aliases, so the second
// message arrives by alias and MQTT.js must resolve it.
//
//   node smoke_v5.js mqtt://127.0.0.1:1883 <topic prefix>
//
// Prints one JSON line with what was received; exits 1 with the error otherwise.
"use strict";

const mqtt = require("mqtt");

const [url, prefix] = process.argv.slice(2);
const topic = `${prefix}/data`;
const sent = {
  userProperties: { origin: "mqtt.js", tag: ["first", "second"] },
  contentType: "application/json",
  correlationData: Buffer.from([0, 1, 2, 255]),
  responseTopic: `${prefix}/replies`,
  payloadFormatIndicator: true,
};

function fail(error) {
  console.error(String(error && error.stack ? error.stack : error));
  process.exit(1);
}

setTimeout(() => fail(new Error("timed out")), 10000).unref();

function connect(clientId, properties) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      protocolVersion: 5,
      clientId,
      clean: true,
      reconnectPeriod: 0,
      properties,
    });
    client.once("connect", (connack) => resolve({ client, connack }));
    client.once("error", reject);
  });
}

async function main() {
  const { client: subscriber, connack } = await connect(`${prefix}-sub`, { topicAliasMaximum: 5 });
  const received = [];
  const done = new Promise((resolve) => {
    subscriber.on("message", (msgTopic, payload, packet) => {
      const props = packet.properties || {};
      received.push({
        topic: msgTopic,
        payload: payload.toString(),
        qos: packet.qos,
        userProperties: props.userProperties,
        contentType: props.contentType,
        correlationData: props.correlationData ? [...props.correlationData] : null,
        responseTopic: props.responseTopic,
        payloadFormatIndicator: props.payloadFormatIndicator,
        subscriptionIdentifier: props.subscriptionIdentifier,
        topicAlias: props.topicAlias,
      });
      if (received.length === 2) resolve();
    });
  });
  const granted = await subscriber.subscribeAsync(`${prefix}/#`, {
    qos: 1,
    nl: true,
    rap: true,
    rh: 0,
    properties: { subscriptionIdentifier: 42 },
  });

  const { client: publisher } = await connect(`${prefix}-pub`, {});
  await publisher.publishAsync(topic, '{"n": 1}', { qos: 1, properties: sent });
  await publisher.publishAsync(topic, '{"n": 2}', { qos: 1, properties: sent });
  // No Local: the subscriber's own message must not come back to it.
  await subscriber.publishAsync(topic, "own", { qos: 1 });
  await done;

  console.log(
    JSON.stringify({
      connack: { reasonCode: connack.reasonCode, properties: connack.properties },
      granted: granted.map((g) => g.qos),
      received,
    }),
  );
  await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
}

main().catch(fail);
