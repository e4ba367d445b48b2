"""The brokers under test: how each is configured, started on core 0, probed and stopped.

Every broker listens on 127.0.0.1 on a fresh free port, gets a config written
to a temporary directory, and runs under `taskset -c 0` so it has exactly one
core, like the single-core boards nanomq_py is made for. A broker is ready once
it answers a real MQTT CONNECT with a CONNACK.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import toolchain

REPO_ROOT = toolchain.REPO_ROOT
BROKER_CORE = "0"
LOAD_CORE = "1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class Profiler:
    """`run.py --py-spy`: samples every nanomq_py process of the run into a flame graph (SVG).
    py-spy runs on the load core with --nonblocking, so the broker is never paused."""

    binary: Path | None = None
    out_dir: Path | None = None

    @classmethod
    def start(cls, pid: int, label: str) -> subprocess.Popen | None:
        if cls.binary is None or cls.out_dir is None:
            return None
        cls.out_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(cls.binary), "record", "--pid", str(pid), "--rate", "250", "--nonblocking",
                "--format", "flamegraph", "--output", str(cls.out_dir / f"{label}.svg")]  # fmt: skip
        return subprocess.Popen(
            ["taskset", "-c", LOAD_CORE, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    @staticmethod
    def stop(proc: subprocess.Popen | None) -> None:
        """SIGINT makes py-spy write its file."""
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mqtt_handshake(port: int, timeout: float = 1.0) -> bool:
    """True when something on the port answers CONNECT (MQTT 3.1.1, clean session) with CONNACK 0."""
    connect = bytes([0x10, 17, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 5]) + b"probe"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(connect)
            reply = s.recv(4)
            s.sendall(b"\xe0\x00")
            return reply[:1] == b"\x20" and reply[3:4] == b"\x00"
    except OSError:
        return False


class Broker:
    """One broker kind: writes its config and gives the command that starts it."""

    name = ""
    supports_webhook = False

    def prepare(self) -> None:
        """Installs the broker when missing (called once per bench run)."""

    def command(self, port: int, workdir: Path, webhook_url: str | None) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError


class NanomqPy(Broker):
    """nanomq_py as a user runs it: `nanomq start` of this checkout installed into its own venv."""

    name = "nanomq_py"
    supports_webhook = True

    def prepare(self):
        self.script = toolchain.ensure_nanomq_py()

    def command(self, port, workdir, webhook_url):
        conf = [f'listeners.tcp.bind = "127.0.0.1:{port}"']
        if webhook_url:
            conf += [
                "webhook {",
                f'  url = "{webhook_url}"',
                '  headers.content-type = "application/json"',
                "  body.encoding = plain",
                "  pool_size = 32",
                '  events = [{event = "on_message_publish", topic = "bench/#"}]',
                "}",
            ]
        path = workdir / "nanomq.conf"
        path.write_text("\n".join(conf) + "\n")
        env = dict(os.environ, NANOMQ_PID_FILE=str(workdir / "nanomq.pid"))
        env.pop("PYTHONPATH", None)  # only the venv's own nanomq_py and its dependencies
        return [str(self.script), "start", "--conf", str(path)], env


class Mosquitto(Broker):
    """Mosquitto without inflight/queue limits: its 2.0 defaults (20 inflight, 1000 queued)
    leave the queued QoS 1 tail undelivered once publishers stop, which would turn the
    closed-loop fan-in into a loss test; unlimited is also how it reaches the issue's
    reference figures (it grows instead of dropping under flood)."""

    name = "mosquitto"

    def prepare(self):
        self.binary = toolchain.ensure_mosquitto()

    def command(self, port, workdir, webhook_url):
        path = workdir / "mosquitto.conf"
        path.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\npersistence false\n"
            "max_inflight_messages 0\nmax_queued_messages 0\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        return [self.binary, "-c", str(path)], dict(os.environ)


class Amqtt(Broker):
    """amqtt with anonymous access and no logging or $SYS plugins (they only cost it speed)."""

    name = "amqtt"

    def prepare(self):
        self.script = toolchain.ensure_amqtt()

    def command(self, port, workdir, webhook_url):
        path = workdir / "amqtt.yaml"
        path.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: 127.0.0.1:{port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
        )
        return [str(self.script), "-c", str(path)], dict(os.environ)


BROKERS = {b.name: b for b in (NanomqPy(), Mosquitto(), Amqtt())}


class RunningBroker:
    """A started broker process; use as a context manager so it is always stopped."""

    def __init__(self, broker: Broker, log_dir: Path, label: str, webhook_url: str | None = None):
        self.broker = broker
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix=f"bench-{broker.name}-")
        argv, env = broker.command(self.port, Path(self._tmp.name), webhook_url)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{broker.name}-{label}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - outlives __init__, closed by stop()
        self.proc = subprocess.Popen(
            ["taskset", "-c", BROKER_CORE, *argv],
            env=env,
            cwd=str(REPO_ROOT),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid  # taskset execs the broker: same pid
        self._profiler: subprocess.Popen | None = None
        self._wait_ready()
        if broker.name == NanomqPy.name:
            self._profiler = Profiler.start(self.pid, label)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.broker.name} exited at start: {self.log_tail()}")
            if mqtt_handshake(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.broker.name} not answering on port {self.port}: {self.log_tail()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(no output)"

    def stop(self) -> None:
        Profiler.stop(self._profiler)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
