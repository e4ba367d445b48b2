"""From the broker's hand-off to HTTP: bounded queues, pool_size workers, retries, counters.

Plan: submit() puts a small tuple (body builder, its arguments, payload size)
on the queue of worker `hash(client id) % pool_size` and returns; it never
waits. Each worker takes its own queue in order, builds the bodies and POSTs
them, retrying in place, so the events of one client reach the endpoint in the
order they happened, and a slow client key delays only the keys that share its
worker. A worker that finds several events waiting POSTs them together,
pipelined on one keep-alive connection (one round trip for the burst, the
responses read in order); a retry sends the failed event and the rest of its
burst again, so the order holds (see _deliver).

Bounds: across all queues at most `queue_size` events and
QUEUED_PAYLOAD_BYTES_LIMIT payload bytes wait at once (the queues hold
references to payloads the broker would otherwise have freed); beyond that an
event is dropped and counted. Bodies exist only for the batches being sent:
pool_size of them, each at most PIPELINE_DEPTH events and about
BATCH_PAYLOAD_BYTES of payload.

Counters are cumulative: `queued` counts the events accepted by submit(), and
every produced event ends up in exactly one of delivered, failed and dropped,
so once the queues are empty `delivered + failed + dropped` equals the number
of events offered.
"""

from __future__ import annotations

import logging

import gevent
import gevent.pool
import gevent.queue

from .encoding import PayloadTooLarge
from .http_sender import HttpSender
from .throttled_log import ThrottledWarning

log = logging.getLogger("nanomq.webhook")

QUEUED_PAYLOAD_BYTES_LIMIT = 32 * 1024 * 1024
# A worker with a backlog POSTs up to this many of its queued events at once,
# pipelined on one connection, with at most about BATCH_PAYLOAD_BYTES of payload.
PIPELINE_DEPTH = 32
BATCH_PAYLOAD_BYTES = 64 * 1024
_STOP = object()


def _describe(exc: Exception) -> str:
    text = str(exc)
    if "(host=" in text:  # urllib3 prefixes its pool or connection: keep the message only
        text = text.split("): ", 1)[-1]
    return f"{type(exc).__name__}: {text}"


