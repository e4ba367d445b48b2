"""The merged key tree -> `Settings`, one reader per top-level section; an absent
section keeps the defaults of `nanomq_py.settings`."""

from __future__ import annotations

from nanomq_py.settings import Settings

from .auth import read_auth
from .bridges import read_bridges
from .context import Section
from .http_server import read_http_server
from .listeners import read_listeners
from .log import read_log
from .mqtt import read_mqtt
from .sqlite import read_sqlite
from .values import boolean
from .webhook import read_webhook


def _read_daemon(section):
    daemon = section.take("daemon", boolean, False)
    section.finish()
    return daemon


# Optional top-level sections, in the order they are read: (key, Settings attribute,
# reader); an absent section keeps the default.
_SECTIONS = (
    ("mqtt", "mqtt", read_mqtt),
    ("auth", "auth", read_auth),
    ("log", "log", read_log),
    ("system", "daemon", _read_daemon),
    ("webhook", "webhook", read_webhook),
    ("http_server", "http_server", read_http_server),
    ("bridges", "bridges", read_bridges),
    ("sqlite", "sqlite", read_sqlite),
)


def build_settings(ctx, tree):
    root = Section(ctx, (), tree)
    settings = Settings()
    settings.listeners = read_listeners(root.section("listeners"))
    for key, attribute, read in _SECTIONS:
        section = root.section(key)
        if section is not None:
            setattr(settings, attribute, read(section))
    root.finish()
    return settings
