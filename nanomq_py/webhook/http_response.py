"""Reads HTTP/1.x responses from a socket: their status, and whether the connection can be reused;
one (read_response), or those to pipelined requests, in order (ResponseStream).

Why not http.client: profiling the webhook's POST path (3,000 POSTs to a local
sink) put about 55% of its CPU in http.client's HTTPResponse.begin, which hands
every header block to the email package. A webhook needs three headers and the
status; this reader gets them with a few bytes.find/split calls, in one recv()
for a typical reply.

Strict: a status line `HTTP/1.<digit> <3 digits>[ reason]`, header lines
`name: value` ending in CRLF (no obs-fold, no bare CR or LF, no space before
the colon), a Content-Length made of digits (repeated only with the same
value), chunk sizes in hex with optional extensions, trailers after the last
chunk. Anything else, and EOF before the response is complete, raises
MalformedResponse; the caller drops the connection and counts a connection
error.

Bounded, whatever the endpoint sends: each whole response must arrive within
`timeout` seconds from the first recv for it (a deadline, not a per-recv timeout, so
trickling bytes cannot stretch it); the head and the trailers may not exceed
MAX_HEAD_BYTES, a chunk-size line MAX_CHUNK_LINE_BYTES, and at most
MAX_INTERIM_RESPONSES 1xx replies are skipped. Bodies are discarded as they
arrive, never kept: once more than MAX_DRAINED_BODY_BYTES would have to be
read, reading stops and the connection is reported not reusable (the caller
closes it). Every loop either consumes bytes under those bounds or ends.
"""

from __future__ import annotations

import re
from time import monotonic, time

__all__ = ["MAX_DRAINED_BODY_BYTES", "MAX_HEAD_BYTES", "MalformedResponse", "ResponseStream", "read_response"]

MAX_HEAD_BYTES = 16 * 1024
MAX_CHUNK_LINE_BYTES = 1024
MAX_DRAINED_BODY_BYTES = 1024 * 1024
MAX_INTERIM_RESPONSES = 4
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is honoured as this long
RECV_BYTES = 16 * 1024

_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_NO_BODY_STATUSES = frozenset((204, 304))


class MalformedResponse(Exception):
    """The endpoint's reply is not an HTTP/1.x response this reader accepts, or it ended early."""


def read_response(sock, timeout: float) -> tuple[int, bool]:
    """Read one complete response from `sock`: (status, reusable).

    `reusable` is False when the server asked to close (Connection: close,
    HTTP/1.0), when the body runs until EOF or is too large to drain, or when
    bytes follow the response. Raises MalformedResponse, or TimeoutError / OSError
    from the socket.
    """
    responses = ResponseStream(sock, timeout)
    status, reusable = responses.next()
    return status, reusable and not responses.leftover


