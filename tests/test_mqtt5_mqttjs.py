"""MQTT.js (npm `mqtt`, protocolVersion 5) as a second, independent v5 client:
connect, subscribe with options and a subscription identifier, publish with
properties, receive them intact (the second message by topic alias).

MQTT.js is installed from tests/js/package-lock.json by scripts/test
(`npm ci --prefix tests/js`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from mqtt_client import unique_id

JS_DIR = Path(__file__).resolve().parent / "js"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed for the MQTT.js smoke test",
)


def test_mqttjs_v5_smoke(broker):
    if not (JS_DIR / "node_modules" / "mqtt").is_dir():
        pytest.fail("MQTT.js is not installed: run `npm ci --prefix tests/js` (scripts/test does)")
    prefix = f"js5/{unique_id('smoke')}"
    result = subprocess.run(
        ["node", str(JS_DIR / "smoke_v5.js"), f"mqtt://{broker.host}:{broker.port}", prefix],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, NODE_PATH=str(JS_DIR / "node_modules")),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["connack"]["reasonCode"] == 0
    assert report["granted"] == [1]
    first, second = report["received"]
    expected = {
        "topic": f"{prefix}/data",
        "qos": 1,
        "userProperties": {"origin": "mqtt.js", "tag": ["first", "second"]},
        "contentType": "application/json",
        "correlationData": [0, 1, 2, 255],
        "responseTopic": f"{prefix}/replies",
        "payloadFormatIndicator": True,
        "subscriptionIdentifier": 42,
    }
    for message, payload in ((first, '{"n": 1}'), (second, '{"n": 2}')):
        assert {key: message.get(key) for key in expected} == expected
        assert message["payload"] == payload
    assert first["topicAlias"] == second["topicAlias"] == 1  # the broker aliased the topic for MQTT.js
