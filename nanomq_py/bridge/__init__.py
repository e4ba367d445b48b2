"""MQTT bridges to upstream brokers (`bridges.mqtt.<name>`): built and started by the server
only when configured, so a broker without bridges imports none of this."""

from __future__ import annotations

from ..settings import BridgeCacheSettings
from .bridge import Bridge
from .cache import DurableCache, MemoryCache


def make_bridges(broker, settings):
    """name -> Bridge for every enabled bridge; the cache is a durable queue when the broker
    has a store for queues (`sqlite { }` or `bridges.mqtt.cache { }`), else a bounded
    in-memory queue."""
    store = getattr(broker, "queue_store", None)
    limit = BridgeCacheSettings.disk_cache_size
    bridges = {}
    for bridge_settings in settings.mqtt:
        if store is not None:
            cache = DurableCache(store.queue(f"bridge:{bridge_settings.name}"))
        else:
            cache = MemoryCache(limit)
        bridges[bridge_settings.name] = Bridge(broker, bridge_settings, cache)
    return bridges
