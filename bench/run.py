#!/usr/bin/env python3
"""nanomq_py's benchmark: every scenario of issue 6, side by side with Mosquitto and amqtt.

    python3 bench/run.py                       # full: medians of 5 runs (about 1.5 hours)
    python3 bench/run.py --quick               # one short run of everything (about 3 minutes)
    python3 bench/run.py --brokers nanomq_py,mosquitto --scenarios fanin,latency --runs 3
    python3 bench/run.py --idle-window 120     # idle-CPU window in seconds (default 60, 5 with --quick)
    python3 bench/run.py --update-readme       # also keep the table in bench/README.md

It installs what it lacks (mosquitto from Debian, amqtt into bench/.work/amqtt-venv,
gcc for the C helpers), pins each broker to core 0 and the load to core 1, and
prints the loadgen ceiling, a markdown table of medians with the ratios
nanomq_py / Mosquitto and nanomq_py / amqtt, and JSON summary lines; every run's
figures go to bench/results/<timestamp>.jsonl. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from pathlib import Path

import helpers
import procfs
import report
import toolchain
from brokers import BROKERS, LOAD_CORE, Profiler
from helpers import Forwarder, loadgen
from scenarios import (
    CONNECT_CONCURRENCY,
    FANIN_WINDOW,
    FANOUT_WINDOW,
    FULL,
    QUICK,
    SCENARIOS,
    Context,
    Profile,
)

RESULTS_DIR = toolchain.BENCH_DIR / "results"
CEILING_MULTIPLE = 3.0
CEILING_LOAD_S = 3
README_BEGIN, README_END = "<!-- latest-results:begin -->", "<!-- latest-results:end -->"
BUSY_LOAD = 0.5  # 1-minute load average above which the machine is not quiet enough to trust
CEILING_LOADS = {  # metric -> the same loadgen arguments as the scenario, driven against the forwarder
    "fanin_q0_64": ("fanin", {"qos": 0, "size": 64, "pubs": 8, "window": FANIN_WINDOW}),
    "fanin_q1_64": ("fanin", {"qos": 1, "size": 64, "pubs": 8, "window": FANIN_WINDOW}),
    "fanout_100": ("fanout", {"qos": 0, "size": 64, "subs": 100, "window": FANOUT_WINDOW}),
    "conns_5k_rate": ("conns", {"conns": 5000, "concurrency": CONNECT_CONCURRENCY, "hold": 0}),
}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one short run with smaller counts")
    ap.add_argument("--brokers", default=",".join(BROKERS), help="comma list (default: %(default)s)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list (default: %(default)s)")
    ap.add_argument(
        "--runs", type=int, help="runs per scenario and broker; the table shows medians (5; 1 quick)"
    )
    ap.add_argument("--idle-window", type=float, help="seconds of the idle-CPU window (60; 5 quick)")
    ap.add_argument(
        "--update-readme",
        action="store_true",
        help="also write the table into bench/README.md (Latest results)",
    )
    ap.add_argument(
        "--py-spy", action="store_true", help="flame graph of nanomq_py per scenario in bench/.work/profiles/"
    )
    args = ap.parse_args()
    for name, known in ((args.brokers, BROKERS), (args.scenarios, SCENARIOS)):
        unknown = set(name.split(",")) - set(known)
        if unknown:
            ap.error(f"unknown {', '.join(sorted(unknown))}; choose from {', '.join(known)}")
    return args


def pin_and_raise_limits() -> None:
    """The orchestrator stays off the broker core; 10k clients need 10k+ descriptors on each side."""
    if os.cpu_count() and os.cpu_count() < 2:
        sys.exit("bench needs 2 cores: the broker on core 0, the load on core 1")
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    want = 65536
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def machine_info() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    git = ["git", "-C", str(toolchain.BENCH_DIR.parent)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if subprocess.run(
        [*git, "status", "--porcelain", "--", "nanomq_py"], capture_output=True, text=True
    ).stdout:
        commit += "+uncommitted"  # the broker measured is not exactly that commit
    mosquitto = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "mosquitto"], capture_output=True, text=True
    )
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": mosquitto.stdout.strip() or "?",
        "amqtt": toolchain.AMQTT_VERSION,
        "nanomq_py_commit": commit,
        "load_average_at_start": os.getloadavg()[0],
    }


def measure_ceiling(attempts: int) -> dict:
    """What the load generator reaches against the do-nothing forwarder, plus its latency floor.
    Noise on a shared machine only ever lowers a ceiling, so each figure is the best of a few tries."""
    ceiling = {}
    with Forwarder() as fw:
        for metric, (mode, opts) in CEILING_LOADS.items():
            for _ in range(attempts):
                load_core = procfs.CoreBusy(int(LOAD_CORE))
                r = loadgen(mode, fw.port, CEILING_LOAD_S + 60, duration=CEILING_LOAD_S, count=50_000_000, stall=3,
                            **opts)  # fmt: skip
                if r["rate"] > ceiling.get(metric, 0):
                    ceiling[metric] = r["rate"]
                    ceiling[f"{metric}_load_core_busy_pct"] = load_core.percent()
        floors = [
            loadgen(
                "latency",
                fw.port,
                CEILING_LOAD_S + 60,
                qos=0,
                rate=1000,
                duration=CEILING_LOAD_S,
                spin=1,
                count=100_000,
            )["p99_us"]
            / 1000  # fmt: skip
            for _ in range(attempts)
        ]
        ceiling["latency_floor_p99_ms"] = min(floors)
    return ceiling


def ceiling_report(ceiling: dict, values: dict) -> list[str]:
    lines = [
        f"loadgen ceiling (forwarder on core 0): fan-in QoS 0 {ceiling['fanin_q0_64']:,.0f} msg/s, "
        f"QoS 1 {ceiling['fanin_q1_64']:,.0f} msg/s, fan-out 100 {ceiling['fanout_100']:,.0f} deliv/s, "
        f"{ceiling['conns_5k_rate']:,.0f} connects/s (load core {ceiling['conns_5k_rate_load_core_busy_pct']:.0f} % "
        f"busy: on loopback it runs the kernel's side of every handshake); latency floor p99 "
        f"{ceiling['latency_floor_p99_ms']:.2f} ms at 1k msg/s (the machine's own scheduling noise)"
    ]
    for metric in CEILING_LOADS:
        best = max((v for (b, m), v in values.items() if m == metric), default=None)
        if not best:
            continue
        multiple = ceiling[metric] / best
        verdict = "ok" if multiple >= CEILING_MULTIPLE else f"WARNING: below {CEILING_MULTIPLE:.0f}×"
        lines.append(f"- {metric}: ceiling {multiple:.1f}× the fastest broker ({best:,.0f}) - {verdict}")
    return lines


def run_scenarios(out, profile: Profile, runs: int, broker_names, scenario_names, log_dir: Path):
    """Scenario by scenario, run by run, broker after broker (so drift hits every broker alike).
    Returns (broker, metric) -> figures of every run, and the failures."""
    samples, errors = defaultdict(list), []
    for scenario in scenario_names:
        for run in range(runs):
            for name in broker_names:
                ctx = Context(profile=profile, log_dir=log_dir, run=run)
                started = time.monotonic()
                print(f"[bench] {scenario} run {run + 1}/{runs}: {name}", file=sys.stderr, flush=True)
                try:
                    metrics, raw = SCENARIOS[scenario](ctx, BROKERS[name])
                    error = None
                except Exception as exc:  # one failing broker or scenario must not lose the rest
                    metrics, raw, error = {}, {}, f"{type(exc).__name__}: {exc}"
                    errors.append(f"{scenario} run {run + 1} {name}: {error}")
                    print(f"[bench]   failed: {error}", file=sys.stderr)
                    traceback.print_exc(file=sys.stderr)
                for key, value in metrics.items():
                    if value is not None:
                        samples[(name, key)].append(value)
                record = {"type": "run", "scenario": scenario, "broker": name, "run": run,
                          "seconds": round(time.monotonic() - started, 1), "metrics": metrics,
                          "error": error, "raw": raw}  # fmt: skip
                out.write(json.dumps(record) + "\n")
                out.flush()
    return samples, errors


def render(info: dict, quick: bool, runs: int, ceiling: dict, values: dict, broker_names, errors) -> str:
    """The markdown that is printed (and, with --update-readme, kept in bench/README.md)."""
    parts = [
        f"Run {info['date']} on {info['cpu']}, {info['cores']} cores, kernel {info['kernel']}; "
        f"Python {info['python']}, Mosquitto {info['mosquitto']}, amqtt {info['amqtt']}, "
        f"nanomq_py {info['nanomq_py_commit']}; {'--quick, ' if quick else ''}"
        f"median of {runs} run{'s' if runs > 1 else ''}."
    ]
    if info["load_average_at_start"] > BUSY_LOAD:
        parts.append(
            f"WARNING: load average {info['load_average_at_start']:.1f} at start: other processes shared "
            "these cores, expect noisy figures (above all the latency percentiles)."
        )
    parts.append("\n".join(ceiling_report(ceiling, values)))
    parts.append(report.markdown_table(values, broker_names))
    if errors:
        parts.append("Failed (their cells show –):\n" + "\n".join(f"- {e}" for e in errors))
    return "\n\n".join(parts) + "\n"


def update_readme(text: str) -> None:
    """Replaces what sits between the two markers of bench/README.md."""
    readme = toolchain.BENCH_DIR / "README.md"
    current = readme.read_text()
    head, _, rest = current.partition(README_BEGIN)
    _, _, tail = rest.partition(README_END)
    if not rest:
        sys.exit(f"{readme} has no {README_BEGIN} marker")
    readme.write_text(f"{head}{README_BEGIN}\n{text}{README_END}{tail}")


def main() -> None:
    args = parse_args()
    profile = QUICK if args.quick else FULL
    if args.idle_window:
        profile = Profile(**{**profile.__dict__, "idle_window_s": args.idle_window})
    runs = args.runs or (1 if args.quick else 5)
    broker_names = args.brokers.split(",")
    scenario_names = args.scenarios.split(",")

    pin_and_raise_limits()
    toolchain.ensure_taskset()
    helpers.BINARIES.update(toolchain.build_helpers())
    for name in broker_names:
        BROKERS[name].prepare()

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(exist_ok=True)
    out_path = RESULTS_DIR / f"{stamp}.jsonl"
    log_dir = toolchain.WORK_DIR / "logs" / stamp
    if args.py_spy:
        Profiler.binary = toolchain.ensure_py_spy()
        Profiler.out_dir = toolchain.WORK_DIR / "profiles" / stamp
    info = machine_info()
    info.update(profile=profile.__dict__, runs=runs, brokers=broker_names, scenarios=scenario_names)

    with open(out_path, "w") as out:
        out.write(json.dumps({"type": "machine", **info}) + "\n")
        print("[bench] measuring the load generator's ceiling", file=sys.stderr)
        ceiling = measure_ceiling(attempts=2 if args.quick else 3)
        out.write(json.dumps({"type": "ceiling", **ceiling}) + "\n")
        samples, errors = run_scenarios(out, profile, runs, broker_names, scenario_names, log_dir)
        values = report.medians(samples)
        summaries = report.summary_lines(values, broker_names)
        out.writelines(line + "\n" for line in summaries)

    text = render(info, args.quick, runs, ceiling, values, broker_names, errors)
    print("\n" + text)
    print("\n".join(summaries))
    if args.update_readme:
        update_readme(text)
    print(f"\n[bench] JSON lines: {out_path}", file=sys.stderr)
    if Profiler.out_dir:
        print(f"[bench] flame graphs: {Profiler.out_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
