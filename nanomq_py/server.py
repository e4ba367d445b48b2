"""The server: settings in, a running broker with its listeners, sweeper and
webhook out. The CLI drives it; tests and the benchmark can too."""

from __future__ import annotations

import logging

import gevent
from gevent.event import Event

from .broker.broker import Broker
from .transport.connection import ConnectionSet
from .transport.listener import accept_forever, open_listener
from .transport.sweeper import sweep_forever

log = logging.getLogger("nanomq.server")


def _saferepr(context):
    """gevent's default for formatting the context of a failed greenlet, imported on use."""
    from pprint import saferepr

    return saferepr(context)


# The hub reads this setting when it starts; its default, "pprint.saferepr", imports
# pprint, which imports dataclasses, inspect, ast and dis: about 1 MB of RSS for a
# function only called when a greenlet fails.
gevent.config.format_context = f"{__name__}._saferepr"


def _load_webhook(settings):
    """Import the webhook only when configured: urllib3 costs memory."""
    if settings.webhook is None:
        return None
    from .webhook import WebHook

    return WebHook(settings.webhook)


def _load_store(settings, broker):
    """Open and load the durable store only when `sqlite` is configured (or, for the bridges'
    queues alone, `bridges.mqtt.cache`): no sqlite3 otherwise."""
    if settings.sqlite is None:
        return _load_bridge_cache(settings, broker)
    from .store import open_store

    return open_store(settings.sqlite, broker)


def _load_bridge_cache(settings, broker):
    """Only a `bridges.mqtt.cache { }` block: a store for the bridges' queues, nothing else."""
    bridges = settings.bridges
    if bridges is None or bridges.cache is None:
        return None
    from .store import open_queue_store

    return open_queue_store(bridges.cache, broker)


def _load_http_api(settings, broker):
    """Import the HTTP API only when `http_server` is configured: idle RSS matters."""
    if settings.http_server is None:
        return None
    from .http_api import HttpApi

    return HttpApi(settings.http_server, broker)


def _load_bridges(settings, broker):
    """Import the bridge only when `bridges.mqtt.<name>` blocks are configured."""
    if settings.bridges is None:
        return {}
    from .bridge import make_bridges

    return make_bridges(broker, settings.bridges)


class Server:
    def __init__(self, settings):
        self.settings = settings
        self.webhook = _load_webhook(settings)
        self.broker = Broker(settings, self.webhook)
        self.store = _load_store(settings, self.broker)
        if settings.sqlite is not None and self.webhook is not None and settings.sqlite.webhook_spool:
            self.webhook.use_spool(self.store, settings.sqlite.resend_interval)
        self.broker.bridges = _load_bridges(settings, self.broker)
        self.http_api = _load_http_api(settings, self.broker)
        self.conns = ConnectionSet()
        self.addresses = []
        self._sockets = []
        self._greenlets = []
        self._stopped = Event()

    def start(self):
        """Build every listener's TLS/WebSocket layer and bind every socket (the HTTP
        API's too), then start accepting; nothing runs if a certificate or a bind fails."""
        from .transport.streams import filter_factory

        layers = [filter_factory(listener, self.settings) for listener in self.settings.listeners]
        bound = []
        try:
            for listener in self.settings.listeners:
                bound.append(open_listener(listener.host, listener.port))
            if self.http_api is not None:
                self.http_api.bind()
        except OSError:
            for sock in bound:
                sock.close()
            raise
        for listener, sock, make_filter in zip(self.settings.listeners, bound, layers, strict=True):
            host, port = sock.getsockname()[:2]
            self.addresses.append((listener.kind, host, port))
            self._sockets.append(sock)
            self._greenlets.append(gevent.spawn(accept_forever, sock, self.broker, self.conns, make_filter))
            log.info("listening on %s://%s:%s%s", listener.kind, host, port, listener.path)
        self._greenlets.append(gevent.spawn(sweep_forever, self.broker, self.conns))
        if self.store is not None:
            self.store.start(self.conns.flush)
        if self.http_api is not None:
            self.http_api.start()
            log.info("NanoMQ HTTP API listening on http://%s:%s", *self.http_api.address)
        if self.webhook is not None:
            self.webhook.start()
        for bridge in self.broker.bridges.values():
            bridge.start()

    def reload(self, new):
        """Apply a re-read configuration while running. `log` and `auth` take effect
        at once (new CONNECTs check the new passwords; every connection's cached
        ACL verdicts are dropped); returns the names of the sections that changed
        but apply only on a restart. Raises OSError, changing nothing, when the new
        log file cannot be opened."""
        from .logs import check_log_file, setup_logging

        current = self.settings
        if new.log != current.log:
            check_log_file(new.log)
            setup_logging(new.log)
            current.log = new.log
        if new.auth != current.auth:
            self.broker.reload_auth(new.auth)
        return [
            name
            for name in ("listeners", "mqtt", "webhook", "http_server", "sqlite", "bridges")
            if getattr(new, name) != getattr(current, name)
        ]

    def serve_forever(self):
        self._stopped.wait()

    def stop(self, timeout=None):
        """Stop the HTTP API, stop accepting, close every client (wills as the spec says), drain the
        webhook for `timeout` seconds (default: its configured drain_timeout)."""
        if self._stopped.is_set():
            return
        if self.http_api is not None:
            self.http_api.stop()
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        for sock in self._sockets:
            sock.close()
        self.broker.shutdown()
        self.conns.flush()
        for bridge in self.broker.bridges.values():
            bridge.stop()
        if self.webhook is not None:
            self.webhook.stop(timeout)
        if self.store is not None:
            self.store.close()  # after the webhook: what it could not deliver is spooled
        self._stopped.set()
