"""The bridge scenario (issue 10): forwarding through a bridge to an upstream Mosquitto.

- fan-in 8->1, QoS 0 and QoS 1, 64 B: 8 publishers on the edge broker, the bridge forwards
  `bench/#` upstream, 1 subscriber on the upstream Mosquitto (loadgen --sub_port). The edge is
  nanomq_py with `bridges.mqtt.up`, or (the `mosquitto` column) an edge Mosquitto with a
  `connection` block: the same route, Mosquitto's own bridge.
- nanomq_py only: QoS 1 with the durable cache (`sqlite { }`), and the time to drain 100,000 QoS 1 messages cached while the upstream was
  down, with the in-memory cache and with the store's durable cache (`sqlite { }`), counted
  from the upstream's start until the bridge's HTTP API shows an empty cache.

The upstream Mosquitto runs on the broker core next to the edge; every figure here shares
one core between two brokers and is only comparable side by side.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import toolchain
from brokers import Broker, Mosquitto, NanomqPy, RunningBroker, free_port, mqtt_handshake
from helpers import loadgen
from scenario_persistence import _connect, _read
from scenarios import FANIN_WINDOW, STALL_S, Context, Metric, _load_timeout

CACHED = 100_000
TOPIC = "bench/bridge"


class _NanomqPyEdge(NanomqPy):
    """nanomq_py with a bridge to 127.0.0.1:upstream_port, its HTTP API on api_port (the bridge's
    state and counters), and optionally more configuration (the store)."""

    def __init__(self, script, upstream_port: int, extra: str = ""):
        self.script = script
        self.upstream_port = upstream_port
        self.api_port = free_port()
        self.extra = extra + f'http_server {{ bind = "127.0.0.1", port = {self.api_port} }}\n'

    def command(self, port, workdir, webhook_url):
        argv, env = super().command(port, workdir, None)
        conf = Path(argv[-1])
        conf.write_text(
            conf.read_text()
            + self.extra
            + "bridges.mqtt.up {\n"
            + f'  server = "mqtt-tcp://127.0.0.1:{self.upstream_port}"\n'
            + '  proto_ver = 4\n  clientid = "bench-edge"\n  backoff_max = 1s\n'
            + '  forwards = [ { local_topic = "bench/#", remote_topic = "" } ]\n'
            + "}\n"  # no bridges.mqtt.cache block: it would make the cache durable; the in-memory
            # bound (102,400 per bridge) holds the CACHED messages
        )
        return argv, env


class _MosquittoEdge(Mosquitto):
    """Mosquitto whose `connection` block bridges bench/# out to the upstream."""

    def __init__(self, binary, upstream_port: int):
        self.binary = binary
        self.upstream_port = upstream_port

    def command(self, port, workdir, webhook_url):
        argv, env = super().command(port, workdir, None)
        conf = Path(argv[-1])
        conf.write_text(
            conf.read_text()
            + f"connection up\naddress 127.0.0.1:{self.upstream_port}\nclientid bench-edge\n"
            + "topic bench/# out 1\ncleansession true\nbridge_protocol_version mqttv311\n"
        )
        return argv, env


def _upstream() -> Mosquitto:
    upstream = Mosquitto()
    upstream.binary = toolchain.ensure_mosquitto()
    return upstream


def _forward(ctx: Context, edge: RunningBroker, upstream: RunningBroker, qos: int) -> dict:
    p = ctx.profile
    return loadgen(
        "fanin", edge.port, _load_timeout(ctx, p.load_s), qos=qos, size=64, pubs=8, topic=TOPIC,
        count=p.fanin_count, duration=p.load_s, window=FANIN_WINDOW, stall=STALL_S, drain=p.drain_s,
        sub_port=upstream.port,
    )  # fmt: skip


def _edge_for(broker: Broker, upstream_port: int, extra: str = "") -> Broker:
    if isinstance(broker, NanomqPy):
        return _NanomqPyEdge(broker.script, upstream_port, extra)
    return _MosquittoEdge(broker.binary, upstream_port)


def _wait_connected(edge: RunningBroker, timeout: float = 30.0) -> None:
    """The bridge's link is up before the load starts (Mosquitto's bridge says nothing we can
    ask: it gets a second, on an idle machine it connects in milliseconds)."""
    if not isinstance(edge.broker, NanomqPy):
        time.sleep(1.0)
        return
    deadline = time.monotonic() + timeout
    while _bridge_status(edge.broker.api_port)["state"] != "connected":
        if time.monotonic() > deadline:
            raise RuntimeError(f"bridge never connected: {edge.log_tail()}")
        time.sleep(0.05)


def _fill(port: int, count: int) -> None:
    """`count` QoS 1 messages to the edge, 1000 in flight; returns once all are acknowledged."""
    pub = socket.create_connection(("127.0.0.1", port), timeout=60)
    pub.sendall(_connect(b"bench-filler", clean=True))
    _read(pub, 4)
    sent = acked = 0
    body = len(TOPIC).to_bytes(2, "big") + TOPIC.encode()
    payload = b"x" * 64
    while acked < count:
        burst = []
        while sent < count and sent - acked < 1000:
            sent += 1
            rest = body + (sent % 65535 + 1).to_bytes(2, "big") + payload
            burst.append(b"\x32" + bytes([len(rest)]) + rest)
        if burst:
            pub.sendall(b"".join(burst))
        acked += len(_read(pub, 4, whole=4)) // 4
    pub.sendall(b"\xe0\x00")
    pub.close()


