"""The webhook's own HTTP/1.1 exchange against real sockets: a server thread here sends
edge-case responses, byte for byte; each is either parsed right or refused as a
connection error, and none makes the reader hang past its deadline."""

import contextlib
import email.utils
import json
import socket
import threading
import time

import gevent.socket
import pytest
from urllib3.util import parse_url
from webhook_sink import WebhookSink, settled_counters

from nanomq_py.broker.message import Message
from nanomq_py.settings import WebhookRule, WebhookSettings
from nanomq_py.webhook import WebHook
from nanomq_py.webhook.http_response import (
    MAX_DRAINED_BODY_BYTES,
    MAX_HEAD_BYTES,
    MalformedResponse,
    read_response,
)
from nanomq_py.webhook.http_sender import HttpSender, request_head

REQUEST = b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class ScriptedServer:
    """Listens on 127.0.0.1; every accepted connection runs `handle(sock)` in its own thread."""

    def __init__(self, handle):
        self._handle = handle
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self.requests = []
        self._unread = {}  # socket -> bytes received past the last request read
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        with sock, contextlib.suppress(OSError):
            self._handle(self, sock)

    def read_request(self, sock) -> bool:
        """Read one request (head and Content-Length body) into self.requests; False at EOF.
        Bytes past it (pipelined requests) are kept for the next call on that socket."""
        data = self._unread.pop(sock, b"")
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                return False
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += sock.recv(65536)
        body, self._unread[sock] = body[:length], body[length:]
        self.requests.append(head + b"\r\n\r\n" + body)
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        self._listener.close()


def replies(*pieces, pause=0.0, close=False):
    """A handler answering the first request with `pieces` (each its own write), then closing
    or waiting for the client to close."""

    def handle(server, sock):
        server.read_request(sock)
        for piece in pieces:
            sock.sendall(piece)
            if pause:
                time.sleep(pause)
        if not close:
            sock.recv(1)

    return handle


def bytewise(response: bytes) -> list[bytes]:
    return [response[index : index + 1] for index in range(len(response))]


def exchange(handle, timeout=2.0):
    """Send REQUEST to a ScriptedServer running `handle` and read its response: (status, reusable)."""
    with ScriptedServer(handle) as server:
        sock = gevent.socket.create_connection(("127.0.0.1", server.port))
        try:
            sock.sendall(REQUEST)
            return read_response(sock, timeout)
        finally:
            sock.close()


def refused(handle, timeout=2.0) -> str:
    """The MalformedResponse message for a response that must be refused, and quickly."""
    started = time.monotonic()
    with pytest.raises(MalformedResponse) as caught:
        exchange(handle, timeout)
    assert time.monotonic() - started < timeout, "refused at once, not by the deadline"
    return str(caught.value)


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
    b"5;name=value\r\nhello\r\n"
    b'1A ; quoted="x;y"\r\n' + b"z" * 26 + b"\r\n"
    b"0\r\nExpires: never\r\nX-Checksum: abc\r\n\r\n"
)


# Responses parsed right.


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "byte-per-write"])
def test_content_length_body_is_read_and_the_connection_kept(split):
    pieces = bytewise(OK) if split else [OK]
    assert exchange(replies(*pieces, pause=0.001 if split else 0)) == (200, True)


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "byte-per-write"])
def test_chunked_body_with_extensions_and_trailers(split):
    pieces = bytewise(CHUNKED) if split else [CHUNKED]
    assert exchange(replies(*pieces, pause=0.001 if split else 0)) == (200, True)


def test_chunked_without_trailers_and_with_uppercase_coding_name():
    response = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    assert exchange(replies(response)) == (201, True)


