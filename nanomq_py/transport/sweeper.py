"""The one periodic timer of the broker: keepalive, CONNECT timeout, QoS
retry, session expiry, delayed wills, and cutting lingering sockets.
One wake-up a second however many clients are connected."""

from __future__ import annotations

import logging
from time import monotonic

import gevent

log = logging.getLogger("nanomq.transport")

INTERVAL = 1.0


def sweep_forever(broker, conns, interval=INTERVAL):
    while True:
        gevent.sleep(interval)
        try:
            now = monotonic()
            broker.tick(now)
            conns.expire_lingering(now)
            conns.flush()
        except Exception:
            log.exception("periodic sweep failed")