class ResponseStream:
    """The responses to requests pipelined on one connection, read in order.

    next() reads the next complete response (each within `timeout` seconds of
    being asked for) and returns (status, reusable); bytes received past it
    are kept for the one after. `leftover` tells whether any such bytes are
    still unread once every expected response has been taken.
    """

    __slots__ = ("_reader", "_timeout", "retry_after")

    def __init__(self, sock, timeout: float):
        self._reader = _Reader(sock, 0.0)
        self._timeout = timeout
        self.retry_after = None  # seconds asked by the last 429/503 response's Retry-After

    @property
    def leftover(self) -> bool:
        return bool(self._reader.buffer)

    def next(self) -> tuple[int, bool]:
        reader = self._reader
        reader.deadline = monotonic() + self._timeout
        for _ in range(MAX_INTERIM_RESPONSES + 1):
            head = reader.head()
            status, reusable, framing, length = _parse_head(head)
            if status >= 200:
                break
            if status == 101:
                raise MalformedResponse("101 Switching Protocols was not asked for")
        else:
            raise MalformedResponse(f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses")
        self.retry_after = _retry_after(head) if status in (429, 503) else None
        if status in _NO_BODY_STATUSES:
            pass
        elif framing == "length":
            if length > MAX_DRAINED_BODY_BYTES:
                return status, False
            reader.skip(length)
        elif framing == "chunked":
            if not reader.skip_chunked():
                return status, False
        else:
            reader.skip_to_eof()
            return status, False
        return status, reusable


def _parse_head(head: bytes) -> tuple[int, bool, str, int]:
    """(status, reusable, framing, content length) from the head; framing is "length", "chunked" or "eof"."""
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    if len(version) != 8 or not version.startswith(b"HTTP/1.") or not version[7:].isdigit():
        raise MalformedResponse(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    code = rest[:3]
    if len(code) != 3 or not code.isdigit() or code[0] == 48 or rest[3:4] not in (b"", b" "):
        raise MalformedResponse(f"bad status in {lines[0][:80]!r}")
    if head.count(b"\r") != len(lines) - 1 or head.count(b"\n") != len(lines) - 1:
        raise MalformedResponse("bare CR or LF in the response head")
    reusable = version != b"HTTP/1.0"
    lengths = None
    codings = None
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name[0] in b" \t" or name[-1] in b" \t":
            raise MalformedResponse(f"bad header line {line[:80]!r}")
        name = name.lower()
        if name == b"content-length":
            lengths = value if lengths is None else lengths + b"," + value
        elif name == b"transfer-encoding":
            codings = value if codings is None else codings + b"," + value
        elif name == b"connection" and _has_close_token(value):
            reusable = False
    if codings is not None:
        final = codings.rpartition(b",")[2].strip(b" \t").lower()
        if lengths is not None or version == b"HTTP/1.0":
            reusable = False  # both framings, or chunked in HTTP/1.0: RFC 9112 says close afterwards
        return int(code), reusable, "chunked" if final == b"chunked" else "eof", 0
    if lengths is None:
        return int(code), reusable, "eof", 0
    return int(code), reusable, "length", _content_length(lengths)


def _retry_after(head: bytes) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP-date), capped at
    MAX_RETRY_AFTER; None when there is none or it cannot be read."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() != b"retry-after":
            continue
        value = value.strip(b" \t")
        if _DIGITS.fullmatch(value):
            return min(float(int(value)), MAX_RETRY_AFTER)
        from email.utils import parsedate_to_datetime  # http.client has imported it already

        try:
            when = parsedate_to_datetime(value.decode("latin-1"))
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        return min(max(0.0, when.timestamp() - time()), MAX_RETRY_AFTER)
    return None


def _has_close_token(value: bytes) -> bool:
    value = value.lower()
    return b"close" in value and any(token.strip(b" \t") == b"close" for token in value.split(b","))


def _content_length(lengths: bytes) -> int:
    """The length from one or more comma-joined Content-Length values, which must all be equal."""
    text = lengths.strip(b" \t")
    if b"," in text:
        values = {part.strip(b" \t") for part in text.split(b",")}
        if len(values) != 1:
            raise MalformedResponse("conflicting Content-Length values")
        (text,) = values
    if not _DIGITS.fullmatch(text):
        raise MalformedResponse(f"bad Content-Length {text[:40]!r}")
    return int(text)


class _Reader:
    """A socket with the bytes received but not yet consumed, and the response's deadline."""

    __slots__ = ("_sock", "deadline", "buffer")

    def __init__(self, sock, deadline: float):
        self._sock = sock
        self.deadline = deadline
        self.buffer = bytearray()

    def _recv(self, size: int) -> bytes:
        """At most `size` bytes; b"" at EOF; TimeoutError past the deadline."""
        remaining = self.deadline - monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        self._sock.settimeout(remaining)
        return self._sock.recv(size)

    def _fill(self) -> None:
        data = self._recv(RECV_BYTES)
        if not data:
            raise MalformedResponse("connection closed before the response was complete")
        self.buffer += data

    def head(self) -> bytes:
        """The bytes before the next CRLFCRLF, consumed with it."""
        return self._until(b"\r\n\r\n", MAX_HEAD_BYTES, f"response head longer than {MAX_HEAD_BYTES} bytes")

    def line(self, limit: int, too_long: str) -> bytes:
        """The bytes before the next CRLF (at most `limit` of them), consumed with it;
        MalformedResponse(too_long) when no CRLF comes in time."""
        return self._until(b"\r\n", limit, too_long)

    def _until(self, separator: bytes, limit: int, too_long: str) -> bytes:
        """The bytes before the next `separator` (at most `limit` of them), consumed with it;
        each received byte is searched once."""
        buffer = self.buffer
        width = len(separator)
        searched = 0
        while True:
            end = buffer.find(separator, searched, limit + width)
            if end >= 0:
                break
            if len(buffer) >= limit + width:
                raise MalformedResponse(too_long)
            searched = max(0, len(buffer) - width + 1)
            self._fill()
        found = bytes(buffer[:end])
        del buffer[: end + width]
        return found

    def skip(self, count: int) -> None:
        """Consume exactly `count` bytes, buffering none of those still to come."""
        buffer = self.buffer
        if len(buffer) >= count:
            del buffer[:count]
            return
        count -= len(buffer)
        buffer.clear()
        while count:
            data = self._recv(min(count, RECV_BYTES))
            if not data:
                raise MalformedResponse("connection closed in the middle of the body")
            count -= len(data)

    def skip_chunked(self) -> bool:
        """Consume a chunked body and its trailers; False (and stop) once it exceeds the drain bound."""
        drained = 0
        while True:
            line = self.line(MAX_CHUNK_LINE_BYTES, "chunk-size line too long")
            match = _CHUNK_SIZE_LINE.fullmatch(line)
            if match is None:
                raise MalformedResponse(f"bad chunk-size line {line[:80]!r}")
            size = int(match.group(1), 16)
            if size == 0:
                break
            drained += size
            if drained > MAX_DRAINED_BODY_BYTES:
                return False
            self.skip(size)
            self.line(0, "chunk data longer than its size")  # the CRLF after the data
        trailers = 0
        while True:
            line = self.line(
                max(0, MAX_HEAD_BYTES - trailers), f"trailers longer than {MAX_HEAD_BYTES} bytes"
            )
            if not line:
                return True
            trailers += len(line) + 2
            name, colon, _ = line.partition(b":")
            if not colon or not name or name[-1] in b" \t" or name[0] in b" \t":
                raise MalformedResponse(f"bad trailer line {line[:80]!r}")

    def skip_to_eof(self) -> None:
        """Consume a body that ends when the server closes, up to the drain bound."""
        drained = len(self.buffer)
        self.buffer.clear()
        while drained <= MAX_DRAINED_BODY_BYTES:
            data = self._recv(RECV_BYTES)
            if not data:
                return
            drained += len(data)