class Counters:
    __slots__ = ("queued", "delivered", "retried", "failed", "dropped")

    def __init__(self):
        self.queued = 0
        self.delivered = 0
        self.retried = 0
        self.failed = 0
        self.dropped = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Dispatcher:
    def __init__(self, settings, report_interval: float = 60.0, warn_interval: float = 10.0):
        self._settings = settings
        self._url = settings.url
        self._workers = settings.pool_size
        self._capacity = settings.queue_size
        self._queues = [gevent.queue.Queue() for _ in range(self._workers)]
        self._pending = 0
        self._pending_bytes = 0
        self._accepting = True
        self._report_interval = report_interval
        self._reported_losses = (0, 0)
        self.counters = Counters()
        self._sender = None
        self._pool = None
        self._reporter = None
        self._endpoint_warning = ThrottledWarning(log, warn_interval)
        self._drop_warning = ThrottledWarning(log, warn_interval)
        self.spool = None  # webhook.spool.Spool when the durable store keeps undeliverable events

    # The broker's side: never waits, never raises.

    def submit(self, key, build, args: tuple, size: int = 0) -> None:
        """Queue one event for the worker that owns `key` (a client id), or drop it."""
        if self._pending >= self._capacity or self._pending_bytes + size > QUEUED_PAYLOAD_BYTES_LIMIT:
            if self.spool is not None and self.spool.add_event(build, args):
                return
            self.counters.dropped += 1
            self._drop_warning.warning(
                "webhook queue full (%d events, %d payload bytes waiting): event dropped",
                self._pending,
                self._pending_bytes,
            )
            return
        if not self._accepting:
            self.counters.dropped += 1
            self._drop_warning.warning("webhook stopped: event dropped")
            return
        self._pending += 1
        self._pending_bytes += size
        self.counters.queued += 1
        self._queues[hash(key) % self._workers].put_nowait((build, args, size))

    def drop(self, reason: str) -> None:
        """Count an event that could not even be handed over."""
        self.counters.dropped += 1
        self._drop_warning.warning("webhook event dropped: %s", reason)

    # Life cycle.

    def start(self) -> None:
        """Events handed over before start() wait in the queues; starting twice changes nothing."""
        if self._pool is not None:
            return
        self._sender = HttpSender(self._settings, PIPELINE_DEPTH)
        self._pool = gevent.pool.Pool(self._workers)
        for queue in self._queues:
            self._pool.spawn(self._work, queue)
        self._reporter = gevent.spawn(self._report_periodically)
        if self.spool is not None:
            self.spool.start(self._sender)

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, let the workers finish their queues for at most `timeout`
        seconds (default drain_timeout), then count what is left as dropped."""
        if not self._accepting:
            return
        self._accepting = False
        if self._pool is not None:
            for queue in self._queues:
                queue.put_nowait(_STOP)
            self._pool.join(timeout=self._settings.drain_timeout if timeout is None else timeout)
            self._pool.kill(block=True, timeout=1.0)
            self._reporter.kill(block=False)
        for queue in self._queues:
            while not queue.empty():
                item = queue.get_nowait()
                if item is not _STOP:
                    self._finish(item[2])
                    if self.spool is None or not self.spool.add_event(item[0], item[1]):
                        self.counters.dropped += 1
        self._log_counters()
        if self.spool is not None:
            self.spool.stop()
        if self._sender is not None:
            self._sender.close()

    # The workers.

    def _work(self, queue) -> None:
        while True:
            item = queue.get()
            if item is _STOP:
                return
            batch = [item]
            payload_bytes = item[2]
            limit = self._sender.batch_limit
            stop = False
            while len(batch) < limit and payload_bytes < BATCH_PAYLOAD_BYTES and queue.qsize():
                item = queue.get_nowait()
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                payload_bytes += item[2]
            try:
                self._deliver(batch)
            finally:
                for _, _, size in batch:
                    self._finish(size)
            if stop:
                return

    def _finish(self, size: int) -> None:
        self._pending -= 1
        self._pending_bytes -= size

    def _deliver(self, batch) -> None:
        """POST the batch's events in order, pipelined when there are several.

        When one meets 429, 5xx or a connection error, it and every event after
        it in the batch are sent again, in order, after a back-off, even those
        the endpoint already accepted: the endpoint may see an event twice, but
        the last time it sees each event, it has seen every earlier event of
        that client before it (a state kept from the POSTs ends right)."""
        work = [[body, 0] for body in map(self._body, batch) if body is not None]  # [body, failed tries]
        try:
            while work:
                statuses, error, retry_after = self._sender.post_batch([body for body, _ in work])
                cut = None
                for index, status in enumerate(statuses):
                    if 200 <= status < 300:
                        self.counters.delivered += 1
                    elif status != 429 and status < 500:
                        self._fail(
                            "webhook POST to %s answered HTTP %d: event not delivered", self._url, status
                        )
                    else:
                        cut, problem = index, f"HTTP {status}"
                        break
                if cut is None:
                    cut = len(statuses)
                    if error is None:  # all answered, or the endpoint closed the connection on the rest
                        work = work[cut:]
                        continue
                    problem = _describe(error)
                work = work[cut:]
                head = work[0]
                head[1] += 1
                if head[1] > self._settings.max_retries and self.spool is not None:
                    for body, _ in work:  # the endpoint is down: keep the rest, in order
                        self.spool.add(body)
                    return
                if head[1] > self._settings.max_retries:
                    self._fail(
                        "webhook POST to %s failed after %d attempt(s): %s", self._url, head[1], problem
                    )
                    del work[0]
                    continue
                log.debug("webhook POST to %s: %s, sending %d again", self._url, problem, len(work))
                self.counters.retried += len(work)
                backoff = self._settings.retry_backoff * (2 ** (head[1] - 1))
                gevent.sleep(backoff if retry_after is None else max(backoff, retry_after))
        except gevent.GreenletExit:
            if self.spool is not None:
                for body, _ in work:
                    self.spool.add(body)
                work = []
            self.counters.dropped += len(work)  # killed while sending at the end of the drain
            raise

    def _body(self, item):
        """The POST body of a queued event, or None (counted as failed) if it cannot be built."""
        build, args, _ = item
        try:
            return build(*args)
        except PayloadTooLarge as exc:
            self._fail("webhook event not sent: %s; use body.encoding = base64 for large payloads", exc)
        except Exception as exc:
            self._fail("webhook event not sent: building its body failed: %r", exc)
        return None

    def _fail(self, message: str, *args) -> None:
        self.counters.failed += 1
        self._endpoint_warning.warning(message, *args)

    # Reporting.

    def _report_periodically(self) -> None:
        while True:
            gevent.sleep(self._report_interval)
            self._log_counters()

    def _log_counters(self) -> None:
        """One line with the counters while any is non-zero; a warning when failures or drops grew."""
        counters = self.counters
        values = counters.as_dict()
        if not any(values.values()):
            return
        losses = (counters.failed, counters.dropped)
        level = logging.WARNING if losses != self._reported_losses else logging.INFO
        self._reported_losses = losses
        log.log(
            level,
            "webhook counters: %s, waiting=%d",
            ", ".join(f"{name}={value}" for name, value in values.items()),
            self._pending,
        )
