"""The `sqlite { }` section -> `SqliteSettings`, or None when absent or disabled.

NanoMQ's keys: mounted_file_path, disk_cache_size, flush_mem_threshold,
resend_interval (plain numbers in milliseconds, as NanoMQ reads them). Ours:
`enable` (a block with enable = false is off), `synchronous`, how hard a
commit pushes to the disk (see README "Persistence" for what each level loses),
and `webhook_spool`, whether undeliverable webhook events wait in the store.
"""

from __future__ import annotations

from nanomq_py.settings import SqliteSettings

from .values import boolean, duration, enum, integer, nonempty_string


def read_sqlite(section):
    if not section.take("enable", boolean, True):
        section.seen.update(section.data)  # a disabled block is not checked further
        return None
    defaults = SqliteSettings()
    settings = SqliteSettings(
        mounted_file_path=section.take("mounted_file_path", nonempty_string, defaults.mounted_file_path),
        disk_cache_size=section.take("disk_cache_size", integer(1), defaults.disk_cache_size),
        flush_mem_threshold=section.take("flush_mem_threshold", integer(1), defaults.flush_mem_threshold),
        resend_interval=section.take(
            "resend_interval", duration(0.001, plain_unit="ms"), defaults.resend_interval
        ),
        synchronous=section.take("synchronous", _synchronous, defaults.synchronous),
        webhook_spool=section.take("webhook_spool", boolean, defaults.webhook_spool),
    )
    section.finish()
    return settings


_LEVELS = enum(("full", "normal"))


def _synchronous(ctx, path, value):
    return _LEVELS(ctx, path, value).upper()
