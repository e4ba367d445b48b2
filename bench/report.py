"""Medians over runs, the markdown table with ratios, and the JSON lines."""

from __future__ import annotations

import json
import statistics

from scenarios import METRICS, Metric

NANOMQ = "nanomq_py"
RIVALS = ("mosquitto", "amqtt")


def medians(samples: dict[tuple[str, str], list[float]]) -> dict[tuple[str, str], float]:
    """(broker, metric) -> median of the runs that produced a figure."""
    return {key: statistics.median(values) for key, values in samples.items() if values}


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def _cell(metric: Metric, broker: str, brokers: list[str], values: dict) -> str:
    if broker not in brokers:
        return "–"
    if metric.nanomq_only and broker != NANOMQ:
        return "n/a"
    return _fmt(values.get((broker, metric.key)))


def markdown_table(values: dict[tuple[str, str], float], brokers: list[str]) -> str:
    shown = [NANOMQ, *RIVALS]
    head = (
        "| scenario | unit | " + " | ".join(shown) + " | nanomq_py / mosquitto | nanomq_py / amqtt | target |"
    )
    lines = [head, "|" + "---|" * (len(shown) + 5)]
    for m in METRICS:
        if not any((b, m.key) in values for b in brokers):
            continue
        mine = values.get((NANOMQ, m.key))
        cells = [_cell(m, b, brokers, values) for b in shown]
        ratios = [
            "n/a" if m.nanomq_only else _ratio(mine, values.get((r, m.key))) if m.ratio else ""
            for r in RIVALS
        ]
        lines.append(f"| {m.label} | {m.unit} | " + " | ".join(cells + ratios) + f" | {m.target} |")
    return "\n".join(lines)


def summary_lines(values: dict[tuple[str, str], float], brokers: list[str]) -> list[str]:
    """One JSON object per metric: the medians per broker and the two ratios."""
    out = []
    for m in METRICS:
        per_broker = {b: values.get((b, m.key)) for b in brokers if (b, m.key) in values}
        if not per_broker:
            continue
        mine = per_broker.get(NANOMQ)
        ratios = {
            f"{NANOMQ}/{r}": (mine / per_broker[r]) if mine is not None and per_broker.get(r) else None
            for r in RIVALS
        }
        out.append(
            json.dumps(
                {"type": "summary", "metric": m.key, "label": m.label, "unit": m.unit, "target": m.target,
                 "median": per_broker, "ratios": ratios},
                ensure_ascii=False,
            )
        )  # fmt: skip
    return out
