"""Value forms a config may use (sizes, durations, booleans, addresses, URLs, ...).

Each parser is `(ctx, path, value) -> typed value` and rejects a bad value through
`ctx.fail`, so every message says the same way what is allowed. Values arrive as
pyhocon typed them or as strings (environment, flags, the old file), so each parser
accepts both.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from urllib.parse import urlsplit

from nanomq_py.mqtt.topics import validate_topic_filter

from .context import RD_UNITS, is_relativedelta, show

_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_URL_SCHEMES = {  # scheme prefix of a listener URL -> kind
    "nmq-tcp://": "tcp",
    "mqtt-tcp://": "tcp",
    "tcp://": "tcp",
    "tls+nmq-tcp://": "ssl",
    "tls+mqtt-tcp://": "ssl",
    "nmq-tls://": "ssl",
    "ssl://": "ssl",
    "tls://": "ssl",
    "nmq-ws://": "ws",
    "ws://": "ws",
    "nmq-wss://": "wss",
    "wss://": "wss",
}
HTTP_URL_TEXT = "expected http://host[:port][/path] or https://host[:port][/path]"


def truthy(text):
    """The old file's on/off switches, read before validation decides anything."""
    return str(text).strip().lower() in _TRUE_WORDS


def any_value(ctx, path, value):
    return value


def boolean(ctx, path, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_WORDS:
            return True
        if text in _FALSE_WORDS:
            return False
    ctx.fail(path, value, "expected true or false")


def enum(choices):
    def parse(ctx, path, value):
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        ctx.fail(path, value, f"expected one of {', '.join(choices)}")

    return parse


def string(ctx, path, value):
    if isinstance(value, (bool, list, dict)) or value is None:
        ctx.fail(path, value, "expected a string")
    return str(value)


def nonempty_string(ctx, path, value):
    text = string(ctx, path, value)
    if not text.strip():
        ctx.fail(path, value, "expected a non-empty string")
    return text


def existing_file(ctx, path, value):
    name = nonempty_string(ctx, path, value)
    if not os.path.isfile(name):
        ctx.fail(path, value, "expected the path of an existing file")
    return name


def string_map(ctx, path, value):
    if not isinstance(value, dict):
        ctx.fail(path, value, "expected an object of name = value strings")
    result = {}
    for name, item in value.items():
        if isinstance(item, (dict, list)) or item is None:
            ctx.fail(path + (name,), item, "expected a string")
        result[str(name)] = show(item) if isinstance(item, bool) else str(item)
    return result


def param_pairs(text):
    """NanoMQ's "clientid=%c,username=%u" form -> [(name, "=", value), ...]; "=" is empty when missing."""
    return [item.partition("=") for item in text.split(",") if item.strip()]


def require_topic_filter(ctx, path, value, topic):
    """`topic`, read from `value`, must be a valid MQTT topic filter."""
    try:
        validate_topic_filter(topic)
    except ValueError as exc:
        ctx.fail(path, value, f"expected an MQTT topic filter ({exc})")


# --------------------------------------------------------------------------- numbers


def integer(low=None, high=None):
    def parse(ctx, path, value):
        number = _as_int(value)
        if number is None or _below(number, low) or (high is not None and number > high):
            ctx.fail(path, value, _range_text("an integer", low, high))
        return number

    return parse


def number(low=None, low_open=False):
    def parse(ctx, path, value):
        result = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            result = float(value)
        elif isinstance(value, str):
            try:
                result = float(value)
            except ValueError:
                result = None
        if result is None or result != result or _below(result, low, low_open):
            ctx.fail(path, value, _range_text("a number", low, None, low_open))
        return result

    return parse


def _as_int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _below(value, low, low_open=False):
    return low is not None and (value <= low if low_open else value < low)


def _range_text(what, low, high, low_open=False):
    if low is not None and high is not None:
        return f"expected {what} from {low} to {high}"
    if low is not None:
        return f"expected {what} {'>' if low_open else '>='} {low}"
    return f"expected {what}"


def size(low=0, high=None):
    """Bytes: 1048576, "1024KB", "1MB", "1g" (1024-based, as NanoMQ reads them)."""
    allowed = "expected a size in bytes or with a unit (KB, MB, GB; 1024-based)"
    if high is not None:
        allowed += f" from {low} to {_human_size(high)}"
    elif low:
        allowed += f" >= {low}"

    def parse(ctx, path, value):
        number = _as_int(value)
        if number is None and isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
            if match and match.group(2).lower() in _SIZE_UNITS:
                number = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
        if number is None and is_relativedelta(value) and _only_units(value, ("minutes",)):
            number = value.minutes * 1024**2  # pyhocon reads an unquoted `10m` as minutes; NanoMQ means MB
        if number is None or number < low or (high is not None and number > high):
            ctx.fail(path, value, allowed)
        return number

    return parse


def _human_size(number):
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if number % factor == 0:
            return f"{number // factor}{unit}"
    return str(number)


def _only_units(delta, units):
    return all(getattr(delta, unit, 0) == 0 for unit in RD_UNITS if unit not in units)


def duration(low=0.0, low_open=False, plain_unit="s"):
    """Seconds from "500ms", "10s", "5m", "1h", "1d", or a plain number in `plain_unit`."""
    allowed = "expected a duration such as 500ms, 10s, 5m, 1h, 1d"
    allowed += (
        " (a plain number means milliseconds)" if plain_unit == "ms" else " (a plain number means seconds)"
    )
    allowed += f", {'>' if low_open else '>='} {low:g}s" if low or low_open else ""

    def parse(ctx, path, value):
        seconds = _as_seconds(value, _DURATION_UNITS[plain_unit])
        if seconds is None or _below(seconds, low, low_open):
            ctx.fail(path, value, allowed)
        return seconds

    return parse


def _as_seconds(value, plain_factor):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value * plain_factor
    if isinstance(value, timedelta):
        return value.total_seconds()
    if is_relativedelta(value):
        if value.years or value.months:
            return None
        return (
            value.days * 86400
            + value.hours * 3600
            + value.minutes * 60
            + value.seconds
            + value.microseconds / 1e6
        )
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", value.lower())
        if match:
            factor = _DURATION_UNITS[match.group(2)] if match.group(2) else plain_factor
            return float(match.group(1)) * factor
    return None


# --------------------------------------------------------------------------- addresses


def http_url(ctx, path, value):
    url = nonempty_string(ctx, path, value)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        ctx.fail(path, value, HTTP_URL_TEXT)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == 0
        or any(c.isspace() for c in url)
    ):
        ctx.fail(path, value, HTTP_URL_TEXT)
    return url


