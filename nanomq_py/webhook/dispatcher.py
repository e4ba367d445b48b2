"""From the broker's hand-off to HTTP: a bounded queue, pool_size workers, retries, counters.

Plan: submit() puts a small tuple (body builder, its arguments, payload size)
on a queue and returns; it never waits. By default there is one queue shared
by the pool_size workers, so up to pool_size POSTs are in flight on up to
pool_size connections whichever clients the events come from: an endpoint
that answers in 50 ms takes about pool_size / 0.05 s events per second even
from one busy client. Each body carries `ts` (ms), so a receiver can order
events itself.

With `per_client_order = true` each worker owns a queue and an event goes to
the worker of `hash(client id) % pool_size`: one client's events reach the
endpoint in the order they happened (a retry sends the failed event and the
rest of its burst again, see _deliver), at the cost of one client's events
going one request per round trip.

A worker that finds a backlog POSTs several events together, pipelined on its
keep-alive connection (one write, the responses read in order): up to the
sender's batch_limit when the endpoint answers a burst at once (a fast one, or
one that serves pipelined requests in parallel), which costs the least CPU per
event. Ordinary HTTP servers answer pipelined requests one after another,
though: when the sender saw a burst's answers spread out (serves_in_turn), a
worker takes only its share of the backlog (1 + waiting // workers of its
queue), so a slow endpoint gets one request per connection on pool_size
connections rather than deep bursts on a few.

Bounds: at most `queue_size` events and QUEUED_PAYLOAD_BYTES_LIMIT payload
bytes wait at once (the queue holds references to payloads the broker would
otherwise have freed); beyond that an event is dropped and counted. Bodies
exist only for the batches being sent: pool_size of them, each at most
PIPELINE_DEPTH events and about BATCH_PAYLOAD_BYTES of payload.

Where an event starts and ends: _enqueue() is the one place an accepted event
enters the queues; it leaves them as delivered, or through _give_up() (failed:
refused by the endpoint, retries exhausted, body not buildable) or _abandon()
(dropped: still queued or being sent when the drain at stop ran out). A disk
spool hooks in at those three places.

Counters are cumulative but for the gauges in_flight and waiting: `queued`
counts the events accepted by submit(), and every produced event ends up in
exactly one of delivered, failed and dropped, so once the queue is empty
`delivered + failed + dropped` equals the number of events offered.
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
    __slots__ = ("queued", "delivered", "retried", "failed", "dropped", "in_flight", "waiting")

    def __init__(self):
        self.queued = 0
        self.delivered = 0
        self.retried = 0
        self.failed = 0
        self.dropped = 0
        self.in_flight = 0  # events taken by a worker and not settled yet
        self.waiting = 0  # events in the queues

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Dispatcher:
    def __init__(self, settings, report_interval: float = 60.0, warn_interval: float = 10.0):
        self._settings = settings
        self._url = settings.url
        self._workers = settings.pool_size
        self._capacity = settings.queue_size
        ordered = settings.per_client_order
        self._queues = [gevent.queue.Queue() for _ in range(self._workers if ordered else 1)]
        self._sharing = self._workers // len(self._queues)  # workers taking from each queue
        self._pending_bytes = 0
        self._accepting = True
        self._abandoned = 0  # events the drain at stop left undelivered
        self._report_interval = report_interval
        self._reported_losses = (0, 0)
        self.stats = Counters()
        self._sender = None
        self._pool = None
        self._reporter = None
        self._endpoint_warning = ThrottledWarning(log, warn_interval)
        self._drop_warning = ThrottledWarning(log, warn_interval)
        self.spool = None  # webhook.spool.Spool when the durable store keeps undeliverable events

    def counters(self) -> dict[str, int]:
        """Cumulative queued, delivered, retried, failed, dropped; the gauges in_flight, waiting."""
        return self.stats.as_dict()

    # The broker's side: never waits, never raises.

    def submit(self, key, build, args: tuple, size: int = 0) -> None:
        """Queue one event (`key` is its client id, used for per-client order), spool it
        when the queue is full and a spool is configured, or drop it."""
        stats = self.stats
        if (
            stats.waiting + stats.in_flight >= self._capacity
            or self._pending_bytes + size > QUEUED_PAYLOAD_BYTES_LIMIT
        ):
            if self.spool is not None and self.spool.add_event(build, args):
                return
            stats.dropped += 1
            self._drop_warning.warning(
                "webhook queue full (%d events, %d payload bytes waiting): event dropped",
                stats.waiting + stats.in_flight,
                self._pending_bytes,
            )
            return
        if not self._accepting:
            stats.dropped += 1
            self._drop_warning.warning("webhook stopped: event dropped")
            return
        self._enqueue(key, (build, args, size))

    def drop(self, reason: str) -> None:
        """Count an event that could not even be handed over."""
        self.stats.dropped += 1
        self._drop_warning.warning("webhook event dropped: %s", reason)

    def _enqueue(self, key, item) -> None:
        """The one place an accepted event enters the queues."""
        stats = self.stats
        stats.queued += 1
        stats.waiting += 1
        self._pending_bytes += item[2]
        queues = self._queues  # one shared queue, or one per worker with per_client_order
        queues[hash(key) % len(queues)].put_nowait(item)

    # Life cycle.

    def start(self) -> None:
        """Events handed over before start() wait in the queues; starting twice changes nothing."""
        if self._pool is not None:
            return
        self._sender = HttpSender(self._settings, PIPELINE_DEPTH)
        self._pool = gevent.pool.Pool(self._workers)
        for number in range(self._workers):
            self._pool.spawn(self._work, self._queues[number % len(self._queues)])
        self._reporter = gevent.spawn(self._report_periodically)
        if self.spool is not None:
            self.spool.start(self._sender)

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, let the workers finish the queues for at most `timeout`
        seconds (default drain_timeout), then count what is left as dropped and
        name it in one warning."""
        if not self._accepting:
            return
        self._accepting = False
        drain = self._settings.drain_timeout if timeout is None else timeout
        queued = 0
        if self._pool is not None:
            for queue in self._queues:
                for _ in range(self._sharing):
                    queue.put_nowait(_STOP)
            self._pool.join(timeout=drain)
            self._pool.kill(block=True, timeout=1.0)  # in-flight batches are abandoned by their workers
            self._reporter.kill(block=False)
        sending = self._abandoned
        for queue in self._queues:
            while not queue.empty():
                item = queue.get_nowait()
                if item is not _STOP:
                    self.stats.waiting -= 1
                    self._pending_bytes -= item[2]
                    if self.spool is None or not self.spool.add_event(item[0], item[1]):
                        self._abandon(1)
                        queued += 1
        if self._abandoned:
            log.warning(
                "webhook: %d event(s) not delivered to %s when the drain at stop ended after %gs "
                "(%d still queued, %d being sent or retried): counted as dropped (dropped=%d in all)",
                self._abandoned,
                self._url,
                drain,
                queued,
                sending,
                self.stats.dropped,
            )
        self._log_counters(quiet=self._abandoned > 0)
        if self.spool is not None:
            self.spool.stop()
        if self._sender is not None:
            self._sender.close()

    # The workers.

    def _work(self, queue) -> None:
        stats = self.stats
        sharing = self._sharing
        while True:
            item = queue.get()
            if item is _STOP:
                return
            batch = [item]
            payload_bytes = item[2]
            limit = self._sender.batch_limit
            if self._sender.serves_in_turn:  # deep bursts would wait: a share of the backlog
                limit = min(limit, 1 + queue.qsize() // sharing)
            stop = False
            while len(batch) < limit and payload_bytes < BATCH_PAYLOAD_BYTES and queue.qsize():
                item = queue.get_nowait()
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                payload_bytes += item[2]
            taken = len(batch)
            stats.waiting -= taken
            stats.in_flight += taken
            try:
                self._deliver(batch)
            finally:
                stats.in_flight -= taken
                self._pending_bytes -= payload_bytes
            if stop:
                return

    def _deliver(self, batch) -> None:
        """POST the batch's events in order, pipelined when there are several.

        When one meets 429, 5xx or a connection error, it and every event after
        it in the batch are sent again, in order, after a back-off, even those
        the endpoint already accepted: the endpoint may see an event twice, but
        the last time it sees each event, it has seen every earlier event of
        the batch before it (with per_client_order, a state kept from the
        POSTs ends right)."""
        work = [[body, 0] for body in map(self._body, batch) if body is not None]  # [body, failed tries]
        try:
            while work:
                statuses, error, retry_after = self._sender.post_batch([body for body, _ in work])
                cut = None
                for index, status in enumerate(statuses):
                    if 200 <= status < 300:
                        self.stats.delivered += 1
                    elif status != 429 and status < 500:
                        self._give_up(
                            work[index][0],
                            "webhook POST to %s answered HTTP %d: event not delivered",
                            self._url,
                            status,
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
                    self._give_up(
                        head[0],
                        "webhook POST to %s failed after %d attempt(s): %s",
                        self._url,
                        head[1],
                        problem,
                    )
                    del work[0]
                    continue
                log.debug("webhook POST to %s: %s, sending %d again", self._url, problem, len(work))
                self.stats.retried += len(work)
                backoff = self._settings.retry_backoff * (2 ** (head[1] - 1))
                gevent.sleep(backoff if retry_after is None else max(backoff, retry_after))
        except gevent.GreenletExit:
            if self.spool is not None:
                for body, _ in work:
                    self.spool.add(body)
                work = []
            self._abandon(len(work))  # killed while sending or backing off at the end of the drain
            raise

    def _body(self, item):
        """The POST body of a queued event, or None (counted as failed) if it cannot be built."""
        build, args, _ = item
        try:
            return build(*args)
        except PayloadTooLarge as exc:
            self._give_up(
                None, "webhook event not sent: %s; use body.encoding = base64 for large payloads", exc
            )
        except Exception as exc:
            self._give_up(None, "webhook event not sent: building its body failed: %r", exc)
        return None

    # Where an accepted event ends undelivered.

    def _give_up(self, body, message: str, *args) -> None:
        """Failed for good: refused by the endpoint, retries exhausted, or no body (None)."""
        self.stats.failed += 1
        self._endpoint_warning.warning(message, *args)

    def _abandon(self, count: int) -> None:
        """Dropped: still queued or being sent when the drain at stop ran out."""
        self.stats.dropped += count
        self._abandoned += count

    # Reporting.

    def _report_periodically(self) -> None:
        while True:
            gevent.sleep(self._report_interval)
            self._log_counters()

    def _log_counters(self, quiet: bool = False) -> None:
        """One line with the counters while any is non-zero; a warning when failures or drops
        grew, unless `quiet` (the stop has just warned about them)."""
        stats = self.stats
        values = stats.as_dict()
        if not any(values.values()):
            return
        losses = (stats.failed, stats.dropped)
        grew = losses != self._reported_losses and not quiet
        self._reported_losses = losses
        log.log(
            logging.WARNING if grew else logging.INFO,
            "webhook counters: %s",
            ", ".join(f"{name}={value}" for name, value in values.items()),
        )
