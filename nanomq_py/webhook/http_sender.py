"""The webhook's HTTP side: one urllib3 PoolManager whose keep-alive connections
use gevent's cooperative sockets (nanomq_py.http_client), and a sender that
POSTs one body and returns the status.
"""

from __future__ import annotations

import urllib3
from urllib3.exceptions import HTTPError
from urllib3.util import parse_url

from ..http_client import GeventPoolManager, tls_options

__all__ = ["HTTPError", "HttpSender"]


class HttpSender:
    """POSTs bodies to the webhook URL over keep-alive connections shared by all workers.

    post() returns the HTTP status after reading the whole response; connection
    errors and timeouts raise urllib3's HTTPError. urllib3 retries nothing: the
    caller decides.
    """

    def __init__(self, settings):
        url = parse_url(settings.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"webhook url {settings.url!r} is not an http:// or https:// URL")
        options = tls_options(settings.tls) if url.scheme == "https" else {}
        self._manager = GeventPoolManager(num_pools=1, maxsize=settings.pool_size, block=False, **options)
        self._pool = self._manager.connection_from_url(settings.url)
        self._path = url.request_uri
        self._headers = dict(settings.headers)
        self._timeout = urllib3.Timeout(connect=settings.cancel_timeout, read=settings.cancel_timeout)

    def post(self, body: bytes) -> int:
        response = self._pool.urlopen(
            "POST",
            self._path,
            body=body,
            headers=self._headers,
            retries=False,
            redirect=False,
            assert_same_host=False,
            timeout=self._timeout,
            preload_content=True,
            decode_content=False,
        )
        return response.status

    def close(self) -> None:
        self._manager.clear()
