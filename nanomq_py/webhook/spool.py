"""The webhook spool: events that could not be delivered now (endpoint down
after the retries, queue full, still waiting at `nanomq stop`) are kept in the
durable store's "webhook" queue instead of being dropped, and POSTed again,
oldest first, every `sqlite.resend_interval` once the endpoint answers, also
after a restart. Bounded by `sqlite.disk_cache_size`: overflow drops the
oldest and counts it (spool_dropped). Only used when the store is configured.

With a spool, the dispatcher's accounting reads: every event offered ends up
delivered, failed, dropped or spooled; a spooled one later counts as replayed
(or failed, or spool_dropped).
"""

from __future__ import annotations

import logging

import gevent

from .throttled_log import ThrottledWarning

log = logging.getLogger("nanomq.webhook")

_BATCH = 32  # spooled events POSTed at once, pipelined on one connection


class Spool:
    def __init__(self, queue, interval, counters, warn_interval=10.0):
        self.queue = queue
        self.interval = interval
        self.counters = counters  # the dispatcher's: permanent refusals count as failed there
        self.spooled = 0
        self.replayed = 0
        self._sender = None
        self._greenlet = None
        self._warning = ThrottledWarning(log, warn_interval)

    def add(self, body):
        """Keep one POST body for later."""
        self.queue.append(body)
        self.spooled += 1
        self._warning.warning(
            "webhook endpoint unavailable: events spooled to the store (spooled=%d, waiting=%d, spool_dropped=%d)",
            self.spooled,
            len(self.queue),
            self.queue.dropped,
        )

    def add_event(self, build, args):
        """Build an event's body now (it was not queued) and keep it; False if it cannot be built."""
        try:
            body = build(*args)
        except Exception:
            return False
        self.add(body)
        return True

    def counters_dict(self):
        return {
            "spooled": self.spooled,
            "replayed": self.replayed,
            "spool_dropped": self.queue.dropped,
            "spool_waiting": len(self.queue),
        }

    def start(self, sender):
        self._sender = sender
        self._greenlet = gevent.spawn(self._run)

    def stop(self):
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1.0)
            self._greenlet = None

    def _run(self):
        while True:
            gevent.sleep(self.interval)
            if len(self.queue):
                self._replay()

    def _replay(self):
        """POST the spool oldest first until it is empty or the endpoint fails again."""
        while len(self.queue):
            items = self.queue.peek(_BATCH)
            if not items:
                return  # appended but not committed yet: next round
            statuses, _, _ = self._sender.post_batch([body for _, body in items])
            done = []
            for (seq, _), status in zip(items, statuses, strict=False):
                if status == 429 or status >= 500:
                    break
                done.append(seq)
                if 200 <= status < 300:
                    self.replayed += 1
                else:
                    self.counters.failed += 1  # refused for good (4xx): sending again would not help
            self.queue.remove(done)
            if len(done) < len(items):  # the endpoint failed again (error or 429/5xx): next round
                break
        log.info(
            "webhook spool: replayed=%d, waiting=%d, spool_dropped=%d",
            self.replayed,
            len(self.queue),
            self.queue.dropped,
        )
