"""A real HTTP server for webhook tests: it records every request and answers as told.

    with WebhookSink() as sink:                     # 200 to everything
        ... sink.url ...
        requests = sink.wait_for(3, timeout=5)      # the first 3 requests, or AssertionError

Behaviours: `status` for every answer; `fail_first=N` answers `fail_status`
(500) to the first N requests, with a `Retry-After: <retry_after>` header if given; `delay` seconds before answering (a slow
endpoint; `max_held` is then the most requests it held at once); `hang=True` reads the request and never answers until the sink
stops. `refused_url()` gives a URL where nothing listens. Pass an
`ssl_context` (server side) for https.

The server runs in its own threads, independent of the gevent hub of the code
under test. `wait_for` waits on a pipe the server writes one byte to per
request, through gevent, so a test running webhook greenlets in its hub keeps
them running while it waits (and a test without greenlets just waits).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gevent.socket


class Request:
    __slots__ = ("method", "path", "headers", "body", "peer_port")

    def __init__(self, method, path, headers, body, peer_port):
        self.method = method
        self.path = path
        self.headers = headers  # [(name, value)] as received, in order
        self.body = body  # bytes
        self.peer_port = peer_port  # the client's port: equal ports mean a reused connection

    def header(self, name):
        """The value of a header (case-insensitive), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self):
        return json.loads(self.body)


class WebhookSink:
    def __init__(
        self,
        status=200,
        *,
        fail_first=0,
        fail_status=500,
        retry_after=None,
        delay=0.0,
        hang=False,
        ssl_context=None,
    ):
        self.status = status
        self.retry_after = retry_after  # Retry-After header value sent with the failures
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay = delay
        self.hang = hang
        self._requests = []
        self.held = 0  # requests being delayed now
        self.max_held = 0  # the most requests delayed at once: the concurrency the sender reached
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}/webhook"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="webhook-sink", daemon=True
        )
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def stop(self):
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        os.close(self._wake_read)
        os.close(self._wake_write)

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    def bodies(self):
        return [request.json() for request in self.requests]

    def wait_for(self, count, timeout=5.0):
        """The first `count` requests once they have arrived; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self._requests) >= count:
                    return self._requests[:count]
                arrived = len(self._requests)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"sink got {arrived} requests, expected {count}, within {timeout}s")
            try:
                gevent.socket.wait_read(self._wake_read, timeout=remaining)
                os.read(self._wake_read, 4096)
            except (TimeoutError, BlockingIOError):
                pass

    def _record(self, request):
        with self._lock:
            self._requests.append(request)
            number = len(self._requests)
        try:
            os.write(self._wake_write, b"!")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already
        return number

    def _handler_class(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                number = sink._record(
                    Request(self.command, self.path, list(self.headers.items()), body, self.client_address[1])
                )
                if sink.hang:
                    sink._release.wait()
                    self.close_connection = True
                    return
                if sink.delay:
                    with sink._lock:
                        sink.held += 1
                        sink.max_held = max(sink.max_held, sink.held)
                    time.sleep(sink.delay)
                    with sink._lock:
                        sink.held -= 1
                failing = number <= sink.fail_first
                self.send_response(sink.fail_status if failing else sink.status)
                if failing and sink.retry_after is not None:
                    self.send_header("Retry-After", sink.retry_after)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that went away (e.g. a broker stopped mid-request) is normal here."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def refused_url():
    """An http:// URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/webhook"


def settled_counters(**given):
    """A webhook's counters once every event is settled: nothing in flight or waiting,
    and every cumulative counter 0 but those given."""
    counters = dict.fromkeys(
        ("queued", "delivered", "retried", "failed", "dropped", "in_flight", "waiting"), 0
    )
    counters.update(given)
    return counters
