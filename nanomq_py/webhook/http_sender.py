"""The webhook's HTTP side: POSTs one body over a keep-alive connection of the shared
urllib3 pool and returns the status.

Why not urllib3's urlopen: profiling 3,000 POSTs to a local sink measured about
500 µs of CPU per POST through urlopen (its retry/timeout/response machinery,
http.client's request building with two sendall calls, and above all
http.client's header parsing through the email package), which capped the
webhook near 1,100 POSTs/s on one core. The POST itself is always the same
request but for the body, so here the request head is encoded once at start-up
and each POST is one sendall; the response is read by http_response's small
strict reader. Under load several POSTs go in one sendall on one connection
(HTTP/1.1 pipelining) and their responses are read in order, so a worker
delivers a burst in one round trip and two syscalls instead of one per event.

urllib3 still owns the connections: one GeventPoolManager (nanomq_py.http_client)
creates them on gevent sockets with the connect timeout and the `ssl {}` block,
keeps up to pool_size of them alive, and checks an idle one before handing it
out (a connection the server closed meanwhile is reconnected). A connection
whose exchange failed or that the server will not keep is closed before it goes
back to the pool.

No endpoint can make a POST loop or grow memory without bound: the request is
one write of a known size under cancel_timeout, and http_response bounds what
it reads, in bytes and in time.
"""

from __future__ import annotations

from time import monotonic

import urllib3
from urllib3.util import parse_url

from ..http_client import GeventPoolManager, tls_options
from .http_response import ResponseStream

__all__ = ["HttpSender", "pooled_connections", "request_head"]

_FRAMING_HEADERS = frozenset(("content-length", "transfer-encoding"))
# The answers to one pipelined burst that come more than this long after its first
# answer mean the endpoint serves pipelined requests one after another, slowly.
IN_TURN_SPREAD_S = 0.005


def pooled_connections(pool):
    """(take, give_back) of a urllib3 HTTPConnectionPool: take() hands out an idle keep-alive
    connection (one the server closed meanwhile comes back closed, `sock` None) or a new
    unconnected one; give_back(conn) returns it for the next take().

    urllib3 has no public way to borrow a pooled connection for a raw exchange, so this is
    the one place that uses its private _get_conn/_put_conn (urllib3 2.x; setup.py pins
    urllib3<3). tests/test_webhook_http.py checks this contract against the installed
    urllib3, and a urllib3 without them stops the start here rather than at the first POST.
    """
    try:
        return pool._get_conn, pool._put_conn
    except AttributeError:
        raise RuntimeError(
            f"urllib3 {urllib3.__version__} has no HTTPConnectionPool._get_conn/_put_conn: "
            "the webhook needs urllib3>=2,<3"
        ) from None


def request_head(url, headers: dict[str, str]) -> bytes:
    """The request up to the Content-Length value: request line, Host (unless configured),
    the configured headers in order and as written, then `Content-Length: `.

    A configured Content-Length or Transfer-Encoding is left out (the body decides the
    framing); a name or value that cannot go on the wire raises ValueError.
    """
    lines = [f"POST {url.request_uri} HTTP/1.1"]
    if not any(name.lower() == "host" for name in headers):
        lines.append(f"Host: {url.netloc}")
    for name, value in headers.items():
        if not name or any(char in name for char in " \t\r\n:") or any(char in value for char in "\r\n\0"):
            raise ValueError(f"webhook header {name!r}: {value!r} cannot be sent")
        if name.lower() not in _FRAMING_HEADERS:
            lines.append(f"{name}: {value}")
    lines.append("Content-Length: ")
    try:
        return "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"webhook headers must be latin-1 text: {exc}") from None


class HttpSender:
    """post(body) returns the HTTP status after reading the whole response;
    post_batch(bodies) pipelines several POSTs on one connection.

    Connection errors, timeouts and malformed responses raise from post()
    (OSError, urllib3's HTTPError, http_response.MalformedResponse) and are
    returned by post_batch(); nothing is retried here: the caller decides.

    Pipelining is used only once the endpoint has kept a connection open
    after a response (HTTP/1.1 keep-alive); an endpoint that closes with
    requests still unanswered gets one request per exchange from then on.
    `serves_in_turn` tells whether the last burst's answers were spread out
    (as from an ordinary server that takes pipelined requests one by one and
    needs time for each): the caller then prefers more connections to deeper
    bursts.
    """

    def __init__(self, settings, pipeline_depth: int = 1):
        url = parse_url(settings.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"webhook url {settings.url!r} is not an http:// or https:// URL")
        options = tls_options(settings.tls) if url.scheme == "https" else {}
        timeout = urllib3.Timeout(connect=settings.cancel_timeout, read=settings.cancel_timeout)
        self._manager = GeventPoolManager(
            num_pools=1, maxsize=settings.pool_size, block=False, timeout=timeout, **options
        )
        self._take, self._give_back = pooled_connections(self._manager.connection_from_url(settings.url))
        self._head = request_head(url, settings.headers)
        self._timeout = settings.cancel_timeout
        self._depth = pipeline_depth
        self._keeps_alive = None  # unknown until the first response: no pipelining before
        self.batch_limit = 1  # how many POSTs post_batch() may pipeline now
        self.serves_in_turn = True  # until a burst shows otherwise: favour concurrency

    def post(self, body: bytes) -> int:
        statuses, error, _ = self.post_batch((body,))
        if error is not None:
            raise error
        return statuses[0]

    def post_batch(self, bodies) -> tuple[list[int], Exception | None, float | None]:
        """POST every body in one write on one connection and read the responses in order.

        Returns the statuses of the requests answered, in order; the exception
        that ended the exchange early, or None; and the Retry-After seconds of
        the first answer that asks for a retry (429, 5xx), or None. Requests past
        the answered ones got no response: with an exception their fate is
        unknown; without one the server closed the connection after the last
        answer (Connection: close), so it did not take them. Either way the
        caller may send them again.
        """
        conn = self._take()
        reusable = False
        statuses = []
        retry_after = None
        retry_seen = False
        try:
            if conn.sock is None:
                conn.connect()
            sock = conn.sock
            sock.settimeout(self._timeout)
            head = self._head
            sock.sendall(b"".join([b"%s%d\r\n\r\n%s" % (head, len(body), body) for body in bodies]))
            responses = ResponseStream(sock, self._timeout)
            first_answer = None
            for _ in bodies:
                status, reusable = responses.next()
                statuses.append(status)
                if first_answer is None:
                    first_answer = monotonic()
                if (status == 429 or status >= 500) and not retry_seen:
                    retry_seen, retry_after = True, responses.retry_after
                if not reusable:
                    break
            if len(statuses) > 1:
                self.serves_in_turn = monotonic() - first_answer > IN_TURN_SPREAD_S
            self._learned(reusable, len(statuses) < len(bodies))
            reusable = reusable and not responses.leftover
            return statuses, None, retry_after
        except Exception as exc:
            reusable = False
            return statuses, exc, retry_after
        finally:
            if not reusable:
                conn.close()
            self._give_back(conn)

    def _learned(self, kept_alive: bool, cut_short: bool) -> None:
        """Pipeline once the endpoint keeps connections open; stop for good if it closed on queued requests."""
        if cut_short:
            self._keeps_alive = False
        elif kept_alive and self._keeps_alive is None:
            self._keeps_alive = True
        self.batch_limit = self._depth if self._keeps_alive else 1

    def close(self) -> None:
        self._manager.clear()
