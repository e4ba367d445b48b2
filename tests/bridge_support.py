"""Real parts for the bridge tests: a Mosquitto process as the upstream, a TCP proxy that can
cut and restore the link between the bridge and its upstream, and the bridge's HTTP API."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
TIMEOUT = 20


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mosquitto:
    """`mosquitto -c conf` on a free 127.0.0.1 port; `restart()` brings it back on the same port."""

    def __init__(self, directory, extra="", port=None):
        if not Path(MOSQUITTO).exists():
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.directory = Path(directory)
        self.port = port or free_port()
        self.extra = extra
        self.proc = None
        self.lines = []
        self.start()

    @property
    def host(self):
        return "127.0.0.1"

    def start(self):
        conf = self.directory / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n"
            f"log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            f"{'user root' if os.geteuid() == 0 else ''}\n{self.extra}"
        )
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        started = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line.rstrip())
                if " running" in line or "Error" in line:
                    started.set()
            started.set()

        threading.Thread(target=read, daemon=True).start()
        if not started.wait(TIMEOUT) or self.proc.poll() is not None or "Error" in self.lines[-1]:
            self.stop()
            raise RuntimeError("mosquitto did not start:\n" + "\n".join(self.lines))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(TIMEOUT)

    def restart(self):
        self.stop()
        self.start()


class TcpProxy:
    """127.0.0.1:<port> -> target, one thread pair per connection. `cut()` closes every
    connection and refuses new ones (accepted, then closed at once) until `restore()`."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.frozen = False  # connections stay open but nothing is forwarded: a hung upstream
        self.connections = []
        self.accepted = 0
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections.append((client, upstream))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a, b):
        sockets = [a, b]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 0.05)
                if self.stopped:
                    return
                if self.frozen:
                    continue
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except OSError:
            return
        finally:
            for sock in sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def cut(self):
        self.up = False
        with self.lock:
            for a, b in self.connections:
                for sock in (a, b):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            self.connections.clear()

    def restore(self):
        self.up = True

    def freeze(self, frozen=True):
        self.frozen = frozen

    def close(self):
        self.stopped = True
        self.cut()
        self.listener.close()


class BridgeApi:
    """GET /api/v4/bridges[/name] of a broker started with an `http_server` block."""

    def __init__(self, proc):
        match = proc.wait_for_output(r"NanoMQ HTTP API listening on http://127\.0\.0\.1:(\d+)")
        self.base = f"http://127.0.0.1:{match.group(1)}/api/v4"

    def get(self, path):
        request = urllib.request.Request(self.base + path)
        request.add_header("Authorization", "Basic " + base64.b64encode(b"admin:public").decode())
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def node(self, name):
        """The bridge's node in NanoMQ's answer: {"code": 0, "data": {"bridge": {"nodes": [...]}}}."""
        code, body = self.get(f"/bridges/{name}")
        assert code == 200 and body["code"] == 0, body
        [node] = body["data"]["bridge"]["nodes"]
        return node

    def status(self, name):
        return self.node(name)["status"]

    def wait_for(self, name, predicate, timeout=TIMEOUT):
        """Poll the bridge's status until predicate(status) holds (a bounded wait on a condition)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(name)
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"bridge {name} status never matched: {status}")
            time.sleep(0.05)


def count_lines(proc, pattern):
    regex = re.compile(pattern)
    with proc._output_cond:
        return sum(1 for line in proc.lines if regex.search(line))


def wait_for_count(proc, pattern, count, timeout=TIMEOUT):
    """Block until `count` lines of the broker's output match the regex."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    with proc._output_cond:
        while sum(1 for line in proc.lines if regex.search(line)) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not proc._output_cond.wait(left):
                raise AssertionError(
                    f"fewer than {count} lines matching {pattern!r}:\n" + "\n".join(proc.lines)
                )


API_CONF = 'http_server { bind = "127.0.0.1", port = 0 }\n'


def bridge_conf(name, port, body="", scheme="mqtt-tcp", proto_ver=4):
    """A bridges.mqtt block to 127.0.0.1:port with quick reconnects for tests."""
    return (
        f"bridges.mqtt.{name} {{\n"
        f'  server = "{scheme}://127.0.0.1:{port}"\n'
        f"  proto_ver = {proto_ver}\n"
        f'  clientid = "edge-{name}"\n'
        f"  keepalive = 10s\n"
        f"  backoff_max = 1s\n"
        f"{body}\n}}\n"
    )
