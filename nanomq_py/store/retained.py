"""Retained messages written through to the store: set, replace and clear are
part of the publisher's batch, so its PUBACK waits for them. The broker's own
`$SYS/` values are not written: they change every `sys_interval` and describe
the running process, so a restart must not bring back stale ones."""

from __future__ import annotations

from ..broker.retained import RetainedStore
from .codec import message_columns, message_from

_SET = (
    "INSERT OR REPLACE INTO retained(topic, payload, qos, props, from_client, from_user, expires) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_CLEAR = "DELETE FROM retained WHERE topic = ?"


class DurableRetained(RetainedStore):
    def __init__(self, store):
        super().__init__()
        self.db_store = store

    def store(self, msg):
        super().store(msg)
        if msg.topic.startswith("$SYS/"):
            return
        if msg.payload:
            topic, payload, props, from_client, from_user, expires = message_columns(msg)
            self.db_store.write(_SET, (topic, payload, msg.qos, props, from_client, from_user, expires))
        else:
            self.db_store.write(_CLEAR, (msg.topic,))

    def keep_unwritten(self, previous):
        """Take over what the in-memory store held before the load (never written: only
        the broker's own `$SYS/` values are set that early)."""
        self._messages.update(previous._messages)

    def load(self, reader, now_wall):
        """Read every retained message; those that expired while the broker was down are deleted."""
        expired = []
        for topic, payload, qos, props, from_client, from_user, expires in reader.execute(
            "SELECT topic, payload, qos, props, from_client, from_user, expires FROM retained"
        ):
            if expires is not None and expires <= now_wall:
                expired.append(topic)
                continue
            self._messages[topic] = message_from(
                topic, payload, qos, True, props, from_client, from_user, expires
            )
        for topic in expired:
            self.db_store.write(_CLEAR, (topic,))
