"""The durable named queue API (CONTRACT.md) on a real SQLite file: FIFO order,
peek before and after commit, remove, the bound, and survival across a reopen."""

from __future__ import annotations

import types

from nanomq_py.settings import SqliteSettings
from nanomq_py.store.store import Store


def _store(path, capacity=100):
    broker = types.SimpleNamespace(retained={}, store=None)
    store = Store(SqliteSettings(mounted_file_path=str(path), disk_cache_size=capacity), broker)
    store.load_counts()
    return store


def test_append_peek_remove_survive_reopen(tmp_path):
    store = _store(tmp_path)
    q = store.queue("bridge:up")
    assert store.queue("bridge:up") is q
    for n in range(5):
        q.append(b"item%d" % n)
    assert len(q) == 5
    assert [item for _, item in q.peek(3)] == [b"item0", b"item1", b"item2"]  # before the commit
    store.commit_now()
    first = q.peek(2)
    assert [item for _, item in first] == [b"item0", b"item1"]
    q.remove([seq for seq, _ in first])
    assert [item for _, item in q.peek(10)] == [b"item2", b"item3", b"item4"]  # removal not committed yet
    store.commit_now()
    assert len(q) == 3
    store.close()

    store = _store(tmp_path)
    q = store.queue("bridge:up")
    assert len(q) == 3
    assert [item for _, item in q.peek(10)] == [b"item2", b"item3", b"item4"]
    q.append(b"item5")
    assert [item for _, item in q.peek(10)][-1] == b"item5"
    assert len(store.queue("webhook")) == 0
    store.close()


def test_bound_drops_oldest_and_counts(tmp_path):
    store = _store(tmp_path, capacity=3)
    q = store.queue("webhook")
    for n in range(5):
        q.append(b"%d" % n)
        if n == 1:
            store.commit_now()
    assert len(q) == 3
    assert q.dropped == 2
    store.commit_now()
    assert [item for _, item in q.peek(10)] == [b"2", b"3", b"4"]
    assert store.counters()["queue_dropped"] == 2
    store.close()
