"""What the bench reads about a broker process from /proc: memory, CPU time, wake-ups."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_bytes(pid: int) -> int:
    """Resident set size now (VmRSS)."""
    return _status_kb(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """Highest resident set size since the process started (VmHWM)."""
    return _status_kb(pid, "VmHWM") * 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of the process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches summed over threads: each voluntary one is a wake-up."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                total += int(line.split()[1])
    return total


def core_jiffies(core: int) -> tuple[int, int]:
    """(busy, total) clock ticks of one core since boot, softirq included: loopback TCP work
    done on the load core shows up there, not in the load generator's own CPU time."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, line.split()[1:9])
            total = user + nice + system + idle + iowait + irq + softirq + steal
            return total - idle - iowait, total
    raise KeyError(core)


class CoreBusy:
    """Share of one core that was busy between start() and percent()."""

    def __init__(self, core: int):
        self.core = core
        self.start()

    def start(self) -> None:
        self._busy, self._total = core_jiffies(self.core)

    def percent(self) -> float:
        busy, total = core_jiffies(self.core)
        return 100.0 * (busy - self._busy) / max(total - self._total, 1)
