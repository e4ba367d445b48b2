"""Retained messages: the last retained message per topic name.

A subscribe with a plain filter is one dict lookup; a wildcard filter scans
the stored topics once (retained sets on edge brokers are small, and the scan
happens per SUBSCRIBE, never per PUBLISH). Expired messages are dropped when
they are found.
"""

from __future__ import annotations

from time import monotonic

from ..mqtt.topics import topic_matches


class RetainedStore:
    def __init__(self):
        self._messages = {}

    def __len__(self):
        return len(self._messages)

    def store(self, msg):
        """Keep msg as the retained message of its topic; an empty payload clears it."""
        if msg.payload:
            self._messages[msg.topic] = msg
        else:
            self._messages.pop(msg.topic, None)

    def matching(self, flt):
        """Retained messages whose topic matches the filter (expired ones removed)."""
        now = monotonic()
        if "+" not in flt and "#" not in flt:
            msg = self._messages.get(flt)
            found = [msg] if msg is not None else []
        else:
            found = [m for topic, m in self._messages.items() if topic_matches(flt, topic)]
        live = []
        for msg in found:
            if msg.expires_at is not None and now >= msg.expires_at:
                self._messages.pop(msg.topic, None)
            else:
                live.append(msg)
        return live
