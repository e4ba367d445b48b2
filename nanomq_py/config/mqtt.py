"""The `mqtt { }` section -> `MqttSettings`: one parser per field, so a new field with a
plain default needs no code here."""

from __future__ import annotations

from datetime import timedelta

from nanomq_py.settings import MqttSettings

from .context import is_relativedelta, show
from .values import boolean, duration, integer, number, size, string


def read_mqtt(section):
    values = {}
    defaults = MqttSettings()
    for name in MqttSettings.FIELDS:
        parse = _PARSERS.get(name) or _parser_for_default(getattr(defaults, name))
        value = section.take(name, parse, None)
        if value is not None:
            values[name] = value
    section.finish()
    return MqttSettings(**values)


def _max_awaiting_rel(ctx, path, value):
    """A count; NanoMQ's own default file writes `10s` here (unused there), so a duration only warns."""
    if is_relativedelta(value) or isinstance(value, timedelta):
        where, key = ctx.locate(path)
        ctx.warn(f"{where}: {key} = {show(value)} is a message count, not a duration: using the default")
        return MqttSettings().max_awaiting_rel
    return integer(0)(ctx, path, value)


_PARSERS = {
    "max_packet_size": size(1, 260 * 1024**2),
    "max_mqueue_len": integer(1),
    "retry_interval": duration(0, low_open=True),
    "keepalive_multiplier": number(0, low_open=True),
    "max_keepalive": integer(0, 65535),
    "max_inflight_window": integer(1, 65535),
    "max_awaiting_rel": _max_awaiting_rel,
    "await_rel_timeout": duration(0, low_open=True),
    "max_topic_alias": integer(0, 65535),
    "property_size": integer(1),
    "max_qos": integer(0, 2),
    "session_expiry_interval": duration(0),
    "max_session_expiry_interval": duration(0),
    "max_connections": integer(0),
    "connect_timeout": duration(0, low_open=True),
    "max_topic_levels": integer(0),
    "max_subscriptions": integer(0),
    "max_outgoing_bytes": size(1),
}


def _parser_for_default(default):
    """For fields without an entry above: judged by the type of their default."""
    if isinstance(default, bool):
        return boolean
    if isinstance(default, int):
        return integer(0)
    if isinstance(default, float):
        return duration(0)
    return string
