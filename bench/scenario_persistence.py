"""The persistence scenario (issue 9): what the durable store costs and gives.

- fan-in 8->1 QoS 1, 64 B, into a persistent session (clean session 0): store
  off vs on (nanomq_py `sqlite { }` with synchronous = full, and = normal),
  Mosquitto with `persistence false` vs `persistence true` (which saves only
  every autosave_interval, never per message);
- the p99 latency of another client (QoS 1 at 1k msg/s) while that fan-in keeps
  the store committing;
- start-up time and RSS with 100,000 messages stored for an offline session.

Each variant is its own broker process. amqtt has no persistence: skipped.
"""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

import procfs
from brokers import Broker, Mosquitto, NanomqPy, RunningBroker, mqtt_handshake
from helpers import LoadgenProcess, loadgen
from scenarios import FANIN_WINDOW, STALL_S, Context, Metric, _load_timeout, _mb

STORED = 100_000


class _NanomqPyStore(NanomqPy):
    """nanomq_py with a `sqlite { }` block (None: store off) and room for STORED queued messages."""

    def __init__(self, store_dir: Path | None, synchronous: str = "full", log_info: bool = False):
        self.store_dir = store_dir
        self.synchronous = synchronous
        self.log_info = log_info  # the start-up variant: the store logs its load time at info

    def command(self, port, workdir, webhook_url):
        argv, env = super().command(port, workdir, None)
        conf = Path(argv[-1])
        extra = f"mqtt {{ max_mqueue_len = {2 * STORED} }}\n"
        if self.store_dir is not None:
            extra += (
                f'sqlite {{ mounted_file_path = "{self.store_dir}", disk_cache_size = {2 * STORED}, '
                f'synchronous = "{self.synchronous}" }}\n'
            )
        if self.log_info:
            extra += "log { level = info }\n"
        conf.write_text(conf.read_text() + extra)
        return argv, env


class _MosquittoPersistent(Mosquitto):
    def __init__(self, store_dir: Path | None):
        self.store_dir = store_dir

    def command(self, port, workdir, webhook_url):
        argv, env = super().command(port, workdir, None)
        if self.store_dir is not None:
            conf = Path(argv[-1])
            text = conf.read_text().replace("persistence false\n", "")
            conf.write_text(text + f"persistence true\npersistence_location {self.store_dir}/\n")
        return argv, env


def _variant(broker: Broker, store_dir: Path | None, synchronous: str = "full", log_info=False) -> Broker:
    if isinstance(broker, NanomqPy):
        variant = _NanomqPyStore(store_dir, synchronous, log_info)
        variant.script = broker.script
    else:
        variant = _MosquittoPersistent(store_dir)
        variant.binary = broker.binary
    return variant


def _fanin(ctx: Context, b: RunningBroker) -> dict:
    p = ctx.profile
    return loadgen(
        "fanin", b.port, _load_timeout(ctx, p.load_s), qos=1, size=64, pubs=8, topic="bench/persist",
        count=p.fanin_count, duration=p.load_s, window=FANIN_WINDOW, stall=STALL_S, drain=p.drain_s, persist=1,
    )  # fmt: skip


def _latency_next_to_fanin(ctx: Context, b: RunningBroker) -> dict:
    """QoS 1 latency of a clean client at 1k msg/s while 8 publishers flood a persistent session."""
    p = ctx.profile
    background = LoadgenProcess(
        "fanin", b.port, qos=1, size=64, pubs=8, topic="bench/persist", count=p.fanin_count,
        duration=p.load_s + 1, window=FANIN_WINDOW, stall=STALL_S, drain=p.drain_s, persist=1,
    )  # fmt: skip
    with background:
        time.sleep(0.5)  # the flood is running
        probe = loadgen(
            "latency", b.port, _load_timeout(ctx, p.load_s), qos=1, size=64, rate=1000, topic="bench/lat",
            count=int(1000 * p.load_s), duration=p.load_s, warmup=0.5, stall=STALL_S, drain=p.drain_s,
        )  # fmt: skip
        background.read_json()
        background.wait(60)
    return probe


def _fill(port: int, count: int) -> None:
    """A persistent subscriber subscribes and leaves; `count` QoS 1 messages are published for it."""
    sub = socket.create_connection(("127.0.0.1", port), timeout=30)
    sub.sendall(_connect(b"stored-sub", clean=False))
    _read(sub, 4)  # CONNACK
    sub.sendall(b"\x82" + bytes([2 + 2 + 11 + 1]) + b"\x00\x01\x00\x0bbench/store\x01")
    _read(sub, 5)  # SUBACK
    sub.sendall(b"\xe0\x00")
    sub.close()
    pub = socket.create_connection(("127.0.0.1", port), timeout=60)
    pub.sendall(_connect(b"stored-pub", clean=True))
    _read(pub, 4)  # CONNACK
    window, sent, acked = 1000, 0, 0
    body = b"\x00\x0bbench/store"
    payload = b"x" * 64
    while acked < count:
        burst = []
        while sent < count and sent - acked < window:
            sent += 1
            pid = sent % 65535 + 1
            rest = body + pid.to_bytes(2, "big") + payload
            burst.append(b"\x32" + bytes([len(rest)]) + rest)
        if burst:
            pub.sendall(b"".join(burst))
        acked += len(_read(pub, 4, whole=4)) // 4  # PUBACKs
    pub.sendall(b"\xe0\x00")
    pub.close()


