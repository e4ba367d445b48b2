"""Named durable FIFO queues (the webhook spool, a bridge's offline cache).

Items live in the `queue` table; memory holds only those appended or removed
since the last commit, so `peek` answers at once and consistently while the
writer thread commits. Bounded by `sqlite.disk_cache_size` per queue: the
oldest item is dropped (and counted) to make room.
"""

from __future__ import annotations

_INSERT = "INSERT INTO queue(seq, name, item) VALUES (?, ?, ?)"
_DELETE = "DELETE FROM queue WHERE seq = ?"
_DROP_OLDEST = "DELETE FROM queue WHERE seq = (SELECT min(seq) FROM queue WHERE name = ?)"


class DurableQueue:
    def __init__(self, store, name, count):
        self.store = store
        self.name = name
        self.count = count
        self.dropped = 0
        self._fresh = []  # (seq, item) appended and not yet committed, oldest first
        self._gone = set()  # seqs removed (or dropped) and not yet committed
        self._committing = None  # (fresh count, gone seqs) of the batch being committed

    def __len__(self):
        return self.count

    def append(self, item):
        """Add an item; it is durable with the current batch (a PUBACK waiting for it waits for this)."""
        store = self.store
        if self.count >= store.capacity:
            self._drop_oldest()
        seq = store.next_seq()
        store.write(_INSERT, (seq, self.name, item))
        self._fresh.append((seq, item))
        self.count += 1
        store.touched.add(self)

    def _drop_oldest(self):
        oldest = self.peek(1)
        if oldest:
            self.remove([oldest[0][0]])
        else:
            self.store.write(_DROP_OLDEST, (self.name,))
            self.count -= 1
        self.dropped += 1
        self.store.queue_dropped += 1

    def peek(self, limit):
        """Up to `limit` items, oldest first, as (seq, item)."""
        gone = self._gone
        if self._committing is not None:
            gone = gone | self._committing[1]
        rows = self.store.db.reader.execute(
            "SELECT seq, item FROM queue WHERE name = ? ORDER BY seq LIMIT ?", (self.name, limit + len(gone))
        ).fetchall()
        found = [(seq, bytes(item)) for seq, item in rows if seq not in gone]
        last = rows[-1][0] if rows else 0
        if len(found) < limit:
            found.extend((seq, item) for seq, item in self._fresh if seq > last and seq not in gone)
        return found[:limit]

    def remove(self, seqs):
        """Forget delivered items (unknown seqs are ignored)."""
        store = self.store
        gone = self._gone
        for seq in seqs:
            if seq in gone:
                continue
            gone.add(seq)
            store.write(_DELETE, (seq,))
            self.count -= 1
        store.touched.add(self)

    # -- called by the store around a commit ------------------------------

    def batch_taken(self):
        self._committing = (len(self._fresh), self._gone)
        self._gone = set()

    def batch_done(self, ok):
        fresh, gone = self._committing
        self._committing = None
        del self._fresh[:fresh]
        if not ok:
            self.count += len(gone) - fresh  # neither the appends nor the removals were stored
