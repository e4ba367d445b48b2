"""The HTTP side: one urllib3 PoolManager whose keep-alive connections use gevent's
cooperative sockets, and a sender that POSTs one body and returns the status.

Nothing here monkey-patches anything. urllib3 would open plain blocking sockets,
so the connection classes below open them with `gevent.socket` instead (and
wrap them with a `gevent.ssl` context for https://); everything urllib3 and
http.client do afterwards goes through those sockets' methods and waits in
the gevent hub, never in the kernel. The one stdlib call left, urllib3's
zero-timeout poll() that checks an idle connection before reusing it, never
waits.

This is the only module that imports urllib3, and `nanomq_py.webhook` is only
imported when a webhook is configured.
"""

from __future__ import annotations

import socket
import ssl

import gevent.socket
import gevent.ssl
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NameResolutionError, NewConnectionError
from urllib3.util import parse_url

__all__ = ["HTTPError", "HttpSender"]


class _CooperativeConnect:
    """Opens the connection's socket with gevent, raising what urllib3's own _new_conn raises."""

    def _new_conn(self):
        try:
            sock = gevent.socket.create_connection(
                (self._dns_host, self.port), self.timeout, source_address=self.source_address
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        for option in self.socket_options or ():
            sock.setsockopt(*option)
        return sock


class _GeventHTTPConnection(_CooperativeConnect, HTTPConnection):
    pass


class _GeventHTTPSConnection(_CooperativeConnect, HTTPSConnection):
    pass


class _GeventHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GeventHTTPConnection


class _GeventHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GeventHTTPSConnection


class _GeventPoolManager(urllib3.PoolManager):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pool_classes_by_scheme = {"http": _GeventHTTPConnectionPool, "https": _GeventHTTPSConnectionPool}


def _tls_options(tls) -> dict:
    """PoolManager keywords for https://: a gevent SSL context built from the `ssl {}` block.

    Without a block the system's CA certificates verify the server.
    """
    context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    verify = tls is None or tls.verify
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif tls is not None and tls.cacertfile:
        context.load_verify_locations(cafile=tls.cacertfile)
    else:
        context.load_default_certs()
    if tls is not None and tls.certfile:
        context.load_cert_chain(tls.certfile, tls.keyfile or None)
    if verify:
        return {"ssl_context": context, "cert_reqs": "CERT_REQUIRED"}
    return {"ssl_context": context, "cert_reqs": "CERT_NONE", "assert_hostname": False}


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
        options = _tls_options(settings.tls) if url.scheme == "https" else {}
        self._manager = _GeventPoolManager(num_pools=1, maxsize=settings.pool_size, block=False, **options)
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
