"""An answer that is not NanoMQ's JSON: the status page's HTML, Prometheus' text."""

from __future__ import annotations


class Document:
    __slots__ = ("content_type", "body")

    def __init__(self, content_type, body):
        self.content_type = content_type  # the Content-Type header's value
        self.body = body  # bytes
