"""The durable store: the one owner of the SQLite file (`<mounted_file_path>/nanomq.db`).

Imported only when the `sqlite { }` block (or, for the bridges' queues alone, a
`bridges.mqtt.cache { }` block) is configured, so a broker without them never
loads sqlite3. `open_store` opens (or moves aside and recreates) the file,
loads retained messages and persistent sessions into the broker, and returns
the `Store` the broker tells about every durable change.
"""

from __future__ import annotations

from .store import open_queue_store, open_store

__all__ = ["open_queue_store", "open_store"]
