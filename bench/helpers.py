"""Python handles on the C helpers: the load generator, the forwarder and the HTTP sink.

All of them run on the load core (`taskset -c 1`), except the forwarder, which
stands in for a broker and so runs on the broker core.
"""

from __future__ import annotations

import json
import subprocess

from brokers import BROKER_CORE, LOAD_CORE

BINARIES: dict = {}  # name -> Path, filled by run.py from toolchain.build_helpers()


def _flag_args(options: dict) -> list[str]:
    args = []
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    return args


def _loadgen_argv(mode: str, port: int, options: dict) -> list[str]:
    return [
        "taskset",
        "-c",
        LOAD_CORE,
        str(BINARIES["loadgen"]),
        mode,
        "--port",
        str(port),
        *_flag_args(options),
    ]


def loadgen(mode: str, port: int, timeout: float, **options) -> dict:
    """Runs one bounded load and returns the first JSON line it prints (a `conns` load
    gets an empty stdin, so it lets its clients go as soon as they are connected)."""
    argv = _loadgen_argv(mode, port, options)
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen {mode} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return json.loads(lines[0])


class LoadgenProcess:
    """A load generator running in the background (e.g. hooked traffic next to a latency probe)."""

    def __init__(self, mode: str, port: int, **options):
        self.proc = subprocess.Popen(
            _loadgen_argv(mode, port, options),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def read_json(self) -> dict:
        line = self.proc.stdout.readline()
        if not line.startswith("{"):
            self.proc.kill()
            raise RuntimeError(f"loadgen gave no result: {self.proc.stderr.read()[-300:]}")
        return json.loads(line)

    def release(self) -> None:
        """Closes stdin: a `conns` load disconnects its clients and prints the hold summary."""
        self.proc.stdin.close()

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class _ServerProcess:
    """A helper server that prints `ready <port>` once listening."""

    def __init__(self, core: str, argv: list[str]):
        self.proc = subprocess.Popen(
            ["taskset", "-c", core, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        ready = self.proc.stdout.readline().split()
        if len(ready) != 2 or ready[0] != "ready":
            self.stop()
            raise RuntimeError(f"{argv[0]} did not start")
        self.port = int(ready[1])
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Forwarder(_ServerProcess):
    """The trivial MQTT forwarder, on the broker core: the load generator's ceiling."""

    def __init__(self):
        super().__init__(BROKER_CORE, [str(BINARIES["forwarder"]), "0"])


class HttpSink(_ServerProcess):
    """The webhook endpoint: answers 200 at once, or after `delay_ms`; `sequential`: one
    connection's pipelined requests one after another, as ordinary HTTP servers do."""

    def __init__(self, delay_ms: int = 0, sequential: bool = False):
        argv = [str(BINARIES["httpsink"]), "--delay-ms", str(delay_ms), "--sequential", str(int(sequential))]
        super().__init__(LOAD_CORE, argv)
        self.url = f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.proc.stdin.write("reset\n")
        self.proc.stdin.flush()

    def stats(self) -> dict:
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())
