"""Back-pressure: QoS 1/2 messages are not dropped because publishers outrun
a subscriber that is still draining its queue.

When an online subscriber's queue passes the high-water mark (a quarter of
max_mqueue_len), the connection whose PUBLISH filled it stops being read (TCP
then slows that publisher down) until every congested queue is back under the
low-water mark. The held connection's packets already read wait unhandled
until then, so each publisher adds at most one message past the mark; a
congested queue may reach twice max_mqueue_len before it drops. A
subscriber that has freed no window space for STALL seconds is stuck, not
slow: publishers are never held for it, and its bounded queue overflows
(counted drops) instead, so a dead subscriber cannot stall anyone.
Bookkeeping happens only when a queue crosses a mark, never per message.
"""

from __future__ import annotations

from time import monotonic

STALL = 1.0  # seconds without progress after which a subscriber no longer holds publishers


class FlowControl:
    __slots__ = ("high_water", "low_water", "sessions", "paused", "current")

    def __init__(self, max_mqueue_len):
        self.high_water = max(1, max_mqueue_len // 4)
        self.low_water = max_mqueue_len // 8
        self.sessions = set()  # online sessions over the high-water mark
        self.paused = []  # transports not being read because of them
        self.current = None  # the client whose packets are being handled

    def congested(self, session):
        """session's queue passed the high-water mark while the current client published."""
        publisher = self.current
        if publisher is None or publisher.session is session:
            return
        if monotonic() - session.progress_at > STALL:
            return
        self.sessions.add(session)
        transport = publisher.transport
        if not transport.paused:
            transport.pause_reading()
            self.paused.append(transport)

    def drained(self, session):
        """session is back under the low-water mark, gone, or stuck."""
        sessions = self.sessions
        sessions.discard(session)
        if not sessions and self.paused:
            for transport in self.paused:
                transport.resume_reading()
            self.paused.clear()

    def release_stuck(self, now):
        """Called by the sweeper: stuck subscribers stop holding publishers."""
        for session in [s for s in self.sessions if now - s.progress_at > STALL or s.client is None]:
            self.drained(session)
