"""urllib3 on gevent's cooperative sockets, without monkey-patching anything.

urllib3 would open plain blocking sockets, so the connection classes below open
them with `gevent.socket` instead (and wrap them with a `gevent.ssl` context for
https://); everything urllib3 and http.client do afterwards goes through those
sockets' methods and waits in the gevent hub, never in the kernel. The one
stdlib call left, urllib3's zero-timeout poll() that checks an idle connection
before reusing it, never waits.

Used by the webhook sender and by HTTP authentication; import it only when one
of them is configured (urllib3 costs memory).
"""

from __future__ import annotations

import socket
import ssl

import gevent.socket
import gevent.ssl
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

__all__ = ["GeventPoolManager", "tls_options"]


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


class GeventPoolManager(urllib3.PoolManager):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pool_classes_by_scheme = {"http": _GeventHTTPConnectionPool, "https": _GeventHTTPSConnectionPool}


def tls_options(tls) -> dict:
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
