"""HTTP authentication and authorisation, as NanoMQ's `auth.http_auth`.

`auth_req` decides at CONNECT for clients the password file does not know,
`super_req` at CONNECT says whether the client is a superuser (no ACL checks
for the life of the connection), `acl_req` decides publish/subscribe that no
ACL rule decided. HTTP 200 allows; any other answer denies; an answer other
than 4xx, a connection error or a timeout also denies and is logged at a
limited rate.

Requests are NanoMQ's: `params` values may hold placeholders (%u username,
%c client id, %a peer address, %p local port, %P password, %r protocol,
%A access 1 = subscribe 2 = publish, %t topic, %m mountpoint, %C and %d the
TLS certificate's common name and subject); a parameter whose whole value is
a placeholder without a value is left out. GET puts them in the query string,
POST in a form body, or a JSON object when the content-type header says
application/json. **ours**: values are URL-encoded.

Waiting: a request runs on the asking client's own greenlet over gevent
sockets (the webhook's cooperative urllib3 pool; nothing is monkey-patched),
so only that client waits. At most pool_size requests are in flight (the rest
wait on a semaphore), each bounded by connect_timeout + timeout in all.
Verdicts are cached for cache_ttl, keyed by a digest of the exact request,
in a dict of at most CACHE_ENTRIES entries evicted oldest first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import OrderedDict
from time import monotonic
from urllib.parse import urlencode

import gevent
import urllib3
from gevent.lock import BoundedSemaphore

from ..http_client import GeventPoolManager, tls_options
from ..webhook.throttled_log import ThrottledWarning

log = logging.getLogger("nanomq.auth")

CACHE_ENTRIES = 4096
_PLACEHOLDER = re.compile(r"%[ucaPprCdAtm]")
_FORM = "application/x-www-form-urlencoded"


class _Request:
    """One configured request (auth_req, super_req or acl_req), ready to be filled in."""

    __slots__ = ("kind", "method", "url", "headers", "params", "as_json")

    def __init__(self, kind, settings):
        self.kind = kind
        self.method = settings.method.upper()
        self.url = settings.url
        self.headers = dict(settings.headers)
        content_type = next((v for k, v in self.headers.items() if k.lower() == "content-type"), None)
        self.as_json = (
            self.method == "POST"
            and content_type is not None
            and content_type.split(";")[0].strip().lower() == "application/json"
        )
        if self.method == "POST" and content_type is None:
            self.headers["Content-Type"] = _FORM
        self.params = list(settings.params.items())

    def fill_in(self, values):
        """(name, value) pairs with the placeholders replaced."""
        pairs = []
        for name, template in self.params:
            if template in values:
                value = values[template]
                if value is None:
                    continue
            else:
                value = _PLACEHOLDER.sub(lambda m: values.get(m.group()) or "", template)
            pairs.append((name, value))
        return tuple(pairs)

    def url_and_body(self, pairs):
        if self.method == "GET":
            if not pairs:
                return self.url, None
            return self.url + ("&" if "?" in self.url else "?") + urlencode(pairs), None
        if self.as_json:
            return self.url, json.dumps(dict(pairs), separators=(",", ":")).encode()
        return self.url, urlencode(pairs).encode()


class _TtlCache:
    """Verdicts that expire after ttl seconds; insertion order is expiry order."""

    __slots__ = ("ttl", "entries")

    def __init__(self, ttl):
        self.ttl = ttl
        self.entries = OrderedDict()

    def get(self, key, now):
        entry = self.entries.get(key)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def put(self, key, value, now):
        if self.ttl <= 0:
            return
        entries = self.entries
        entries.pop(key, None)
        entries[key] = (now + self.ttl, value)
        while entries:
            oldest = next(iter(entries.values()))
            if oldest[0] > now and len(entries) <= CACHE_ENTRIES:
                break
            entries.popitem(last=False)


class HttpAuth:
    def __init__(self, settings):
        self.cache_ttl = settings.cache_ttl
        self.requests = {}
        for kind in ("auth_req", "super_req", "acl_req"):
            request = getattr(settings, kind)
            if request is not None:
                self.requests[kind] = _Request(kind, request)
        self.has_auth = "auth_req" in self.requests
        self.has_super = "super_req" in self.requests
        self.has_acl = "acl_req" in self.requests
        https = any(r.url.startswith("https:") for r in self.requests.values())
        options = tls_options(None) if https else {}
        self._manager = GeventPoolManager(num_pools=3, maxsize=settings.pool_size, block=False, **options)
        self._in_flight = BoundedSemaphore(settings.pool_size)
        self._timeout = urllib3.Timeout(connect=settings.connect_timeout, read=settings.timeout)
        self._deadline = settings.connect_timeout + settings.timeout
        self._cache = _TtlCache(settings.cache_ttl)
        self._warnings = {kind: ThrottledWarning(log) for kind in self.requests}  # one rate limit per kind

    def authenticate(self, info, password, sockport):
        return self._ask("auth_req", _values(info, password, sockport))

    def is_superuser(self, info, password, sockport):
        return self._ask("super_req", _values(info, password, sockport))

    def may(self, info, action, topic):
        values = _values(info, None, None)
        values["%A"] = "1" if action == "subscribe" else "2"
        values["%t"] = topic
        return self._ask("acl_req", values)

    def _ask(self, kind, values):
        """The cached verdict, or the endpoint's (this greenlet waits for it)."""
        request = self.requests[kind]
        pairs = request.fill_in(values)
        key = hashlib.sha256(repr((kind, pairs)).encode()).digest()
        now = monotonic()
        verdict = self._cache.get(key, now)
        if verdict is not None:
            return verdict
        status = self._send(request, pairs)
        if status is None:
            return False
        verdict = status == 200
        if verdict or 400 <= status < 500:
            self._cache.put(key, verdict, monotonic())
        else:
            self._warnings[kind].warning(
                "http_auth %s to %s answered HTTP %d: denied", kind, request.url, status
            )
        return verdict

    def _send(self, request, pairs):
        """The HTTP status, or None after a logged failure."""
        url, body = request.url_and_body(pairs)
        timer = gevent.Timeout(self._deadline)
        timer.start()
        try:
            with self._in_flight:
                response = self._manager.urlopen(
                    request.method,
                    url,
                    body=body,
                    headers=request.headers,
                    retries=False,
                    redirect=False,
                    timeout=self._timeout,
                )
            return response.status
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            why = f"no answer within {self._deadline:g} s"
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        finally:
            timer.cancel()
        self._warnings[request.kind].warning(
            "http_auth %s to %s failed (%s): denied", request.kind, request.url, why
        )
        return None


def _values(info, password, sockport):
    """Placeholder -> value for one client; None where the value is unknown."""
    return {
        "%u": info.username,
        "%c": info.client_id,
        "%a": info.peer_host,
        "%p": str(sockport) if sockport else None,
        "%P": password.decode("utf-8", "replace") if password is not None else None,
        "%r": "mqtt",
        "%m": "",
        "%C": None,
        "%d": None,
        "%A": None,
        "%t": None,
    }