def test_content_length_zero_needs_no_more_bytes():
    assert exchange(replies(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"), timeout=5) == (202, True)


@pytest.mark.parametrize("status", [204, 304])
@pytest.mark.parametrize("framing", [b"Content-Length: 100", b"Transfer-Encoding: chunked"])
def test_statuses_without_a_body_ignore_the_framing_headers(status, framing):
    response = b"HTTP/1.1 %d Nothing\r\n%s\r\n\r\n" % (status, framing)
    assert exchange(replies(response), timeout=5) == (status, True)


def test_the_status_is_returned_as_sent_even_without_a_reason_phrase():
    assert exchange(replies(b"HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n")) == (503, True)


def test_interim_responses_are_skipped():
    response = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n" + OK
    assert exchange(replies(response)) == (200, True)


def test_repeated_equal_content_lengths_are_accepted():
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"
    assert exchange(replies(response)) == (200, True)


# Responses after which the connection is not reused.


@pytest.mark.parametrize("value", [b"close", b"keep-alive, Close", b"CLOSE"])
def test_connection_close_is_honoured(value):
    response = b"HTTP/1.1 200 OK\r\nConnection: %s\r\nContent-Length: 2\r\n\r\nok" % value
    assert exchange(replies(response)) == (200, False)


def test_a_connection_header_naming_other_tokens_keeps_the_connection():
    response = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, closed-caption\r\nContent-Length: 2\r\n\r\nok"
    assert exchange(replies(response)) == (200, True)


def test_http_1_0_is_never_reused():
    assert exchange(replies(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")) == (200, False)


def test_a_body_without_framing_runs_until_the_server_closes():
    response = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 100_000
    assert exchange(replies(response, close=True)) == (200, False)


def test_a_body_too_large_to_drain_is_not_read_and_the_connection_dropped():
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nstart" % (MAX_DRAINED_BODY_BYTES + 1)
    assert exchange(replies(response), timeout=5) == (200, False)


def test_a_chunked_body_too_large_to_drain_is_abandoned():
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"y" * 64 * 1024)
    chunks = MAX_DRAINED_BODY_BYTES // (64 * 1024) + 1
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * chunks
    assert exchange(replies(response), timeout=5) == (200, False)


def test_bytes_after_the_response_make_the_connection_unusable():
    assert exchange(replies(OK + b"HTTP/1.1 200 OK\r\n")) == (200, False)


def test_both_framings_use_chunked_and_close_afterwards():
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    )
    assert exchange(replies(response)) == (200, False)


# Responses refused as connection errors.


@pytest.mark.parametrize(
    "response",
    [
        b"garbage\r\n\r\n",
        b"\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_a_garbage_status_line_is_refused(response):
    assert refused(replies(response))


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length : 2",  # space before the colon
        b"Content-Length: 2\r\n folded",  # obs-fold
        b"No colon here",
        b": no name",
        b"X-Bare: a\nContent-Length: 2",  # bare LF
        b"X-Bare: a\rb",  # bare CR
    ],
)
def test_a_malformed_header_line_is_refused(header):
    assert refused(replies(b"HTTP/1.1 200 OK\r\n%s\r\nContent-Length: 2\r\n\r\nok" % header))


@pytest.mark.parametrize("value", [b"+2", b"-2", b"0x2", b"2 2", b"", b"1, 2", b"9" * 19])
def test_a_bad_content_length_is_refused(value):
    assert "Content-Length" in refused(replies(b"HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\nok" % value))


@pytest.mark.parametrize("size_line", [b"0x2", b"-2", b"1_0", b"", b"g", b"1" * 16, b"2\r\nokX"])
def test_a_bad_chunk_size_or_chunk_is_refused(size_line):
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nok\r\n0\r\n\r\n" % size_line
    assert refused(replies(response))


def test_oversized_headers_are_refused_without_reading_them_all():
    endless = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * (4 * MAX_HEAD_BYTES)
    assert "longer than" in refused(replies(endless))


def test_endless_trailers_are_refused():
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X-T: v\r\n" * MAX_HEAD_BYTES
    assert "trailers" in refused(replies(response))


def test_endless_interim_responses_are_refused():
    assert "interim" in refused(replies(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000))


def test_switching_protocols_is_refused():
    assert refused(replies(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"))


@pytest.mark.parametrize(
    "response",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: 1\r\n",
    ],
    ids=["nothing", "mid-head", "mid-body", "mid-chunk", "before-last-chunk", "mid-trailers"],
)
def test_eof_before_the_response_is_complete_is_refused(response):
    assert "closed" in refused(replies(response, close=True))


# The deadline: no endpoint holds a reader longer than the timeout.


def test_a_silent_endpoint_times_out():
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        exchange(replies(), timeout=0.3)
    assert 0.25 < time.monotonic() - started < 1.5


def test_a_trickling_endpoint_cannot_stretch_the_deadline():
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        exchange(replies(*bytewise(CHUNKED), pause=0.05), timeout=0.5)
    assert 0.45 < time.monotonic() - started < 2


# The sender: the request on the wire and the connection's life.


def settings_for(port, **overrides):
    values = {"headers": {"Content-Type": "application/json", "X-Node": "pi 7"}, "cancel_timeout": 2.0}
    values.update(overrides)
    return WebhookSettings(url=f"http://127.0.0.1:{port}/hook?q=1", **values)


def keep_alive(*answers):
    """A handler answering each request, on whichever connection, with the next of `answers`, then OK."""
    remaining = iter(answers)

    def handle(server, sock):
        while server.read_request(sock):
            sock.sendall(next(remaining, OK))

    return handle


@contextlib.contextmanager
def sender_for(settings):
    sender = HttpSender(settings)
    try:
        yield sender
    finally:
        sender.close()


def test_the_request_is_the_configured_head_and_the_body():
    with ScriptedServer(keep_alive()) as server, sender_for(settings_for(server.port)) as sender:
        assert sender.post(b'{"a":1}') == 200
        assert sender.post(b"") == 200
    assert server.requests == [
        b"POST /hook?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b'X-Node: pi 7\r\nContent-Length: 7\r\n\r\n{"a":1}' % server.port,
        b"POST /hook?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b"X-Node: pi 7\r\nContent-Length: 0\r\n\r\n" % server.port,
    ]
    assert server.connections == 1


def test_a_configured_host_replaces_ours_and_framing_headers_are_ours():
    head = request_head(
        parse_url("http://example:80/"),
        {"HOST": "virtual", "content-length": "5", "Transfer-Encoding": "chunked"},
    )
    assert head == b"POST / HTTP/1.1\r\nHOST: virtual\r\nContent-Length: "


@pytest.mark.parametrize("headers", [{"X-A": "b\r\nX-Injected: 1"}, {"Bad Name": "v"}, {"X-Emoji": "\u2603"}])
def test_headers_that_cannot_go_on_the_wire_stop_the_start(headers):
    with pytest.raises(ValueError):
        HttpSender(settings_for(1, headers=headers))


def test_after_a_chunked_reply_the_same_connection_carries_the_next_post():
    with (
        ScriptedServer(keep_alive(CHUNKED, CHUNKED)) as server,
        sender_for(settings_for(server.port)) as sender,
    ):
        assert [sender.post(b"{}") for _ in range(3)] == [200, 200, 200]
    assert server.connections == 1


def test_connection_close_makes_the_next_post_open_a_new_connection():
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    with ScriptedServer(keep_alive(close)) as server, sender_for(settings_for(server.port)) as sender:
        assert [sender.post(b"{}") for _ in range(3)] == [200, 200, 200]
    assert server.connections == 2


def test_a_keep_alive_connection_the_server_closed_is_replaced():
    closed = threading.Event()

    def answer_once_then_close(server, sock):
        server.read_request(sock)
        sock.sendall(OK)
        sock.close()
        closed.set()

    with ScriptedServer(answer_once_then_close) as server, sender_for(settings_for(server.port)) as sender:
        assert sender.post(b"{}") == 200
        assert closed.wait(5)
        assert sender.post(b"{}") == 200
    assert server.connections == 2


def test_a_malformed_reply_raises_and_its_connection_is_not_reused():
    server = ScriptedServer(keep_alive(b"HTTP/1.1 banana\r\n\r\n"))
    with server, sender_for(settings_for(server.port)) as sender:
        with pytest.raises(MalformedResponse):
            sender.post(b"{}")
        assert sender.post(b"{}") == 200
    assert server.connections == 2


def test_a_malformed_reply_is_retried_by_the_webhook_like_a_connection_error():
    rules = [WebhookRule("on_message_publish")]
    with ScriptedServer(keep_alive(b"garbage\r\n\r\n")) as server:
        hook = WebHook(settings_for(server.port, events=rules, retry_backoff=0.01, max_retries=2))
        hook.start()
        hook.on_message_publish(Message("t", b"x", 0, False, from_client_id="c", from_username="u"))
        hook.stop(timeout=5)
    assert hook.counters() == settled_counters(queued=1, delivered=1, retried=1)
    assert len(server.requests) == 2


def test_keep_alive_to_a_real_http_server_reuses_one_connection():
    with WebhookSink() as sink, sender_for(WebhookSettings(url=sink.url)) as sender:
        assert [sender.post(b"{}") for _ in range(5)] == [200] * 5
        requests = sink.wait_for(5)
    assert len({request.peer_port for request in requests}) == 1


# Pipelining: several POSTs in one write, the answers read in order.

CLOSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"


def status_reply(status):
    return b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status


def answer_after(count, *answers):
    """A handler that reads `count` requests before answering any (a client that waits for
    each answer before sending the next request would hang), then writes `answers` at once."""

    def handle(server, sock):
        for _ in range(count):
            server.read_request(sock)
        sock.sendall(b"".join(answers))
        while server.read_request(sock):
            sock.sendall(OK)

    return handle


def test_post_batch_pipelines_the_bodies_and_reads_the_answers_in_order():
    replies_ = [status_reply(200), status_reply(503), status_reply(204), OK]
    with (
        ScriptedServer(answer_after(4, *replies_)) as server,
        sender_for(settings_for(server.port)) as sender,
    ):
        statuses, error, _ = sender.post_batch([b'{"n":%d}' % n for n in range(4)])
        assert (statuses, error) == ([200, 503, 204, 200], None)
        assert sender.post(b"{}") == 200  # the connection is in step for the next exchange
    assert [request.rpartition(b"\r\n\r\n")[2] for request in server.requests[:4]] == [
        b'{"n":%d}' % n for n in range(4)
    ]
    assert server.connections == 1


def test_pipelining_starts_once_the_endpoint_kept_a_connection_open():
    with ScriptedServer(keep_alive()) as server:
        sender = HttpSender(settings_for(server.port), pipeline_depth=8)
        try:
            assert sender.batch_limit == 1
            assert sender.post(b"{}") == 200
            assert sender.batch_limit == 8
        finally:
            sender.close()


def test_an_endpoint_that_closes_with_requests_unanswered_ends_the_batch_and_the_pipelining():
    def close_after_one(server, sock):
        server.read_request(sock)
        server.read_request(sock)
        sock.sendall(CLOSE)

    with ScriptedServer(keep_alive()) as server:
        sender = HttpSender(settings_for(server.port), pipeline_depth=8)
        try:
            assert sender.post(b"{}") == 200
            assert sender.batch_limit == 8
        finally:
            sender.close()
    with ScriptedServer(close_after_one) as server:
        sender = HttpSender(settings_for(server.port), pipeline_depth=8)
        sender.batch_limit = 8
        try:
            assert sender.post_batch([b"{}", b"{}", b"{}"]) == ([200], None, None)
            assert sender.batch_limit == 1
        finally:
            sender.close()


def test_a_connection_lost_mid_batch_gives_the_answers_so_far_and_the_error():
    def answer_one_then_vanish(server, sock):
        for _ in range(3):
            server.read_request(sock)
        sock.sendall(OK)

    with ScriptedServer(answer_one_then_vanish) as server, sender_for(settings_for(server.port)) as sender:
        statuses, error, _ = sender.post_batch([b"{}", b"{}", b"{}"])
    assert statuses == [200]
    assert isinstance(error, MalformedResponse)


def _hook_for(port, **overrides):
    settings = settings_for(port, events=[WebhookRule("on_message_publish")], pool_size=1, **overrides)
    hook = WebHook(settings)
    hook.start()
    return hook


def _publish(hook, numbers):
    for number in numbers:
        hook.on_message_publish(Message("t", b"%d" % number, 0, False, from_client_id="c", from_username="u"))


def _wait_delivered(hook, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while hook.counters()["delivered"] < count:
        assert time.monotonic() < deadline, f"only {hook.counters()} in time"
        gevent.sleep(0.005)


def _payloads(server):
    return [int(json.loads(request.rpartition(b"\r\n\r\n")[2])["payload"]) for request in server.requests]


def test_a_burst_of_one_client_goes_out_pipelined_in_order():
    def one_then_bursts_of_ten(server, sock):
        server.read_request(sock)
        sock.sendall(OK)
        answer_after(10, *[OK] * 10)(server, sock)

    with ScriptedServer(one_then_bursts_of_ten) as server:
        hook = _hook_for(server.port)
        try:
            _publish(hook, [0])
            _wait_delivered(hook, 1)
            _publish(hook, range(1, 11))  # queued in one go: the worker finds all ten waiting
            _wait_delivered(hook, 11)
        finally:
            hook.stop(timeout=5)
    assert _payloads(server) == list(range(11))
    assert server.connections == 1
    assert hook.counters() == settled_counters(queued=11, delivered=11)


def test_a_failed_post_in_a_burst_is_sent_again_with_everything_after_it():
    def fail_the_second_of_a_burst(server, sock):
        server.read_request(sock)
        sock.sendall(OK)
        answer_after(5, OK, status_reply(503), OK, OK, OK)(server, sock)

    with ScriptedServer(fail_the_second_of_a_burst) as server:
        hook = _hook_for(server.port, retry_backoff=0.01)
        try:
            _publish(hook, [0])
            _wait_delivered(hook, 1)
            _publish(hook, range(1, 6))
            _wait_delivered(hook, 6)
        finally:
            hook.stop(timeout=5)
    assert _payloads(server) == [0, 1, 2, 3, 4, 5, 2, 3, 4, 5]
    assert hook.counters() == settled_counters(queued=6, delivered=6, retried=4)


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, b"Retry-After: 3", (3.0, 3.0)),
        (503, b"retry-after:  120 ", (60.0, 60.0)),  # capped
        (429, b"Retry-After: soon", (None, None)),
        (429, b"", (None, None)),
        (200, b"Retry-After: 3", (None, None)),  # only a 429/503 asks for a wait
        (429, "Retry-After: {date}", (3.0, 6.0)),  # an HTTP-date 5 s ahead, to the second
    ],
)
def test_retry_after_is_read_from_429_and_503(status, header, expected):
    if isinstance(header, str):
        header = header.format(date=email.utils.formatdate(time.time() + 5, usegmt=True)).encode()
    lines = [b"HTTP/1.1 %d X" % status, header] if header else [b"HTTP/1.1 %d X" % status]
    reply = b"\r\n".join([*lines, b"Content-Length: 0"]) + b"\r\n\r\n"
    with ScriptedServer(keep_alive(reply)) as server, sender_for(settings_for(server.port)) as sender:
        statuses, error, retry_after = sender.post_batch([b"{}"])
    assert (statuses, error) == ([status], None)
    low, high = expected
    assert retry_after == low if low is None else low <= retry_after <= high


def test_the_private_urllib3_api_the_sender_borrows_connections_with_still_works():
    """pooled_connections() is the one use of urllib3's private _get_conn/_put_conn, and
    nanomq_py.http_client overrides the private _new_conn to open gevent sockets: if a
    urllib3 release changes either, this fails (a renamed _new_conn would otherwise make
    every POST block the whole broker on a plain socket)."""
    from nanomq_py.http_client import GeventPoolManager
    from nanomq_py.webhook.http_sender import pooled_connections

    with socket.create_server(("127.0.0.1", 0)) as listener:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        manager = GeventPoolManager(num_pools=1, maxsize=2, block=False)
        take, give_back = pooled_connections(manager.connection_from_url(url))
        conn = take()
        assert conn.sock is None, "a new connection is handed out unconnected"
        conn.connect()
        assert isinstance(conn.sock, gevent.socket.socket), "opened by the cooperative _new_conn"
        give_back(conn)
        assert take() is conn, "an idle connection given back is handed out again"
        server_side, _ = listener.accept()
        server_side.close()
        gevent.socket.wait_read(conn.sock.fileno(), timeout=5)  # the FIN has arrived
        give_back(conn)
        again = take()
        assert again.sock is None, "a connection the server closed comes back closed, to reconnect"
        give_back(again)
        manager.clear()


def test_without_the_private_api_the_start_fails_with_a_message_naming_urllib3():
    from nanomq_py.webhook.http_sender import pooled_connections

    with pytest.raises(RuntimeError, match=r"urllib3 .*_get_conn/_put_conn.*urllib3>=2,<3"):
        pooled_connections(object())


def test_a_burst_answered_one_by_one_with_a_delay_marks_the_endpoint_as_serving_in_turn():
    """What makes the dispatcher spread a backlog over the connections instead of deep bursts."""

    def in_turn(server, sock):
        for _ in range(3):
            server.read_request(sock)
        for _ in range(3):
            sock.sendall(OK)
            time.sleep(0.02)  # an ordinary server's time per request, one request after another
        while server.read_request(sock):
            sock.sendall(OK)

    with ScriptedServer(in_turn) as server, sender_for(settings_for(server.port)) as sender:
        sender.serves_in_turn = False
        assert sender.post_batch([b"{}", b"{}", b"{}"]) == ([200, 200, 200], None, None)
        assert sender.serves_in_turn
