"""The merged key tree -> `Settings`, one reader per top-level section; an absent
section keeps the defaults of `nanomq_py.settings`."""

from __future__ import annotations

from nanomq_py.settings import Settings

from .auth import read_auth
from .context import Section
from .http_server import read_http_server
from .listeners import read_listeners
from .log import read_log
from .mqtt import read_mqtt
from .values import boolean
from .webhook import read_webhook


def build_settings(ctx, tree):
    root = Section(ctx, (), tree)
    settings = Settings()
    settings.listeners = read_listeners(root.section("listeners"))
    mqtt = root.section("mqtt")
    if mqtt is not None:
        settings.mqtt = read_mqtt(mqtt)
    auth = root.section("auth")
    if auth is not None:
        settings.auth = read_auth(auth)
    log = root.section("log")
    if log is not None:
        settings.log = read_log(log)
    system = root.section("system")
    if system is not None:
        settings.daemon = system.take("daemon", boolean, False)
        system.finish()
    webhook = root.section("webhook")
    if webhook is not None:
        settings.webhook = read_webhook(webhook)
    http_server = root.section("http_server")
    if http_server is not None:
        settings.http_server = read_http_server(http_server)
    root.finish()
    return settings
