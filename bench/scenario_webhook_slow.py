"""Scenario `webhook_slow`: one MQTT client publishing at a fixed rate to a hooked
topic, the webhook endpoint answering each POST after 50 ms, then after 200 ms.

The common edge case (a gateway publishing all its sensors over one connection,
a cloud endpoint a round trip away). The sink answers a connection's pipelined
requests one after another, as ordinary HTTP servers do (httpsink --sequential). With pool_size = 32 the ceiling is
pool_size / delay: about 640 events/s at 50 ms and 160/s at 200 ms, so the
offered RATE is above both and the figures show what the sender reaches.

Figures per delay: events/s delivered while the client publishes (POSTs the
sink answered, over the span of its answers), the publish->POST lag p99 of the
events that reached it (it includes the time
queued: above the ceiling the queue grows, and so does the lag), and the events
the broker dropped (queue full, or still queued or being sent when the drain at
stop ended), read from the broker's last webhook counters in its log.
"""

from __future__ import annotations

import re

from brokers import RunningBroker
from helpers import HttpSink, loadgen
from scenarios import STALL_S, Metric

RATE = 1000  # msgs/s from one client, above the 50 ms and 200 ms ceilings of pool_size 32
DELAYS_MS = (50, 200)


def _dropped(log_text: str) -> int:
    """The broker's last `dropped=` webhook counter: a loss is always logged as a warning
    (stop warning or counters line), so none logged means none dropped."""
    found = re.findall(r"webhook.*\bdropped=(\d+)", log_text)
    return int(found[-1]) if found else 0


def webhook_slow(ctx, broker):
    if not broker.supports_webhook:
        return {}, {}
    p = ctx.profile
    metrics, raw = {}, {}
    for delay in DELAYS_MS:
        with HttpSink(delay_ms=delay, sequential=True) as sink:
            with RunningBroker(broker, ctx.log_dir, f"webhook-slow{delay}-r{ctx.run}", sink.url) as b:
                load = loadgen(
                    "latency", b.port, p.load_s + STALL_S + 60, qos=0, size=64, rate=RATE, topic="bench/slow",
                    subs=0, count=int(RATE * p.load_s), duration=p.load_s, stall=STALL_S, drain=0,
                )  # fmt: skip
                during = sink.stats()
                if not b.alive():
                    raise RuntimeError(f"{broker.name} died during webhook_slow: {b.log_tail()}")
            log_text = b.log_path.read_text(errors="replace")  # stopped: its last counters are written
        metrics[f"whs_{delay}_rate"] = during["answered_per_s"]
        metrics[f"whs_{delay}_lag_p99"] = during["lag_p99_ms"] if during["lag_samples"] else None
        metrics[f"whs_{delay}_dropped"] = _dropped(log_text)
        raw[f"delay_{delay}"] = {"load": load, "sink_during_load": during}
    return metrics, raw


METRICS = [
    row
    for delay, ceiling in ((50, 640), (200, 160))
    for row in (
        Metric(f"whs_{delay}_rate", "webhook_slow", f"1 client @{RATE}/s, {delay} ms sink: delivered",
               "events/s", f"≈ {ceiling} (32 / {delay} ms)", nanomq_only=True),
        Metric(f"whs_{delay}_lag_p99", "webhook_slow", f"1 client @{RATE}/s, {delay} ms sink: lag p99",
               "ms", "", nanomq_only=True),
        Metric(f"whs_{delay}_dropped", "webhook_slow", f"1 client @{RATE}/s, {delay} ms sink: dropped",
               "events", "", nanomq_only=True, ratio=False),
    )
]  # fmt: skip