def _bridge_status(api_port: int) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{api_port}/api/v4/bridges/up")
    request.add_header("Authorization", "Basic YWRtaW46cHVibGlj")  # admin:public
    with urllib.request.urlopen(request, timeout=10) as response:
        [node] = json.loads(response.read())["data"]["bridge"]["nodes"]  # NanoMQ's shape
        return node["status"]


def _drain(ctx: Context, broker: NanomqPy, store_dir: Path | None) -> tuple[float, dict]:
    """Seconds from the upstream's start to an empty cache, with CACHED messages waiting."""
    upstream_port = free_port()
    extra = ""
    if store_dir is not None:
        extra = f'sqlite {{ mounted_file_path = "{store_dir}", disk_cache_size = {2 * CACHED} }}\n'
    label = "store" if store_dir else "memory"
    variant = _edge_for(broker, upstream_port, extra)
    api_port = variant.api_port
    with RunningBroker(variant, ctx.log_dir, f"drain-{label}-r{ctx.run}") as edge:
        _fill(edge.port, CACHED)
        before = _bridge_status(api_port)
        if before["cached"] != CACHED:
            raise RuntimeError(f"expected {CACHED} cached messages, the bridge says {before}")
        with tempfile.TemporaryDirectory(prefix="bench-upstream-") as tmp:
            conf = Path(tmp) / "mosquitto.conf"
            conf.write_text(
                f"listener {upstream_port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
            )
            started = time.monotonic()
            proc = subprocess.Popen(
                [toolchain.ensure_mosquitto(), "-c", str(conf)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
            )  # fmt: skip
            try:
                deadline = started + _load_timeout(ctx, 120)
                while True:
                    status = _bridge_status(api_port)
                    if status["cached"] == 0 and status["inflight"] == 0:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the cache did not drain: {status}")
                    time.sleep(0.05)
                seconds = time.monotonic() - started
            finally:
                proc.terminate()
                proc.wait(10)
    return seconds, status


def bridge(ctx: Context, broker: Broker):
    if not isinstance(broker, (NanomqPy, Mosquitto)):
        return {}, {}
    metrics, raw = {}, {}
    with RunningBroker(_upstream(), ctx.log_dir, f"bridge-upstream-r{ctx.run}") as upstream:
        assert mqtt_handshake(upstream.port)
        with RunningBroker(_edge_for(broker, upstream.port), ctx.log_dir, f"bridge-edge-r{ctx.run}") as edge:
            _wait_connected(edge)
            for qos in (0, 1):
                r = _forward(ctx, edge, upstream, qos)
                metrics[f"bridge_q{qos}"] = r["rate"]
                metrics["bridge_lost"] = metrics.get("bridge_lost", 0) + r["expected"] - r["received"]
                raw[f"forward_q{qos}"] = r
        if isinstance(broker, NanomqPy):
            with tempfile.TemporaryDirectory(prefix="bench-bridge-store-") as tmp:
                store = f'sqlite {{ mounted_file_path = "{tmp}" }}\n'
                variant = _edge_for(broker, upstream.port, store)
                with RunningBroker(variant, ctx.log_dir, f"bridge-edge-store-r{ctx.run}") as edge:
                    _wait_connected(edge)
                    r = _forward(ctx, edge, upstream, 1)
                    metrics["bridge_q1_store"] = r["rate"]
                    metrics["bridge_lost"] += r["expected"] - r["received"]
                    raw["forward_q1_store"] = r
    if isinstance(broker, NanomqPy):
        with tempfile.TemporaryDirectory(prefix="bench-bridge-store-") as tmp:
            for tag, store_dir in (("memory", None), ("store", Path(tmp))):
                seconds, status = _drain(ctx, broker, store_dir)
                metrics[f"bridge_drain_{tag}"] = seconds
                raw[f"drain_{tag}"] = status
    return metrics, raw


BRIDGE_METRICS = [
    Metric(
        "bridge_q0",
        "bridge",
        "bridged fan-in 8->1 QoS 0 to upstream Mosquitto",
        "msg/s",
        "≥ 1.0× mosq bridge",
    ),
    Metric(
        "bridge_q1",
        "bridge",
        "bridged fan-in 8->1 QoS 1 to upstream Mosquitto",
        "msg/s",
        "≥ 1.0× mosq bridge",
    ),
    Metric("bridge_q1_store", "bridge", "the same QoS 1, durable cache (sqlite)", "msg/s", nanomq_only=True),
    Metric("bridge_lost", "bridge", "bridged fan-in: messages lost (all loads)", "msgs", "0", ratio=False),
    Metric(
        "bridge_drain_memory", "bridge", "drain 100,000 cached QoS 1 after an outage", "s", nanomq_only=True
    ),
    Metric("bridge_drain_store", "bridge", "the same, durable cache (sqlite)", "s", nanomq_only=True),
]
