"""A bridge's offline cache: the forwarded messages not yet acknowledged upstream, oldest first.

Both kinds offer the store's durable queue API (append / peek / remove / len / dropped), so
the bridge does not care which it has:

- `MemoryCache`: a bounded deque of (seq, entry). Acks mostly remove the head; one that
  comes out of order is remembered in a set and skipped until it reaches the head, so every
  operation is O(1) amortised, and peek(n) is O(n + out-of-order removals).
- `DurableCache`: `broker.store.queue("bridge:<name>")` with entries packed by `marshal`
  (topic, payload, qos, retain, properties: builtin types only), so a kill -9 of the broker
  loses nothing a local publisher had acknowledged.

Full: the oldest entry is dropped and counted (the store bounds its queue the same way).
"""

from __future__ import annotations

import marshal
from collections import deque


class MemoryCache:
    __slots__ = ("limit", "dropped", "_items", "_gone", "_next")

    def __init__(self, limit):
        self.limit = limit
        self.dropped = 0
        self._items = deque()
        self._gone = set()
        self._next = 1

    def append(self, entry):
        items = self._items
        if len(items) - len(self._gone) >= self.limit:
            self._drop_oldest()
        items.append((self._next, entry))
        self._next += 1

    def _drop_oldest(self):
        items, gone = self._items, self._gone
        while items:
            seq, _ = items.popleft()
            if seq in gone:
                gone.discard(seq)
                continue
            self.dropped += 1
            return

    def peek(self, limit):
        out = []
        gone = self._gone
        for seq, entry in self._items:
            if len(out) >= limit:
                break
            if seq not in gone:
                out.append((seq, entry))
        return out

    def remove(self, seqs):
        items, gone = self._items, self._gone
        if not items:
            return
        head = items[0][0]
        for seq in seqs:
            if seq == head:
                items.popleft()
                head = items[0][0] if items else None
            elif seq > (head or 0) and seq < self._next:
                gone.add(seq)
        while items and items[0][0] in gone:
            gone.discard(items.popleft()[0])

    def __len__(self):
        return len(self._items) - len(self._gone)


class DurableCache:
    """The store's queue, with entries packed to bytes and back."""

    __slots__ = ("queue",)

    def __init__(self, queue):
        self.queue = queue

    def append(self, entry):
        self.queue.append(marshal.dumps(entry))

    def peek(self, limit):
        return [(seq, marshal.loads(item)) for seq, item in self.queue.peek(limit)]

    def remove(self, seqs):
        self.queue.remove(seqs)

    def __len__(self):
        return len(self.queue)

    @property
    def dropped(self):
        return self.queue.dropped
