"""The scenarios of issue 6, each run against one broker, returning named figures.

A scenario starts its own broker process(es), so memory figures (VmRSS, VmHWM)
belong to that scenario alone, drives one or more bounded loads from the C load
generator on the other core, and returns `(metrics, raw)`: metrics are the
figures that go into the table (keys of METRICS), raw is everything the load
generator and the sink printed, kept for the JSON lines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import procfs
from brokers import LOAD_CORE, Broker, RunningBroker
from helpers import HttpSink, LoadgenProcess, loadgen

MB = 1024 * 1024


@dataclass(frozen=True)
class Metric:
    key: str
    scenario: str
    label: str
    unit: str
    target: str = ""
    nanomq_only: bool = False
    ratio: bool = True  # False for counts and diagnostics, where nanomq_py / other means nothing


@dataclass(frozen=True)
class Profile:
    """How big and long each load is: full (default) or --quick."""

    load_s: float  # sending time of throughput and latency loads
    flood_s: float
    drain_s: float  # most time spent draining after sending stops
    flood_drain_s: float
    fanin_count: int
    fanout_count: int
    flood_count: int
    conn_counts: tuple[int, ...]
    conn_bound_s: float  # most time to open the clients of one connections load
    settle_s: float
    idle_window_s: float


FULL = Profile(
    load_s=10, flood_s=5, drain_s=20, flood_drain_s=60, fanin_count=2_000_000, fanout_count=1_000_000,
    flood_count=5_000_000, conn_counts=(1000, 5000, 10000), conn_bound_s=60, settle_s=2, idle_window_s=60,
)  # fmt: skip
QUICK = Profile(
    load_s=2, flood_s=1, drain_s=10, flood_drain_s=10, fanin_count=500_000, fanout_count=300_000,
    flood_count=2_000_000, conn_counts=(1000, 5000), conn_bound_s=10, settle_s=1, idle_window_s=5,
)  # fmt: skip

FANIN_WINDOW = 500  # messages in flight, all publishers together
FANOUT_WINDOW = 5000  # deliveries in flight
STALL_S = 3  # a load ends after this long without progress (lost messages)
HOOKED_RATE = 2000  # msgs/s of hooked traffic next to the 200 ms sink
CONNECT_CONCURRENCY = 100  # handshakes in flight: under every broker's listen backlog


@dataclass
class Context:
    profile: Profile
    log_dir: Path
    run: int


def _mb(n_bytes: float) -> float:
    return n_bytes / MB


def _load_timeout(ctx: Context, seconds: float) -> float:
    return seconds + ctx.profile.drain_s + STALL_S + 30


def _check_alive(b: RunningBroker, what: str) -> None:
    if not b.alive():
        raise RuntimeError(f"{b.broker.name} died during {what}: {b.log_tail()}")


def _fanin_load(ctx: Context, b: RunningBroker, qos: int, size: int, topic: str = "bench/t") -> dict:
    p = ctx.profile
    return loadgen(
        "fanin", b.port, _load_timeout(ctx, p.load_s), qos=qos, size=size, pubs=8, topic=topic,
        count=p.fanin_count, duration=p.load_s, window=FANIN_WINDOW, stall=STALL_S, drain=p.drain_s,
    )  # fmt: skip


def fanin(ctx: Context, broker: Broker):
    metrics, raw = {}, {}
    with RunningBroker(broker, ctx.log_dir, f"fanin-r{ctx.run}") as b:
        for qos in (0, 1):
            for size, tag in ((64, "64"), (1024, "1k")):
                r = _fanin_load(ctx, b, qos, size)
                _check_alive(b, "fan-in")
                metrics[f"fanin_q{qos}_{tag}"] = r["rate"]
                metrics["fanin_lost"] = metrics.get("fanin_lost", 0) + r["expected"] - r["received"]
                raw[f"q{qos}_{tag}"] = r
    return metrics, raw


def fanout(ctx: Context, broker: Broker):
    p = ctx.profile
    metrics, raw = {}, {}
    with RunningBroker(broker, ctx.log_dir, f"fanout-r{ctx.run}") as b:
        for subs in (10, 100):
            r = loadgen(
                "fanout", b.port, _load_timeout(ctx, p.load_s), qos=0, size=64, subs=subs,
                count=p.fanout_count, duration=p.load_s, window=FANOUT_WINDOW, stall=STALL_S, drain=p.drain_s,
            )  # fmt: skip
            _check_alive(b, "fan-out")
            metrics[f"fanout_{subs}"] = r["rate"]
            metrics["fanout_lost"] = metrics.get("fanout_lost", 0) + r["expected"] - r["received"]
            raw[f"subs_{subs}"] = r
    return metrics, raw


def _latency_load(ctx: Context, port: int, qos: int, rate: int, topic: str, spin: bool = False) -> dict:
    """Paced load; `spin` busy-polls (no wake-up delay of its own), only when nothing else of
    the bench (sink, second generator) needs core 1."""
    p = ctx.profile
    return loadgen(
        "latency", port, _load_timeout(ctx, p.load_s), qos=qos, size=64, rate=rate, topic=topic,
        count=int(rate * p.load_s), duration=p.load_s, spin=int(spin), warmup=0.5, stall=STALL_S, drain=p.drain_s,
    )  # fmt: skip


def latency(ctx: Context, broker: Broker):
    metrics, raw = {}, {}
    with RunningBroker(broker, ctx.log_dir, f"latency-r{ctx.run}") as b:
        for qos in (0, 1):
            r = _latency_load(ctx, b.port, qos, 1000, "bench/lat", spin=True)
            _check_alive(b, "latency")
            metrics[f"lat_q{qos}_p50"] = r["p50_us"] / 1000
            metrics[f"lat_q{qos}_p99"] = r["p99_us"] / 1000
            raw[f"q{qos}"] = r
    return metrics, raw


def flood(ctx: Context, broker: Broker):
    """Open loop: 8 publishers write as fast as their sockets take, then the subscriber drains
    until nothing arrives for STALL_S (or flood_drain_s passes). QoS 0 loss counts every message
    written and never delivered; QoS 1 loss counts those the broker PUBACKed and never delivered."""
    p = ctx.profile
    metrics, raw = {}, {}
    for qos in (0, 1):
        with RunningBroker(broker, ctx.log_dir, f"flood-q{qos}-r{ctx.run}") as b:
            r = loadgen(
                "flood", b.port, _load_timeout(ctx, p.flood_s + p.flood_drain_s), qos=qos, size=64, pubs=8,
                count=p.flood_count, duration=p.flood_s, stall=STALL_S, drain=p.flood_drain_s,
            )  # fmt: skip
            _check_alive(b, "flood")
            r["peak_rss_bytes"] = procfs.peak_rss_bytes(b.pid)
            promised = r["acked"] if qos else r["sent"]
            metrics[f"flood_q{qos}_loss"] = 100.0 * max(promised - r["received"], 0) / max(promised, 1)
            metrics[f"flood_q{qos}_rate"] = r["rate"]
            metrics[f"flood_q{qos}_rss"] = _mb(r["peak_rss_bytes"])
            raw[f"q{qos}"] = r
    return metrics, raw


def _hold_idle_clients(ctx: Context, b: RunningBroker, n: int) -> LoadgenProcess:
    p = ctx.profile
    return LoadgenProcess(
        "conns", b.port, conns=n, concurrency=CONNECT_CONCURRENCY, duration=p.conn_bound_s,
        hold=p.conn_bound_s + p.idle_window_s + 60, keepalive=300,
    )  # fmt: skip


def connections(ctx: Context, broker: Broker):
    metrics, raw = {}, {}
    for n in ctx.profile.conn_counts:
        with RunningBroker(broker, ctx.log_dir, f"conns-{n}-r{ctx.run}") as b:
            time.sleep(ctx.profile.settle_s)
            before = procfs.rss_bytes(b.pid)
            load_core = procfs.CoreBusy(int(LOAD_CORE))
            with _hold_idle_clients(ctx, b, n) as held:
                r = held.read_json()
                r["load_core_busy_pct"] = load_core.percent()
                time.sleep(ctx.profile.settle_s)
                _check_alive(b, "connections")
                after = procfs.rss_bytes(b.pid)
                held.release()
                r["hold"] = held.read_json()
                held.wait(30)
            r.update(rss_before=before, rss_after=after)
            tag = f"{n // 1000}k"
            metrics[f"conns_{tag}_ok"] = r["connected"]
            metrics[f"conns_{tag}_rate"] = r["rate"]
            metrics[f"conns_{tag}_rss"] = _mb(after)
            metrics[f"conns_{tag}_bpc"] = (after - before) / max(r["connected"], 1) / 1024
            metrics["conns_load_busy"] = max(metrics.get("conns_load_busy", 0), r["load_core_busy_pct"])
            raw[tag] = r
    return metrics, raw


def idle(ctx: Context, broker: Broker):
    metrics, raw = {}, {}
    with RunningBroker(broker, ctx.log_dir, f"idle-r{ctx.run}") as b:
        time.sleep(ctx.profile.settle_s * 2)
        metrics["idle_rss"] = _mb(procfs.rss_bytes(b.pid))
    if broker.supports_webhook:
        with (
            HttpSink() as sink,
            RunningBroker(broker, ctx.log_dir, f"idle-webhook-r{ctx.run}", sink.url) as b,
        ):
            time.sleep(ctx.profile.settle_s * 2)
            metrics["idle_rss_webhook"] = _mb(procfs.rss_bytes(b.pid))
    return metrics, raw


def idle_cpu(ctx: Context, broker: Broker):
    """1,000 idle clients (keepalive 300 s, so no PINGREQ falls inside the window)."""
    window = ctx.profile.idle_window_s
    with (
        RunningBroker(broker, ctx.log_dir, f"idlecpu-r{ctx.run}") as b,
        _hold_idle_clients(ctx, b, 1000) as held,
    ):
        r = held.read_json()
        time.sleep(ctx.profile.settle_s * 2)
        cpu0, switches0, t0 = procfs.cpu_seconds(b.pid), procfs.context_switches(b.pid), time.monotonic()
        time.sleep(window)
        cpu1, switches1, t1 = procfs.cpu_seconds(b.pid), procfs.context_switches(b.pid), time.monotonic()
        _check_alive(b, "idle CPU")
        held.release()
        r["hold"] = held.read_json()
        held.wait(30)
    elapsed = t1 - t0
    r.update(window_s=elapsed, cpu_s=cpu1 - cpu0, context_switches=switches1 - switches0)
    metrics = {
        "idlecpu_pct": 100.0 * (cpu1 - cpu0) / elapsed,
        "idlecpu_wakeups": (switches1 - switches0) / elapsed,
    }
    return metrics, {"1k": r}


def _settled_sink_stats(sink: HttpSink, limit_s: float) -> dict:
    """Sink counters once POSTs stop arriving (1 s without a new one), or after limit_s."""
    deadline = time.monotonic() + limit_s
    last = sink.stats()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = sink.stats()
        if now["posts"] == last["posts"]:
            return now
        last = now
    return last


def webhook(ctx: Context, broker: Broker):
    """nanomq_py with `on_message_publish` hooked on bench/#: POST rate and MQTT cost, lag, slow sink."""
    if not broker.supports_webhook:
        return {}, {}
    p = ctx.profile
    metrics, raw = {}, {}
    with RunningBroker(broker, ctx.log_dir, f"webhook-off-r{ctx.run}") as b:
        off = _fanin_load(ctx, b, 0, 64)
        _check_alive(b, "webhook hook-off fan-in")
    with HttpSink() as sink, RunningBroker(broker, ctx.log_dir, f"webhook-on-r{ctx.run}", sink.url) as b:
        on = _fanin_load(ctx, b, 0, 64)
        _check_alive(b, "webhook hook-on fan-in")
        posts = _settled_sink_stats(sink, p.drain_s + 10)
        sink.reset()
        lag = _latency_load(ctx, b.port, 0, 500, "bench/lag")
        lag_posts = _settled_sink_stats(sink, p.drain_s + 10)
        _check_alive(b, "webhook lag")
    metrics.update(
        wh_posts=posts["posts_per_s"],
        wh_delivered=100.0 * posts["posts"] / max(on["sent"], 1),
        wh_conns=posts["conns_opened"],
        wh_fanin_off=off["rate"],
        wh_fanin_on=on["rate"],
        wh_on_off=on["rate"] / off["rate"] if off["rate"] else None,
        wh_lag_p50=lag_posts["lag_p50_ms"] if lag_posts["lag_samples"] else None,
        wh_lag_p99=lag_posts["lag_p99_ms"] if lag_posts["lag_samples"] else None,
    )
    raw.update(fanin_off=off, fanin_on=on, sink_fanin=posts, lag_mqtt=lag, sink_lag=lag_posts)

    with (
        HttpSink(delay_ms=200) as slow,
        RunningBroker(broker, ctx.log_dir, f"webhook-slow-r{ctx.run}", slow.url) as b,
    ):
        hooked = LoadgenProcess(
            "latency", b.port, qos=0, size=64, rate=HOOKED_RATE, topic="bench/hooked", subs=0,
            count=int(HOOKED_RATE * p.load_s), duration=p.load_s, stall=STALL_S, drain=p.drain_s,
        )  # fmt: skip
        with hooked:
            probe = _latency_load(ctx, b.port, 0, 1000, "plain/lat")
            hooked_result = hooked.read_json()
            hooked.wait(30)
        _check_alive(b, "webhook slow sink")
        peak = procfs.peak_rss_bytes(b.pid)
        slow_posts = slow.stats()
    metrics.update(
        wh_slow_p99=probe["p99_us"] / 1000, wh_slow_rss=_mb(peak), wh_slow_posts=slow_posts["posts_per_s"]
    )
    raw.update(slow_probe=probe, slow_hooked=hooked_result, slow_sink=slow_posts, slow_peak_rss_bytes=peak)
    return metrics, raw


