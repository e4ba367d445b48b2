"""The MQTT protocol, pure: bytes in -> packet objects out, and back.

No sockets, no gevent, no broker state (sans-IO, like h11).  ``codec`` frames and
encodes packets for MQTT 3.1, 3.1.1 and 5.0; ``properties`` and ``reason_codes`` hold
the MQTT 5 tables; ``topics`` validates and matches topic names and filters.
"""