def url_kind(url):
    """The listener kind (tcp, ssl, ws, wss) of a URL such as nmq-tcp://host:port, or None."""
    for scheme, kind in sorted(_URL_SCHEMES.items(), key=lambda item: -len(item[0])):
        if str(url).lower().startswith(scheme):
            return kind
    return None


def bind(kind):
    """Parses "host:port" (tcp, ssl) or "host:port/path" (ws, wss); an nmq-*:// scheme prefix is accepted."""
    websocket = kind in ("ws", "wss")
    allowed = f"expected host:port{'/path' if websocket else ''} with a port from 0 to 65535"

    def parse(ctx, path, value):
        text = string(ctx, path, value).strip()
        scheme_kind = url_kind(text)
        if scheme_kind is not None:
            if scheme_kind != kind:
                ctx.fail(path, value, f"{allowed} (a {kind} listener, not {scheme_kind})")
            text = text.split("://", 1)[1]
        address, slash, rest = text.partition("/")
        url_path = slash + rest if websocket and slash else ("/mqtt" if websocket else "")
        if slash and not websocket:
            ctx.fail(path, value, allowed)
        host, colon, port_text = address.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not colon or not port_text.isdigit() or int(port_text) > 65535 or not _valid_host(host):
            ctx.fail(path, value, allowed)
        return host, int(port_text), url_path

    return parse


def host(ctx, path, value):
    """An IP address or a host name to bind to, without a port."""
    text = string(ctx, path, value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not _valid_host(text):
        ctx.fail(path, value, "expected an IP address or a host name, without a port")
    return text


def _valid_host(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host)) and ":" not in host
