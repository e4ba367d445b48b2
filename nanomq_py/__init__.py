"""nanomq_py: a NanoMQ-compatible MQTT broker with WebHook integration, on gevent."""

__version__ = "0.1.0"
