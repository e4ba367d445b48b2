"""Start nanomq_py as a real process (`python -m nanomq_py start --conf ...`)
on an ephemeral port and wait for it to say it is listening."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STARTED = "NanoMQ Broker is started successfully!"
_LISTENING = re.compile(r"NanoMQ listening on (\w+)://([^:\s]+|\[[^\]]+\]):(\d+)")


class BrokerProcess:
    """A running broker process; its output is collected in `lines`."""

    def __init__(self, proc, conf_path, pid_file):
        self.proc = proc
        self.conf_path = conf_path
        self.pid_file = pid_file
        self.lines = []
        self.listeners = {}  # kind -> (host, port)
        self._started = threading.Event()
        self._output_cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def host(self):
        return self.listeners["tcp"][0]

    @property
    def port(self):
        return self.listeners["tcp"][1]

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._output_cond:
                self.lines.append(line)
                match = _LISTENING.search(line)
                if match:
                    self.listeners.setdefault(
                        match.group(1), (match.group(2).strip("[]"), int(match.group(3)))
                    )
                self._output_cond.notify_all()
            if STARTED in line:
                self._started.set()
        self._started.set()  # process ended: stop waiting either way
        with self._output_cond:
            self._output_cond.notify_all()

    def wait_started(self, timeout=15):
        started = self._started.wait(timeout)
        if started and not self._reader.is_alive():
            self.proc.wait(5)  # the output ended: the process is exiting
        if not started or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("broker did not start:\n" + "\n".join(self.lines))

    def wait_for_output(self, pattern, timeout=10):
        """Block until a line of output matches the regex; returns the match."""
        regex = re.compile(pattern)
        with self._output_cond:
            seen = 0
            deadline = timeout
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"broker exited without printing {pattern!r}:\n" + "\n".join(self.lines)
                    )
                if not self._output_cond.wait(deadline):
                    raise AssertionError(
                        f"no output matching {pattern!r} within {timeout}s:\n" + "\n".join(self.lines)
                    )

    def output(self):
        with self._output_cond:
            return "\n".join(self.lines)

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


def start_broker(tmp_path, conf="", args=(), log_level="info", env=None):
    """Write a nanomq.conf (TCP on 127.0.0.1:0 unless conf sets listeners) and start the broker."""
    tmp_path = Path(tmp_path)
    conf_path = tmp_path / "nanomq.conf"
    if "listeners" not in conf:
        conf = 'listeners.tcp.bind = "127.0.0.1:0"\n' + conf
    conf_path.write_text(conf)
    pid_file = tmp_path / "nanomq.pid"
    full_env = dict(os.environ)
    full_env["NANOMQ_PID_FILE"] = str(pid_file)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env["PYTHONUNBUFFERED"] = "1"
    if env:
        full_env.update(env)
    cmd = [
        sys.executable,
        "-m",
        "nanomq_py",
        "start",
        "--conf",
        str(conf_path),
        "--log_level",
        log_level,
        *args,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        cwd=tmp_path,
    )
    broker = BrokerProcess(proc, conf_path, pid_file)
    broker.wait_started()
    return broker
