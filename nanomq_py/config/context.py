"""Where each value came from, so that a bad one stops the start with one line naming
its file (or variable, or flag), key, value and what is allowed; and reading objects
key by key so that keys nobody reads become warnings instead of passing unnoticed."""

from __future__ import annotations

import json
from datetime import timedelta

# NanoMQ keys that have no equivalent here; reading a NanoMQ file with them only warns.
_NANOMQ_UNUSED = (
    ("system", "num_taskq_thread"),
    ("system", "max_taskq_thread"),
    ("system", "parallel"),
    ("system", "hook_ipc_url"),
    ("system", "cmd_ipc_url"),
    ("mqtt", "client_max_packet_size"),
    ("auth", "cache"),
    ("log", "uds_addr"),
    ("http_server", "jwt"),
    ("bridges",),
    ("preset",),
    ("rules",),
    ("exchange_client",),
    ("parquet",),
    ("plugin",),
    ("vsomeip_gateway",),
    ("dds_gateway",),
    ("zmq_gateway",),
)

_MISSING = object()


class ConfigError(Exception):
    """A configuration problem; str() is one line naming file, key, value and what is allowed."""


class Context:
    """Where each value came from, and the warnings gathered on the way."""

    def __init__(self, source):
        self.source = source
        self.origins = {}  # path tuple -> (where, key label)
        self.verbatim = set()  # sources whose values are shown as written (the old key=value file)
        self.warnings = []

    def locate(self, path):
        for end in range(len(path), 0, -1):
            if path[:end] in self.origins:
                return self.origins[path[:end]]
        return self.source, _dotted(path)

    def fail(self, path, value, allowed):
        where, key = self.locate(path)
        shown = value if where in self.verbatim and isinstance(value, str) else show(value)
        raise ConfigError(f"{where}: {key} = {shown} is invalid: {allowed}")

    def missing(self, path, needed):
        where, key = self.locate(path)
        raise ConfigError(f"{where}: {key} is missing: {needed}")

    def warn(self, message):
        self.warnings.append(message)

    def unknown(self, path):
        where, key = self.locate(path)
        if any(path[: len(prefix)] == prefix for prefix in _NANOMQ_UNUSED):
            self.warn(f"{where}: {key} is a NanoMQ setting that nanomq_py does not use (ignored)")
        elif path[0] == "web":
            self.warn(
                f"{where}: {key} is NanoMQ's old format: use the webhook {{ }} block or --old_conf (ignored)"
            )
        else:
            self.warn(f"{where}: unknown key {key} (ignored)")


class Section:
    """One object of the config: reads keys through parsers and reports the keys nobody read."""

    def __init__(self, ctx, path, data):
        self.ctx = ctx
        self.path = path
        self.data = data
        self.seen = set()

    def has(self, key):
        return key in self.data

    def take(self, key, parse, default=_MISSING, needed=""):
        """The parsed value of `key`; `default` when absent, or a ConfigError saying `needed` when required."""
        self.seen.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                self.ctx.missing(self.path + (key,), needed)
            return default
        return parse(self.ctx, self.path + (key,), self.data[key])

    def section(self, key):
        """The object under `key`, or None when absent."""
        self.seen.add(key)
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, dict):
            self.ctx.fail(self.path + (key,), value, "expected an object { ... }")
        return Section(self.ctx, self.path + (key,), value)

    def finish(self):
        for key in self.data:
            if key not in self.seen:
                self.ctx.unknown(self.path + (key,))


def object_list(ctx, path, value, allowed, item_allowed):
    """A list of objects (ACL rules, webhook events) -> one `Section` per item, checked as they are read."""
    if not isinstance(value, list):
        ctx.fail(path, value, allowed)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            ctx.fail(path + (index,), item, item_allowed)
        yield Section(ctx, path + (index,), item)


def _dotted(path):
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")


RD_UNITS = ("years", "months", "days", "hours", "minutes", "seconds", "microseconds")


def is_relativedelta(value):
    """pyhocon reads `10 minutes` or `2 months` as dateutil's relativedelta; matched by name, not imported."""
    return type(value).__name__ == "relativedelta"


def show(value):
    """A value as the user would write it in the file, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if is_relativedelta(value):
        parts = [f"{getattr(value, unit)} {unit}" for unit in RD_UNITS if getattr(value, unit, 0)]
        return " ".join(parts) or "0s"
    return json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))
