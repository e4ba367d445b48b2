"""The `log { }` section -> `LogSettings`."""

from __future__ import annotations

import re

from nanomq_py.settings import LogSettings

from .values import enum, integer, nonempty_string, size

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
LOG_TARGETS = ("console", "file", "syslog")


def read_log(section):
    defaults = LogSettings()
    log = LogSettings(
        to=section.take("to", _log_targets, defaults.to),
        level=section.take("level", enum(LOG_LEVELS), defaults.level),
        dir=section.take("dir", nonempty_string, defaults.dir),
        file=section.take("file", nonempty_string, defaults.file),
    )
    rotation = section.section("rotation")
    if rotation is not None:
        log.rotation_size = rotation.take("size", size(1), defaults.rotation_size)
        log.rotation_count = rotation.take("count", integer(1), defaults.rotation_count)
        rotation.finish()
    section.finish()
    return log


def split_targets(value):
    """`log.to` as a list, also from NanoMQ's "console,file" or "console|file" strings."""
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,|]", value) if part.strip()]
    if isinstance(value, list):
        return list(value)
    return [value]


def _log_targets(ctx, path, value):
    targets = []
    for item in split_targets(value):
        if not isinstance(item, str) or item.strip().lower() not in LOG_TARGETS:
            ctx.fail(path, value, f"expected a list of {', '.join(LOG_TARGETS)}")
        if item.strip().lower() not in targets:
            targets.append(item.strip().lower())
    return targets