def _connect(client_id: bytes, clean: bool) -> bytes:
    var = b"\x00\x04MQTT\x04" + (b"\x02" if clean else b"\x00") + b"\x00\x3c"
    rest = var + len(client_id).to_bytes(2, "big") + client_id
    return b"\x10" + bytes([len(rest)]) + rest


def _read(sock: socket.socket, at_least: int, whole: int = 1) -> bytes:
    """At least `at_least` bytes, in a multiple of `whole` (the size of a PUBACK, when reading those)."""
    data = b""
    while len(data) < at_least or len(data) % whole:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("broker closed the connection")
        data += chunk
    return data


def _startup(ctx: Context, variant: Broker, label: str) -> tuple[float, float, str]:
    """Seconds from exec to the first CONNACK, RSS, and nanomq_py's store line, of a
    restart on STORED messages."""
    with RunningBroker(variant, ctx.log_dir, f"{label}-fill-r{ctx.run}") as b:
        _fill(b.port, STORED)
    started = time.monotonic()
    with RunningBroker(variant, ctx.log_dir, f"{label}-restart-r{ctx.run}") as b:
        seconds = time.monotonic() - started
        assert mqtt_handshake(b.port)
        rss = procfs.rss_bytes(b.pid)
        loaded = [line for line in b.log_path.read_text().splitlines() if "loaded in" in line]
    if isinstance(variant, NanomqPy) and not (loaded and f"{STORED} queued messages" in loaded[0]):
        raise RuntimeError(f"the store did not hold {STORED} messages: {loaded}")
    return seconds, rss, loaded[0] if loaded else ""


def persistence(ctx: Context, broker: Broker):
    if not isinstance(broker, (NanomqPy, Mosquitto)):
        return {}, {}
    metrics, raw = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        variants = [("off", None, "full"), ("on", Path(tmp) / "on", "full")]
        if isinstance(broker, NanomqPy):
            variants.append(("normal", Path(tmp) / "normal", "normal"))
        for tag, store_dir, sync in variants:
            variant = _variant(broker, store_dir, sync)
            with RunningBroker(variant, ctx.log_dir, f"persist-{tag}-r{ctx.run}") as b:
                r = _fanin(ctx, b)
                metrics[f"pers_fanin_{tag}"] = r["rate"]
                metrics["pers_lost"] = metrics.get("pers_lost", 0) + r["expected"] - r["received"]
                raw[f"fanin_{tag}"] = r
                if tag != "normal":
                    probe = _latency_next_to_fanin(ctx, b)
                    metrics[f"pers_lat_{tag}_p99"] = probe["p99_us"] / 1000
                    raw[f"latency_{tag}"] = probe
        metrics["pers_on_off"] = metrics["pers_fanin_on"] / metrics["pers_fanin_off"]
        variant = _variant(broker, Path(tmp) / "stored", log_info=True)
        seconds, rss, line = _startup(ctx, variant, "persist-stored")
        metrics.update(pers_start_s=seconds, pers_start_rss=_mb(rss))
        raw.update(start_s=seconds, start_rss_bytes=rss, store_log=line)
    return metrics, raw


PERSISTENCE_METRICS = [
    Metric("pers_fanin_off", "persistence", "fan-in 8->1 QoS 1 into a persistent session, store off", "msg/s"),
    Metric("pers_fanin_on", "persistence", "the same, store on (mosquitto: persistence true)", "msg/s",
           "≥ 1.0× mosq"),
    Metric("pers_fanin_normal", "persistence", "the same, store on, synchronous = normal", "msg/s",
           nanomq_only=True),
    Metric("pers_on_off", "persistence", "store on / store off throughput", "×", "≥ 0.5", ratio=False),
    Metric("pers_lost", "persistence", "persistent fan-in: messages lost (3 loads)", "msgs", "0", ratio=False),
    Metric("pers_lat_off_p99", "persistence", "QoS 1 p99 @1k/s next to that fan-in, store off", "ms"),
    Metric("pers_lat_on_p99", "persistence", "QoS 1 p99 @1k/s next to that fan-in, store on", "ms"),
    Metric("pers_start_s", "persistence", "start-up with 100,000 stored messages", "s", "< 3 s"),
    Metric("pers_start_rss", "persistence", "RSS after start with 100,000 stored messages", "MB", "< 40 MB"),
]  # fmt: skip