SCENARIOS = {
    "fanin": fanin,
    "fanout": fanout,
    "latency": latency,
    "flood": flood,
    "connections": connections,
    "idle": idle,
    "idlecpu": idle_cpu,
    "webhook": webhook,
}


def _conn_metrics() -> list[Metric]:
    rows = []
    for n in (1, 5, 10):
        tag = f"{n}k"
        rows += [
            Metric(f"conns_{tag}_ok", "connections", f"{n}k idle clients: connected", "clients",
                   "10,000" if n == 10 else "", ratio=False),
            Metric(f"conns_{tag}_rate", "connections", f"{n}k idle clients: connect rate", "conn/s", "≥ 8,000/s"),
            Metric(f"conns_{tag}_rss", "connections", f"{n}k idle clients: RSS", "MB"),
            Metric(f"conns_{tag}_bpc", "connections", f"{n}k idle clients: per connection", "KB", "≤ 4 KB"),
        ]  # fmt: skip
    return rows


METRICS = [
    Metric("fanin_q0_64", "fanin", "fan-in 8->1 QoS 0, 64 B", "msg/s", "≥ 10× amqtt, ≥ 0.5× mosq"),
    Metric("fanin_q0_1k", "fanin", "fan-in 8->1 QoS 0, 1 KiB", "msg/s", "≥ 10× amqtt, ≥ 0.5× mosq"),
    Metric("fanin_q1_64", "fanin", "fan-in 8->1 QoS 1, 64 B", "msg/s", "≥ 10× amqtt, ≥ 0.5× mosq"),
    Metric("fanin_q1_1k", "fanin", "fan-in 8->1 QoS 1, 1 KiB", "msg/s", "≥ 10× amqtt, ≥ 0.5× mosq"),
    Metric("fanin_lost", "fanin", "fan-in: messages lost (4 loads)", "msgs", "0", ratio=False),
    Metric("fanout_10", "fanout", "fan-out 1->10 QoS 0", "deliv/s", "≥ 10× amqtt, ≥ 0.5× mosq"),
    Metric("fanout_100", "fanout", "fan-out 1->100 QoS 0", "deliv/s", "≥ 10× amqtt, ≥ 0.5× mosq"),
    Metric("fanout_lost", "fanout", "fan-out: deliveries lost (2 loads)", "deliv", "0", ratio=False),
    Metric("lat_q0_p50", "latency", "latency QoS 0 @1k/s p50", "ms"),
    Metric("lat_q0_p99", "latency", "latency QoS 0 @1k/s p99", "ms", "≤ mosquitto"),
    Metric("lat_q1_p50", "latency", "latency QoS 1 @1k/s p50", "ms"),
    Metric("lat_q1_p99", "latency", "latency QoS 1 @1k/s p99", "ms", "≤ mosquitto"),
    Metric("flood_q0_rate", "flood", "flood QoS 0: delivered", "msg/s"),
    Metric("flood_q0_loss", "flood", "flood QoS 0: sent, never delivered", "%"),
    Metric("flood_q0_rss", "flood", "flood QoS 0: peak RSS", "MB", "bounded"),
    Metric("flood_q1_rate", "flood", "flood QoS 1: delivered", "msg/s"),
    Metric("flood_q1_loss", "flood", "flood QoS 1: acked, never delivered", "%", "0 %"),
    Metric("flood_q1_rss", "flood", "flood QoS 1: peak RSS", "MB", "bounded"),
    *_conn_metrics(),
    Metric("conns_load_busy", "connections", "connecting: load core busy (max)", "%", "< 100 %", ratio=False),
    Metric("idle_rss", "idle", "idle RSS, no webhook", "MB", "≤ 16 MB"),
    Metric("idle_rss_webhook", "idle", "idle RSS, webhook configured", "MB", "≤ 24 MB", nanomq_only=True),
    Metric("idlecpu_pct", "idlecpu", "1k idle clients: CPU", "% core"),
    Metric("idlecpu_wakeups", "idlecpu", "1k idle clients: wake-ups", "/s", "a few /s"),
    Metric("wh_posts", "webhook", "webhook POSTs to fast sink", "POST/s", "≥ 5,000/s", True),
    Metric("wh_delivered", "webhook", "webhook: hooked msgs POSTed", "%", "", True),
    Metric("wh_conns", "webhook", "webhook: sink connections used", "conns", "≤ pool_size 32", True),
    Metric("wh_fanin_off", "webhook", "fan-in QoS 0 64 B, hook off", "msg/s", "", True),
    Metric("wh_fanin_on", "webhook", "fan-in QoS 0 64 B, every msg hooked", "msg/s", "", True),
    Metric("wh_on_off", "webhook", "hook on / hook off throughput", "×", "≥ 0.25", True),
    Metric("wh_lag_p50", "webhook", "publish->POST lag @500/s p50", "ms", "", True),
    Metric("wh_lag_p99", "webhook", "publish->POST lag @500/s p99", "ms", "≤ 5 ms", True),
    Metric("wh_slow_p99", "webhook", "200 ms sink: non-hooked p99 @1k/s", "ms", "≤ 2 ms", True),
    Metric("wh_slow_posts", "webhook", "200 ms sink: POSTs answered", "POST/s", "", True),
    Metric("wh_slow_rss", "webhook", "200 ms sink: peak RSS", "MB", "bounded", True),
]

# The persistence scenario lives in its own module (it imports this one).
from scenario_persistence import PERSISTENCE_METRICS, persistence  # noqa: E402

SCENARIOS["persistence"] = persistence
METRICS += PERSISTENCE_METRICS

# The bridge scenario lives in its own module too.
from scenario_bridge import BRIDGE_METRICS, bridge  # noqa: E402

SCENARIOS["bridge"] = bridge
METRICS += BRIDGE_METRICS

# Scenarios in modules of their own (they import Metric from here).
from scenario_webhook_slow import METRICS as WEBHOOK_SLOW_METRICS  # noqa: E402
from scenario_webhook_slow import webhook_slow  # noqa: E402

SCENARIOS["webhook_slow"] = webhook_slow
METRICS += WEBHOOK_SLOW_METRICS
