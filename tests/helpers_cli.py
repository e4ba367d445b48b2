"""Run the `nanomq` command line as real processes, each test with its own pid file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from broker_process import REPO, BrokerProcess

LISTENING = re.compile(r"NanoMQ listening on (\w+)://([^:\s]+|\[[^\]]+\]):(\d+)")
TIMEOUT = 30


def cli_env(tmp_path, **extra):
    """The environment of a CLI process: pid file in tmp_path, this checkout importable, no NANOMQ_* leaks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANOMQ_")}
    env["NANOMQ_PID_FILE"] = str(Path(tmp_path) / "nanomq.pid")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def nanomq_command(*args):
    return [sys.executable, "-m", "nanomq_py", *args]


def run_nanomq(tmp_path, *args, env=None, command=None):
    """Run one CLI command to completion; a CompletedProcess with text stdout/stderr."""
    return subprocess.run(
        (command or nanomq_command)(*args),
        capture_output=True,
        text=True,
        env=env or cli_env(tmp_path),
        cwd=tmp_path,
        timeout=TIMEOUT,
    )


def spawn_nanomq(tmp_path, *args, env=None, command=None):
    """Start a foreground `nanomq start ...` and wait until it says it started (or ends)."""
    env = env or cli_env(tmp_path)
    proc = subprocess.Popen(
        (command or nanomq_command)(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    broker = BrokerProcess(proc, None, env["NANOMQ_PID_FILE"])
    broker.wait_started()
    return broker


def write_conf(tmp_path, text, name="nanomq.conf"):
    path = Path(tmp_path) / name
    path.write_text(text)
    return path


def listener_of(output, kind="tcp"):
    """(host, port) from the `NanoMQ listening on ...` lines of some output, as a client target."""
    for match in LISTENING.finditer(output):
        if match.group(1) == kind:
            return SimpleNamespace(host=match.group(2).strip("[]"), port=int(match.group(3)))
    raise AssertionError(f"no {kind} listener in output:\n{output}")


def read_pid(pid_file):
    return int(Path(pid_file).read_text().strip())


def process_exists(pid):
    """True while `pid` runs (a zombie counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def dead_pid():
    """The pid of a process that has already ended."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)
